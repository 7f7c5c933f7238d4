"""kube-node's own autoscaler on the real control plane with kube-scheduler and kube-controller-manager."""

from __future__ import annotations

import dataclasses
import time
from typing import Any

import pytest

from nodeset_controller.api import LABEL_NODESET
from nodeset_controller.controllers import Manager
from nodeset_controller.kube import NODECLASSES, NODES, NODESETS, KubeClient, Resource
from tests.conftest import create_or_none, eventually, nodeset_manifest, schema_relaxed, simulator_nodeclass

pytestmark = pytest.mark.controlplane

PODS = Resource("", "v1", "pods", namespaced=True)
DEPLOYMENTS = Resource("apps", "v1", "deployments", namespaced=True)
NAMESPACES = Resource("", "v1", "namespaces")
SERVICE_ACCOUNTS = Resource("", "v1", "serviceaccounts", namespaced=True)
EVENTS = Resource("", "v1", "events", namespaced=True)
AUTO = {"autoscaling": {"mode": "KubeNode"}}


def deployment(name: str, replicas: int, cpu: str, memory: str = "100Mi", **pod_spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {
                    "terminationGracePeriodSeconds": 0,
                    **pod_spec,
                    "containers": [
                        {
                            "name": "c",
                            "image": "registry.invalid/x:1",
                            "resources": {"requests": {"cpu": cpu, "memory": "100Mi"}},
                        }
                    ],
                },
            },
        },
    }


def pods_of(kube: KubeClient, namespace: str, app: str) -> list[dict[str, Any]]:
    return kube.list(PODS, namespace, labelSelector=f"app={app}")["items"]


def running(kube: KubeClient, namespace: str, app: str) -> int:
    return sum(1 for p in pods_of(kube, namespace, app) if p["status"].get("phase") == "Running")


def replicas(kube: KubeClient, nodeset: str) -> int:
    return int(kube.get(NODESETS, nodeset)["spec"]["replicas"])


def node_set_of_pods(kube: KubeClient, namespace: str, app: str) -> set[str]:
    names = {p["spec"].get("nodeName") for p in pods_of(kube, namespace, app)}
    return {kube.get(NODES, n)["metadata"]["labels"][LABEL_NODESET] for n in names if n}


def pod_events(kube: KubeClient, namespace: str, reason: str) -> list[dict[str, Any]]:
    return [e for e in kube.list(EVENTS, namespace)["items"] if e["reason"] == reason]


def test_pending_pods_raise_replicas_to_the_packed_count_and_a_second_burst_orders_the_difference(
    kube: KubeClient, manager: Manager, namespace: str
) -> None:
    kube.create(NODECLASSES, simulator_nodeclass(bootDelaySeconds=3))
    kube.create(NODESETS, nodeset_manifest("auto", 0, maxReplicas=20, **AUTO))
    kube.create(DEPLOYMENTS, deployment("web", 6, "1500m"), namespace)  # two per 4-CPU node
    eventually(lambda: replicas(kube, "auto") == 3, timeout=30, what="replicas 3")
    time.sleep(1)
    assert replicas(kube, "auto") == 3  # while the three boot, nothing more is ordered
    kube.patch(DEPLOYMENTS, "web", {"spec": {"replicas": 10}}, namespace)
    eventually(lambda: replicas(kube, "auto") == 5, timeout=30, what="replicas 5: only the difference")
    eventually(lambda: running(kube, namespace, "web") == 10, timeout=90, what="all 10 pods Running")
    assert replicas(kube, "auto") == 5
    triggered = pod_events(kube, namespace, "TriggeredScaleUp")
    assert triggered and "NodeSet auto" in triggered[0]["message"]


