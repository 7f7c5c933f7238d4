"""NodeSets on the real control plane: scale both ways, drain with budgets, replace failures, true status."""

from __future__ import annotations

import concurrent.futures
import dataclasses
import threading
import time
from typing import Any

import pytest

from nodeset_controller.api import (
    ANNOTATION_DELETE_REQUESTED,
    ANNOTATION_REMOVAL_REASON,
    LABEL_NODECLASS,
    LABEL_NODESET,
    TAINT_STARTUP,
)
from nodeset_controller.controllers import Manager
from nodeset_controller.kube import NODECLASSES, NODES, NODESETS, KubeClient, Resource
from nodeset_controller.providers import SimulatorSettings
from tests.conftest import Kubectl, eventually, nodeset_manifest, simulator_nodeclass

pytestmark = pytest.mark.controlplane

EVENTS = Resource("", "v1", "events", namespaced=True)
DEPLOYMENTS = Resource("apps", "v1", "deployments", namespaced=True)
PDBS = Resource("policy", "v1", "poddisruptionbudgets", namespaced=True)
NAMESPACES = Resource("", "v1", "namespaces")
PODS = Resource("", "v1", "pods", namespaced=True)


def members(kube: KubeClient, nodeset: str) -> list[dict[str, Any]]:
    return kube.list(NODES, labelSelector=f"{LABEL_NODESET}={nodeset}")["items"]


def ready(node: dict[str, Any]) -> bool:
    conditions = node.get("status", {}).get("conditions") or []
    taints = [t["key"] for t in node["spec"].get("taints") or []]
    return TAINT_STARTUP not in taints and any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)


def condition(nodeset: dict[str, Any], kind: str) -> dict[str, Any]:
    return next(c for c in nodeset["status"]["conditions"] if c["type"] == kind)


def settled(kube: KubeClient, name: str, count: int, manager: Manager) -> dict[str, Any] | None:
    """The NodeSet once exactly ``count`` Ready member Nodes (and machines) exist and status says so."""
    nodes = [n for n in members(kube, name) if not n["metadata"].get("deletionTimestamp")]
    if len(nodes) != count or not all(ready(n) for n in nodes):
        return None
    assert manager.simulator is not None
    machines = [m for m in manager.simulator.machines() if m.node_name in {n["metadata"]["name"] for n in nodes}]
    if len(machines) != count or len(manager.simulator.machines()) != count:
        return None
    nodeset = kube.get(NODESETS, name)
    status = nodeset.get("status", {})
    if status.get("replicas") != count or status.get("readyReplicas") != count:
        return None
    if status.get("observedGeneration") != nodeset["metadata"]["generation"]:
        return None
    return nodeset


def events(kube: KubeClient, name: str, reason: str) -> list[dict[str, Any]]:
    items = kube.list(EVENTS, "default", fieldSelector=f"involvedObject.name={name}")["items"]
    return [e for e in items if e["reason"] == reason]