def test_selectors_affinity_and_tolerations_pick_the_right_nodeset(
    kube: KubeClient, manager: Manager, namespace: str
) -> None:
    small = simulator_nodeclass("small")
    small["spec"]["labels"] = {"pool": "general"}
    tainted = simulator_nodeclass("tainted")
    tainted["spec"]["labels"] = {"pool": "special"}
    tainted["spec"]["taints"] = [{"key": "dedicated", "value": "special", "effect": "NoSchedule"}]
    big = simulator_nodeclass("big")
    big["spec"]["capacity"] = {"cpu": "16", "memory": "64Gi", "pods": "110"}
    big["spec"]["labels"] = {"pool": "big"}
    for nodeclass in (small, tainted, big):
        kube.create(NODECLASSES, nodeclass)
    for name in ("small", "tainted", "big"):
        kube.create(NODESETS, nodeset_manifest(name, 0, nodeclass=name, maxReplicas=3, **AUTO))
    kube.create(DEPLOYMENTS, deployment("general", 2, "1", nodeSelector={"pool": "general"}), namespace)
    kube.create(
        DEPLOYMENTS,
        deployment(
            "special",
            2,
            "1",
            tolerations=[{"key": "dedicated", "operator": "Equal", "value": "special", "effect": "NoSchedule"}],
            affinity={
                "nodeAffinity": {
                    "requiredDuringSchedulingIgnoredDuringExecution": {
                        "nodeSelectorTerms": [
                            {"matchExpressions": [{"key": "pool", "operator": "In", "values": ["special"]}]}
                        ]
                    }
                }
            },
        ),
        namespace,
    )
    kube.create(DEPLOYMENTS, deployment("huge", 1, "12"), namespace)
    kube.create(DEPLOYMENTS, deployment("impossible", 1, "64"), namespace)
    for app, nodeset in (("general", "small"), ("special", "tainted"), ("huge", "big")):
        eventually(
            lambda a=app: running(kube, namespace, a) == len(pods_of(kube, namespace, a)),
            timeout=90,
            what=f"{app} Running",
        )
        assert node_set_of_pods(kube, namespace, app) == {nodeset}
    assert (replicas(kube, "small"), replicas(kube, "tainted"), replicas(kube, "big")) == (1, 1, 1)
    explained = eventually(
        lambda: [
            e
            for e in pod_events(kube, namespace, "NotTriggerScaleUp")
            if e["involvedObject"]["name"].startswith("impossible")
        ],
        timeout=30,
    )
    message = explained[0]["message"]
    assert "NodeSet big: requests cpu 64000m but a node has 16000m" in message
    assert "NodeSet tainted: taint dedicated=special:NoSchedule is not tolerated" in message
    time.sleep(2)
    assert len(pod_events(kube, namespace, "NotTriggerScaleUp")) == 1  # one per pod and reason, not a flood
    assert (replicas(kube, "small"), replicas(kube, "tainted"), replicas(kube, "big")) == (1, 1, 1)


def test_max_replicas_holds_and_other_modes_are_never_touched(
    kube: KubeClient, manager: Manager, namespace: str
) -> None:
    kube.create(NODECLASSES, simulator_nodeclass())
    kube.create(NODESETS, nodeset_manifest("capped", 0, maxReplicas=2, **AUTO))
    kube.create(NODESETS, nodeset_manifest("by-hand", 0, maxReplicas=10))
    kube.create(NODESETS, nodeset_manifest("for-ca", 0, maxReplicas=10, autoscaling={"mode": "ClusterAutoscaler"}))
    kube.create(DEPLOYMENTS, deployment("many", 8, "3"), namespace)  # one per node: 8 wanted, 2 allowed
    eventually(lambda: replicas(kube, "capped") == 2, timeout=30)
    time.sleep(3)
    assert (replicas(kube, "capped"), replicas(kube, "by-hand"), replicas(kube, "for-ca")) == (2, 0, 0)
    eventually(lambda: running(kube, namespace, "many") == 2, timeout=60)
    limited = eventually(
        lambda: next(
            (
                c
                for c in kube.get(NODESETS, "capped")["status"].get("conditions", [])
                if c["type"] == "ScalingLimited" and c["status"] == "True"
            ),
            None,
        )
    )
    assert limited["reason"] == "AtMaxReplicas"
    # The NodeSetController's own conditions stay beside it.
    types = {c["type"] for c in kube.get(NODESETS, "capped")["status"]["conditions"]}
    assert {"Ready", "Progressing", "ReplicaFailure", "ScalingLimited"} <= types