def test_scale_0_5_2_0_keeps_exactly_the_right_nodes_and_machines(
    kube: KubeClient, kubectl: Kubectl, manager: Manager
) -> None:
    nodeclass = simulator_nodeclass()
    nodeclass["spec"]["labels"] = {"class-label": "yes"}
    nodeclass["spec"]["taints"] = [{"key": "dedicated", "value": "sim", "effect": "NoSchedule"}]
    kube.create(NODECLASSES, nodeclass)
    kube.create(
        NODESETS,
        nodeset_manifest(
            "web",
            0,
            deletePolicy="Oldest",
            template={"metadata": {"labels": {"tier": "web"}, "annotations": {"team": "a"}}},
        ),
    )
    empty = eventually(lambda: settled(kube, "web", 0, manager))
    assert empty["status"]["selector"] == "kube-node.io/nodeset=web"

    kubectl.run("scale", "nodeset/web", "--replicas=5")
    five = eventually(lambda: settled(kube, "web", 5, manager), timeout=60, what="5 Ready Nodes")
    assert condition(five, "Ready")["status"] == "True"
    assert condition(five, "Progressing")["status"] == "False"
    assert condition(five, "ReplicaFailure")["status"] == "False"
    node = members(kube, "web")[0]
    assert node["metadata"]["name"].startswith("web-")
    expected_labels = {"tier": "web", "class-label": "yes", LABEL_NODECLASS: "sim", LABEL_NODESET: "web"}
    assert expected_labels.items() <= node["metadata"]["labels"].items()
    assert node["metadata"]["annotations"]["team"] == "a"
    assert node["spec"]["providerID"] == f"kube-node://sim/{node['metadata']['name']}"
    assert {"key": "dedicated", "value": "sim", "effect": "NoSchedule"} in node["spec"]["taints"]
    owner = node["metadata"]["ownerReferences"][0]
    assert (owner["kind"], owner["name"], owner["uid"]) == ("NodeSet", "web", five["metadata"]["uid"])
    scale = kube.get(NODESETS, "web", subresource="scale")
    assert scale["status"] == {"replicas": 5, "selector": "kube-node.io/nodeset=web"}
    _header, *rows = kubectl.run("get", "nodesets").stdout.splitlines()
    assert rows[0].split()[:5] == ["web", "5", "5", "5", "sim"]

    # Scale down with the Oldest policy: the three oldest go.
    by_age = sorted(members(kube, "web"), key=lambda n: (n["metadata"]["creationTimestamp"], n["metadata"]["name"]))
    kubectl.run("scale", "nodeset/web", "--replicas=2")
    two = eventually(lambda: settled(kube, "web", 2, manager), timeout=60, what="2 Nodes")
    remaining = {n["metadata"]["name"] for n in members(kube, "web")}
    newest = {n["metadata"]["name"] for n in by_age[-2:]}
    if len({n["metadata"]["creationTimestamp"] for n in by_age}) == len(by_age):
        assert remaining == newest
    assert condition(two, "Ready")["status"] == "True"
    manager.recorder.flush()
    # Only this NodeSet's: other tests' NodeSets called web leave their Events behind in the session.
    uid = five["metadata"]["uid"]
    deleted = [e["message"] for e in events(kube, "web", "SuccessfulDelete") if e["involvedObject"]["uid"] == uid]
    assert len(deleted) == 3, deleted

    kubectl.run("scale", "nodeset/web", "--replicas=0")
    eventually(lambda: settled(kube, "web", 0, manager), timeout=60, what="no Nodes")


def test_a_node_asked_for_by_name_goes_first(kube: KubeClient, manager: Manager) -> None:
    kube.create(NODECLASSES, simulator_nodeclass())
    kube.create(NODESETS, nodeset_manifest("pick", 3, deletePolicy="Newest"))
    eventually(lambda: settled(kube, "pick", 3, manager), timeout=60)
    oldest = sorted(members(kube, "pick"), key=lambda n: n["metadata"]["creationTimestamp"])[0]["metadata"]["name"]
    kube.patch(NODES, oldest, {"metadata": {"annotations": {ANNOTATION_DELETE_REQUESTED: "true"}}})
    kube.patch(NODESETS, "pick", {"spec": {"replicas": 2}})
    eventually(lambda: settled(kube, "pick", 2, manager), timeout=60)
    assert oldest not in {n["metadata"]["name"] for n in members(kube, "pick")}


def test_deleting_a_nodeset_leaves_no_node_and_no_machine(kube: KubeClient, manager: Manager) -> None:
    kube.create(NODECLASSES, simulator_nodeclass())
    kube.create(NODESETS, nodeset_manifest("doomed", 3))
    eventually(lambda: settled(kube, "doomed", 3, manager), timeout=60)
    kube.delete(NODESETS, "doomed")
    assert manager.simulator is not None
    eventually(
        lambda: not members(kube, "doomed") and not manager.simulator.machines(),
        timeout=60,
        what="Nodes and machines gone",
    )


def test_a_missing_nodeclass_is_reported_in_conditions(kube: KubeClient, manager: Manager) -> None:
    kube.create(NODESETS, nodeset_manifest("orphan", 2, nodeclass="absent"))
    nodeset = eventually(lambda: (ns := kube.get(NODESETS, "orphan")).get("status", {}).get("conditions") and ns)
    assert condition(nodeset, "Ready")["reason"] == "NodeClassNotFound"
    assert condition(nodeset, "ReplicaFailure")["status"] == "True"
    assert "NodeClass absent does not exist" in condition(nodeset, "ReplicaFailure")["message"]
    assert members(kube, "orphan") == []
    kube.create(NODECLASSES, simulator_nodeclass("absent"))
    eventually(lambda: settled(kube, "orphan", 2, manager), timeout=60)


def test_a_failed_machine_is_replaced(kube: KubeClient, manager: Manager) -> None:
    kube.create(NODECLASSES, simulator_nodeclass())
    kube.create(NODESETS, nodeset_manifest("heal", 2))
    eventually(lambda: settled(kube, "heal", 2, manager), timeout=60)
    assert manager.simulator is not None
    victim = manager.simulator.machines()[0]
    manager.simulator.destroy(victim.name, SimulatorSettings())  # the cloud lost it
    eventually(
        lambda: victim.node_name not in {n["metadata"]["name"] for n in members(kube, "heal")},
        timeout=60,
        what="the failed Node to go",
    )
    eventually(lambda: settled(kube, "heal", 2, manager), timeout=60, what="a replacement")
    assert events(kube, "heal", "ReplacingFailedNode")