def test_the_cluster_wide_cap_holds_across_nodesets(kube: KubeClient, manager: Manager, namespace: str) -> None:
    autoscaler = manager.pending_pod_autoscaler
    autoscaler.settings = dataclasses.replace(autoscaler.settings, max_total_nodes=3)
    for name in ("left", "right"):
        nodeclass = simulator_nodeclass(name)
        nodeclass["spec"]["labels"] = {"side": name}
        kube.create(NODECLASSES, nodeclass)
        kube.create(NODESETS, nodeset_manifest(name, 0, nodeclass=name, maxReplicas=10, **AUTO))
    for name in ("left", "right"):
        kube.create(DEPLOYMENTS, deployment(f"on-{name}", 3, "3", nodeSelector={"side": name}), namespace)
    eventually(lambda: replicas(kube, "left") + replicas(kube, "right") == 3, timeout=30)
    time.sleep(3)
    assert replicas(kube, "left") + replicas(kube, "right") == 3
    limited = [
        c
        for name in ("left", "right")
        for c in kube.get(NODESETS, name)["status"].get("conditions", [])
        if c["type"] == "ScalingLimited" and c["status"] == "True"
    ]
    assert {c["reason"] for c in limited} == {"ClusterCapReached"}


def test_empty_nodes_go_after_the_unneeded_time_never_below_min(
    kube: KubeClient, manager: Manager, namespace: str
) -> None:
    autoscaler = manager.pending_pod_autoscaler
    autoscaler.settings = dataclasses.replace(autoscaler.settings, unneeded_time=3.0)
    kube.create(NODECLASSES, simulator_nodeclass())
    kube.create(NODESETS, nodeset_manifest("shrink", 0, minReplicas=1, maxReplicas=5, **AUTO))
    kube.create(DEPLOYMENTS, deployment("busy", 3, "3"), namespace)
    eventually(lambda: running(kube, namespace, "busy") == 3, timeout=90)
    assert replicas(kube, "shrink") == 3
    kube.patch(DEPLOYMENTS, "busy", {"spec": {"replicas": 1}}, namespace)
    eventually(lambda: replicas(kube, "shrink") == 1, timeout=60, what="the two empty Nodes removed")
    eventually(lambda: len(kube.list(NODES, labelSelector=f"{LABEL_NODESET}=shrink")["items"]) == 1, timeout=60)
    assert running(kube, namespace, "busy") == 1  # the busy Node stayed
    kube.patch(DEPLOYMENTS, "busy", {"spec": {"replicas": 0}}, namespace)
    time.sleep(6)
    assert replicas(kube, "shrink") == 1  # never below minReplicas


def test_quota_on_the_preferred_nodeset_backs_it_off_and_the_next_is_used(
    kube: KubeClient, manager: Manager, namespace: str
) -> None:
    exact = simulator_nodeclass("exact", createFailureRate=1)  # fits the pods with little waste, but no quota
    exact["spec"]["capacity"] = {"cpu": "2", "memory": "8Gi", "pods": "110"}
    kube.create(NODECLASSES, exact)
    roomy = simulator_nodeclass("roomy")  # half empty with these two pods
    roomy["spec"]["capacity"] = {"cpu": "8", "memory": "32Gi", "pods": "110"}
    kube.create(NODECLASSES, roomy)
    kube.create(NODESETS, nodeset_manifest("exact", 0, nodeclass="exact", maxReplicas=5, **AUTO))
    kube.create(NODESETS, nodeset_manifest("roomy", 0, nodeclass="roomy", maxReplicas=5, **AUTO))
    kube.create(DEPLOYMENTS, deployment("job", 2, "2", memory="7Gi"), namespace)
    eventually(lambda: replicas(kube, "exact") >= 1, timeout=30, what="the least-waste NodeSet tried first")
    eventually(lambda: running(kube, namespace, "job") == 2, timeout=120, what="pods Running on the next NodeSet")
    assert node_set_of_pods(kube, namespace, "job") == {"roomy"}
    assert manager.simulator is not None
    assert all(m.nodeclass == "roomy" for m in manager.simulator.machines())
    eventually(lambda: replicas(kube, "exact") == 0, timeout=60, what="the failed replicas given back")


def test_underused_nodes_are_consolidated_and_a_pod_that_cannot_move_keeps_its_node(
    kube: KubeClient, manager: Manager, namespace: str
) -> None:
    manager.pending_pod_autoscaler.settings = dataclasses.replace(
        manager.pending_pod_autoscaler.settings, unneeded_time=3.0, consolidation_interval=0.0
    )
    kube.create(NODECLASSES, simulator_nodeclass())
    kube.create(NODESETS, nodeset_manifest("pack", 0, maxReplicas=5, drain={"timeoutSeconds": 60}, **AUTO))
    # Two big pods force two Nodes; two small ones share them.
    kube.create(DEPLOYMENTS, deployment("big", 2, "3"), namespace)
    eventually(lambda: running(kube, namespace, "big") == 2, timeout=90)
    kube.create(
        DEPLOYMENTS,
        deployment(
            "small",
            2,
            "500m",
            affinity={
                "podAntiAffinity": {
                    "requiredDuringSchedulingIgnoredDuringExecution": [
                        {"labelSelector": {"matchLabels": {"app": "small"}}, "topologyKey": "kubernetes.io/hostname"}
                    ]
                }
            },
        ),
        namespace,
    )
    eventually(lambda: running(kube, namespace, "small") == 2, timeout=60)
    assert replicas(kube, "pack") == 2
    # With the big pods gone each Node is 12 % used, but the small pods refuse to share a Node: nothing moves.
    kube.patch(DEPLOYMENTS, "big", {"spec": {"replicas": 0}}, namespace)
    time.sleep(8)
    assert replicas(kube, "pack") == 2
    # Pods that only prefer to spread (the scheduler spreads them; nothing forbids sharing) join, then the
    # small ones go: one Node's pod now fits on the other, and that Node is drained and removed. (No Node is
    # ever empty, so this is consolidation, not the removal of an empty Node.)
    kube.create(
        DEPLOYMENTS,
        deployment(
            "spread",
            2,
            "500m",
            affinity={
                "podAntiAffinity": {
                    "preferredDuringSchedulingIgnoredDuringExecution": [
                        {
                            "weight": 100,
                            "podAffinityTerm": {
                                "labelSelector": {"matchLabels": {"app": "spread"}},
                                "topologyKey": "kubernetes.io/hostname",
                            },
                        }
                    ]
                }
            },
        ),
        namespace,
    )
    eventually(lambda: running(kube, namespace, "spread") == 2, timeout=60)
    assert len({p["spec"]["nodeName"] for p in pods_of(kube, namespace, "spread")}) == 2
    kube.delete(DEPLOYMENTS, "small", namespace)
    eventually(lambda: replicas(kube, "pack") == 1, timeout=90, what="one Node consolidated away")
    eventually(
        lambda: (
            running(kube, namespace, "spread") == 2
            and len({p["spec"].get("nodeName") for p in pods_of(kube, namespace, "spread")}) == 1
        ),
        timeout=90,
        what="both pods on the Node that stayed",
    )
    eventually(lambda: len(kube.list(NODES, labelSelector=f"{LABEL_NODESET}=pack")["items"]) == 1, timeout=60)
    consolidations = [e for e in kube.list(EVENTS, "default")["items"] if e["reason"] == "Consolidating"]
    assert len(consolidations) == 1, [(e["message"], e["firstTimestamp"]) for e in consolidations]