def test_with_every_create_failing_replacements_stay_within_the_bound(kube: KubeClient, manager: Manager) -> None:
    kube.create(NODECLASSES, simulator_nodeclass(createFailureRate=1))
    kube.create(NODESETS, nodeset_manifest("broken", 3, replacement={"maxInFlight": 1}))
    most = 0
    most_replacing = 0
    deadline = time.monotonic() + 12
    while time.monotonic() < deadline:
        nodes = members(kube, "broken")
        most = max(most, len(nodes))
        most_replacing = max(
            most_replacing,
            sum(1 for n in nodes if n["metadata"].get("annotations", {}).get(ANNOTATION_REMOVAL_REASON) == "Replace"),
        )
        time.sleep(0.05)
    assert most_replacing <= 1
    assert most <= 3 + 1
    assert len(events(kube, "broken", "ReplacingFailedNode")) >= 2
    nodeset = kube.get(NODESETS, "broken")
    assert condition(nodeset, "ReplicaFailure")["status"] == "True"
    assert condition(nodeset, "ReplicaFailure")["reason"] == "OutOfResources"
    assert "QUOTA_EXCEEDED" in condition(nodeset, "ReplicaFailure")["message"]
    assert condition(nodeset, "Ready")["status"] == "False"
    assert manager.simulator is not None and manager.simulator.machines() == []


def test_concurrent_kubectl_scales_end_at_the_last_accepted_write(
    kube: KubeClient, kubectl: Kubectl, manager: Manager
) -> None:
    kube.create(NODECLASSES, simulator_nodeclass())
    created = kube.create(NODESETS, nodeset_manifest("race", 0))
    seen: list[tuple[int, int]] = []  # (resourceVersion, spec.replicas) of every write, in order
    final_version = [0]

    def record() -> None:
        version = created["metadata"]["resourceVersion"]
        while True:
            try:
                for event in kube.watch(
                    NODESETS,
                    resource_version=version,
                    fieldSelector="metadata.name=race",
                    timeout_seconds=10,
                    read_timeout=5,
                ):
                    obj = event["object"]
                    version = obj["metadata"]["resourceVersion"]
                    if event["type"] == "BOOKMARK":
                        continue
                    seen.append((int(version), obj["spec"]["replicas"]))
                    if final_version[0] and int(version) >= final_version[0]:
                        return
            except Exception:  # a watch that ended early: resume from the last version seen
                if final_version[0] and seen and seen[-1][0] >= final_version[0]:
                    return

    watcher = threading.Thread(target=record, daemon=True)
    watcher.start()
    with concurrent.futures.ThreadPoolExecutor(20) as pool:
        results = list(
            pool.map(lambda r: kubectl.run("scale", "nodeset/race", f"--replicas={r}", check=False), range(1, 21))
        )
    assert all(r.returncode == 0 for r in results), [r.stderr for r in results if r.returncode]
    final = kube.get(NODESETS, "race")
    final_version[0] = int(final["metadata"]["resourceVersion"])
    watcher.join(timeout=30)
    assert not watcher.is_alive(), "the watch never reached the final write"
    spec_writes = [replicas for _, replicas in seen]
    assert len(set(spec_writes)) > 1, seen
    # Status writes by the controller interleave, but the spec is only ever what a scale call wrote: the final
    # spec is the last write in the server's order.
    assert final["spec"]["replicas"] == spec_writes[-1]
    assert set(spec_writes) <= {0, *range(1, 21)}
    eventually(lambda: settled(kube, "race", spec_writes[-1], manager), timeout=90, what="the last write's size")


def _deployment(replicas: int, nodeset: str) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "app"},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": "app"}},
            "template": {
                "metadata": {"labels": {"app": "app"}},
                "spec": {
                    "nodeSelector": {LABEL_NODESET: nodeset},
                    "terminationGracePeriodSeconds": 0,
                    "containers": [
                        {"name": "c", "image": "registry.invalid/app:1", "resources": {"requests": {"cpu": "100m"}}}
                    ],
                },
            },
        },
    }


def _running_on(kube: KubeClient, namespace: str, node: str) -> list[str]:
    pods = kube.list(PODS, namespace, fieldSelector=f"spec.nodeName={node}")["items"]
    return [
        p["metadata"]["name"]
        for p in pods
        if p["status"].get("phase") == "Running" and not p["metadata"].get("deletionTimestamp")
    ]


def test_drain_waits_for_the_disruption_budget_then_the_node_goes(
    kube: KubeClient, manager: Manager, namespace: str
) -> None:
    kube.create(NODECLASSES, simulator_nodeclass())
    kube.create(NODESETS, nodeset_manifest("drained", 1, deletePolicy="Newest", drain={"timeoutSeconds": 120}))
    eventually(lambda: settled(kube, "drained", 1, manager), timeout=60)
    kube.create(DEPLOYMENTS, _deployment(1, "drained"), namespace)
    first = members(kube, "drained")[0]["metadata"]["name"]
    eventually(lambda: _running_on(kube, namespace, first), timeout=60, what="the pod Running")
    kube.create(
        PDBS,
        {"metadata": {"name": "app"}, "spec": {"minAvailable": 1, "selector": {"matchLabels": {"app": "app"}}}},
        namespace,
    )
    eventually(lambda: kube.get(PDBS, "app", namespace).get("status", {}).get("expectedPods") == 1)

    kube.patch(NODESETS, "drained", {"spec": {"replicas": 0}})
    blocked = eventually(lambda: events(kube, first, "EvictionBlocked"), timeout=30, what="EvictionBlocked")
    assert "disruption budget" in blocked[0]["message"]
    time.sleep(3)
    node = kube.get(NODES, first)
    assert node["spec"]["unschedulable"] is True
    assert _running_on(kube, namespace, first), "the budget must keep the pod"
    assert events(kube, first, "DrainStarted")

    kube.patch(PDBS, "app", {"spec": {"minAvailable": 0}}, namespace)
    eventually(lambda: not members(kube, "drained"), timeout=60, what="the drained Node to go")
    assert events(kube, first, "Drained")
    assert not events(kube, first, "DrainTimeout")


def test_a_drain_that_outlasts_its_timeout_removes_the_node_with_an_event(
    kube: KubeClient, manager: Manager, namespace: str
) -> None:
    kube.create(NODECLASSES, simulator_nodeclass())
    kube.create(NODESETS, nodeset_manifest("stuck", 1, drain={"timeoutSeconds": 3}))
    eventually(lambda: settled(kube, "stuck", 1, manager), timeout=60)
    kube.create(DEPLOYMENTS, _deployment(1, "stuck"), namespace)
    node = members(kube, "stuck")[0]["metadata"]["name"]
    eventually(lambda: _running_on(kube, namespace, node), timeout=60, what="the pod Running")
    kube.create(
        PDBS,
        {"metadata": {"name": "app"}, "spec": {"maxUnavailable": 0, "selector": {"matchLabels": {"app": "app"}}}},
        namespace,
    )
    eventually(lambda: kube.get(PDBS, "app", namespace).get("status", {}).get("expectedPods") == 1)
    started = time.monotonic()
    kube.patch(NODESETS, "stuck", {"spec": {"replicas": 0}})
    eventually(lambda: not members(kube, "stuck"), timeout=60, what="the Node to go after the timeout")
    assert time.monotonic() - started >= 3
    timeout_event = events(kube, node, "DrainTimeout")
    assert timeout_event and timeout_event[0]["type"] == "Warning"
    assert "1 pods left" in timeout_event[0]["message"]


def test_a_large_replicas_is_created_in_bounded_batches_never_all_manifests_at_once(
    kube: KubeClient, manager: Manager
) -> None:
    controller = manager.nodeset_controller
    controller.settings = dataclasses.replace(controller.settings, max_create_batch=8, max_creates_per_reconcile=20)
    built_and_unsent = [0]
    most = [0]
    lock = threading.Lock()
    build, create = controller._node_manifest, controller._create_one

    def counting_build(*args: Any) -> dict[str, Any]:
        with lock:
            built_and_unsent[0] += 1
            most[0] = max(most[0], built_and_unsent[0])
        return build(*args)

    def counting_create(body: dict[str, Any]) -> str | None:
        with lock:
            built_and_unsent[0] -= 1
        return create(body)

    controller._node_manifest = counting_build  # type: ignore[method-assign]
    controller._create_one = counting_create  # type: ignore[method-assign]
    kube.create(NODECLASSES, simulator_nodeclass())
    kube.create(NODESETS, nodeset_manifest("many", 60, drain={"timeoutSeconds": 0}))
    eventually(lambda: settled(kube, "many", 60, manager), timeout=120, what="60 Ready Nodes")
    assert most[0] <= 8, most[0]