def test_a_nodeclass_with_a_capacity_kubernetes_would_refuse_fails_alone_and_the_others_keep_scaling(
    kube: KubeClient, manager: Manager, namespace: str
) -> None:
    # Both values pass the NodeClass schema's pattern (the one Kubernetes publishes for quantities): a
    # fractional exponent, which Kubernetes' parser refuses, and a number of a billion digits.
    bad = {"fractional": {"cpu": "1e1.5", "memory": "16Gi"}, "huge": {"cpu": "4", "memory": "1e999999999"}}
    with schema_relaxed(kube, "nodeclasses", "capacity"):  # stored before the schema refused them
        for name, capacity in bad.items():
            nodeclass = simulator_nodeclass(name)
            nodeclass["spec"]["capacity"] = capacity
            eventually(lambda nc=nodeclass: create_or_none(kube, NODECLASSES, nc), what="the relaxed schema")
    # The CRD's update ends kube-node's watch of NodeClasses; it resumes from where it was.
    eventually(lambda: all(manager.nodeclasses.get(n) for n in bad), timeout=60)
    for name in bad:
        kube.create(NODESETS, nodeset_manifest(name, 0, nodeclass=name, maxReplicas=3, **AUTO))
    kube.create(NODECLASSES, simulator_nodeclass("good"))
    kube.create(NODESETS, nodeset_manifest("good", 0, nodeclass="good", maxReplicas=3, **AUTO))
    kube.create(DEPLOYMENTS, deployment("web", 4, "1500m"), namespace)  # two per 4-CPU node
    eventually(lambda: replicas(kube, "good") == 2, timeout=30, what="the good NodeSet raised to 2")
    eventually(lambda: running(kube, namespace, "web") == 4, timeout=90, what="all 4 pods Running")

    def limited(name: str) -> dict[str, Any] | None:
        conditions = (kube.get(NODESETS, name).get("status") or {}).get("conditions", [])
        return next((c for c in conditions if c["type"] == "ScalingLimited" and c["status"] == "True"), None)

    for name, field, value in (("fractional", "cpu", "1e1.5"), ("huge", "memory", "1e999999999")):
        condition = eventually(lambda n=name: limited(n), what=f"ScalingLimited on {name}")
        assert condition["reason"] == "InvalidNodeClass"
        assert f"NodeClass {name}: spec.capacity.{field}: '{value}'" in condition["message"]
        warnings = eventually(
            lambda n=name: [
                e
                for e in kube.list(EVENTS, "default")["items"]
                if e["involvedObject"]["kind"] == "NodeSet" and e["involvedObject"]["name"] == n
                if e["type"] == "Warning" and e["reason"] == "InvalidNodeClass"
            ],
            what=f"a Warning Event on {name}",
        )
        assert len(warnings) == 1 and warnings[0]["count"] == 1  # once, not once a round
        assert f"spec.capacity.{field}" in warnings[0]["message"]
        assert replicas(kube, name) == 0
    assert limited("good") is None


def test_new_nodes_are_packed_with_what_registered_nodes_report_not_the_declaration(
    kube: KubeClient, manager: Manager, namespace: str
) -> None:
    nodeclass = simulator_nodeclass("small-on-paper")
    nodeclass["spec"]["capacity"] = {"cpu": "2", "memory": "4Gi"}  # the machines have 8 CPUs
    kube.create(NODECLASSES, nodeclass)
    kube.create(NODESETS, nodeset_manifest("grow", 1, nodeclass="small-on-paper", maxReplicas=5, **AUTO))
    node = eventually(
        lambda: next(
            (
                n
                for n in kube.list(NODES, labelSelector=f"{LABEL_NODESET}=grow")["items"]
                if any(c["type"] == "Ready" and c["status"] == "True" for c in n["status"].get("conditions") or [])
            ),
            None,
        ),
        timeout=60,
        what="a Ready Node",
    )
    name = node["metadata"]["name"]
    reported = {"cpu": "8", "memory": "32Gi", "pods": "110"}
    kube.patch(NODES, name, {"status": {"capacity": reported, "allocatable": reported}}, subresource="status")
    kube.patch(NODES, name, {"spec": {"unschedulable": True}})  # no room on it: the pod needs a new Node
    eventually(lambda: (n := manager.nodes.get(name)) is not None and n.unschedulable and n.allocatable["cpu"] == "8")

    kube.create(DEPLOYMENTS, deployment("wide", 1, "5"), namespace)  # 5 CPUs: more than declared, less than real

    eventually(lambda: replicas(kube, "grow") == 2, timeout=30, what="replicas 2")
    assert not pod_events(kube, namespace, "NotTriggerScaleUp")
