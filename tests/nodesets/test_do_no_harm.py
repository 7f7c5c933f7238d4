"""Do no harm: a NodeSet never removes a healthy Node for a moment of NotReady, a missing NodeClass or an
error reading the cloud; removes failed Nodes only within its cap; drains a Node whose machine still runs;
and never counts, drains or removes a Node it did not create."""

from __future__ import annotations

import time
from typing import Any

import pytest

from nodeset_controller.api import (
    ANNOTATION_DRAIN_STARTED,
    ANNOTATION_MACHINE_ERROR,
    ANNOTATION_MACHINE_PHASE,
    ANNOTATION_REMOVAL_REASON,
    LABEL_NODECLASS,
    LABEL_NODESET,
    now_rfc3339,
)
from nodeset_controller.controllers import Manager
from nodeset_controller.kube import NODECLASSES, NODES, NODESETS, STRATEGIC_MERGE_PATCH, KubeClient
from tests.conftest import eventually, managed_node, nodeset_manifest, simulator_nodeclass
from tests.nodesets.test_nodeset_controller import (
    EVENTS,
    PDBS,
    PODS,
    condition,
    events,
    members,
    ready,
    settled,
)

pytestmark = pytest.mark.controlplane


def registered_long_ago(kube: KubeClient, *nodesets: str) -> None:
    """Once the sets' Nodes are up, shorten their registration timeout to 1 s: every Node is then long past
    it, so only what the Node shows (a condition held, a machine gone) can make it failed. (Set before the
    Nodes are Ready, a slow boot on a loaded machine would count as a failed registration.)"""
    for nodeset in nodesets:
        kube.patch(NODESETS, nodeset, {"spec": {"replacement": {"registrationTimeoutSeconds": 1}}})
    time.sleep(1.5)


def names(nodes: list[dict[str, Any]]) -> set[str]:
    return {n["metadata"]["name"] for n in nodes}


def all_ready(kube: KubeClient, nodeset: str, count: int) -> bool:
    """Whether the set has ``count`` Ready Nodes and its status says so (other sets' machines aside)."""
    nodes = [n for n in members(kube, nodeset) if not n["metadata"].get("deletionTimestamp")]
    status = kube.get(NODESETS, nodeset).get("status", {})
    return len(nodes) == count and all(ready(n) for n in nodes) and status.get("readyReplicas") == count


def set_ready(kube: KubeClient, node: str, status: str, *, since: float | None = None) -> None:
    """Post the Node's Ready condition as a node-lifecycle controller or a kubelet would."""
    stamp = now_rfc3339(at=since)
    condition = {
        "type": "Ready",
        "status": status,
        "reason": "Test",
        "message": f"set to {status} by the test",
        "lastHeartbeatTime": stamp,
        "lastTransitionTime": stamp,
    }
    kube.patch(
        NODES, node, {"status": {"conditions": [condition]}}, subresource="status", content_type=STRATEGIC_MERGE_PATCH
    )


def test_a_brief_not_ready_on_healthy_nodes_of_a_manual_set_replaces_none_of_them(
    kube: KubeClient, manager: Manager
) -> None:
    kube.create(NODECLASSES, simulator_nodeclass())
    kube.create(NODESETS, nodeset_manifest("steady", 3))
    eventually(lambda: settled(kube, "steady", 3, manager), timeout=60)
    registered_long_ago(kube, "steady")
    before = names(members(kube, "steady"))
    flapping = sorted(before)[:2]
    for node in flapping:
        set_ready(kube, node, "Unknown")

    time.sleep(4)  # many reconciles: each of the Nodes' updates brings the NodeSet back

    assert names(members(kube, "steady")) == before
    for node in members(kube, "steady"):
        assert ANNOTATION_DRAIN_STARTED not in (node["metadata"].get("annotations") or {})
        assert not node["spec"].get("unschedulable")
    assert not events(kube, "steady", "ReplacingFailedNode")
    for node in flapping:
        set_ready(kube, node, "True")
    eventually(lambda: settled(kube, "steady", 3, manager), timeout=30)


def test_a_nodeclass_deleted_and_recreated_removes_no_node_of_any_mode(kube: KubeClient, manager: Manager) -> None:
    kube.create(NODECLASSES, simulator_nodeclass())
    kube.create(NODESETS, nodeset_manifest("manual", 3))
    kube.create(NODESETS, nodeset_manifest("by-ca", 3, autoscaling={"mode": "ClusterAutoscaler"}))
    eventually(lambda: all_ready(kube, "manual", 3) and all_ready(kube, "by-ca", 3), timeout=90)
    registered_long_ago(kube, "manual", "by-ca")
    assert manager.simulator is not None
    machines = sorted(m.id for m in manager.simulator.machines())
    before = {s: names(members(kube, s)) for s in ("manual", "by-ca")}

    # What a GitOps tool may do: delete the NodeClass (whatever holds it back), and apply it again later. Deleted
    # first, then its in-use finalizer removed: the other order races kube-node putting the finalizer back.
    kube.delete(NODECLASSES, "sim")
    assert kube.get(NODECLASSES, "sim")["metadata"]["finalizers"], "held by its in-use finalizer"
    kube.patch(NODECLASSES, "sim", {"metadata": {"finalizers": None}})
    eventually(lambda: manager.nodeclasses.get("sim") is None, what="kube-node to see the NodeClass gone")

    def all_told() -> bool:
        manager.recorder.flush()
        told = {
            e["involvedObject"]["name"]
            for e in kube.list(EVENTS, "default")["items"]
            if e["reason"] == "NodeClassNotFound"
        }
        return all(n in told for nodes in before.values() for n in nodes)

    eventually(all_told, timeout=30, what="every Node to notice the missing NodeClass")
    time.sleep(3)  # past the test's failed-instance TTL (2 s): an autoscaled set would give back "failed" Nodes
    kube.create(NODECLASSES, simulator_nodeclass())
    time.sleep(2)

    for nodeset, nodes in before.items():
        assert names(members(kube, nodeset)) == nodes, nodeset
        assert kube.get(NODESETS, nodeset)["spec"]["replicas"] == 3, nodeset
        assert not events(kube, nodeset, "ReplacingFailedNode")
        assert not events(kube, nodeset, "RemovingFailedInstances")
    assert sorted(m.id for m in manager.simulator.machines()) == machines
    # The next successful read of each machine clears the error.
    eventually(
        lambda: (
            not any(
                ANNOTATION_MACHINE_ERROR in (n["metadata"].get("annotations") or {})
                for s in before
                for n in members(kube, s)
            )
        ),
        timeout=30,
        what="the errors cleared",
    )


def test_more_failed_nodes_than_max_unhealthy_removes_none_and_a_condition_says_why(
    kube: KubeClient, manager: Manager
) -> None:
    kube.create(NODECLASSES, simulator_nodeclass())
    # A cap of one, so that the two Nodes brought back one after the other below hold the third back until
    # both are Ready (with 40%, two of five dark would already be within the cap).
    health = {"maxUnhealthy": 1, "unhealthyConditions": [{"type": "Ready", "status": "Unknown", "timeoutSeconds": 3}]}
    kube.create(NODESETS, nodeset_manifest("fleet", 5, healthCheck=health))
    eventually(lambda: settled(kube, "fleet", 5, manager), timeout=90)
    before = names(members(kube, "fleet"))
    dark = sorted(before)[:3]  # 3 of 5 go dark together: more than the cap
    for node in dark:
        set_ready(kube, node, "Unknown")

    def held() -> dict[str, Any] | None:
        nodeset = kube.get(NODESETS, "fleet")
        conditions = {c["type"]: c for c in nodeset.get("status", {}).get("conditions", [])}
        remediation = conditions.get("RemediationAllowed")
        # Held once two are dark already (two is past the cap of one): wait until the status counts all three.
        held_for_all = remediation and remediation["status"] == "False" and "3 of 5" in remediation["message"]
        return nodeset if held_for_all else None

    nodeset = eventually(held, timeout=30, what="RemediationAllowed=False for 3 of 5")
    remediation = condition(nodeset, "RemediationAllowed")
    assert remediation["reason"] == "TooManyUnhealthy"
    assert "3 of 5 Nodes look failed or unhealthy" in remediation["message"]
    assert "maxUnhealthy" in remediation["message"]
    time.sleep(5)  # past their timeout: each is failed now, and still none goes
    assert names(members(kube, "fleet")) == before
    assert not any(ANNOTATION_DRAIN_STARTED in (n["metadata"].get("annotations") or {}) for n in members(kube, "fleet"))
    held_events = eventually(lambda: manager.recorder.flush() or events(kube, "fleet", "RemediationHeld"))
    assert held_events[0]["type"] == "Warning"

    # Two come back: one failed Node is within the cap, and it alone is replaced.
    for node in dark[:2]:
        set_ready(kube, node, "True")
    eventually(lambda: dark[2] not in names(members(kube, "fleet")), timeout=30, what="the one failed Node replaced")
    eventually(lambda: settled(kube, "fleet", 5, manager), timeout=60)
    assert set(dark[:2]) <= names(members(kube, "fleet"))
    assert condition(kube.get(NODESETS, "fleet"), "RemediationAllowed")["status"] == "True"
    replaced = events(kube, "fleet", "ReplacingFailedNode")
    assert len(replaced) == 1
    assert f"replacing Node {dark[2]} (Unhealthy): its condition Ready has been Unknown" in replaced[0]["message"]


def test_an_unhealthy_node_whose_machine_runs_is_cordoned_and_drained_within_its_budget_before_it_goes(
    kube: KubeClient, manager: Manager, namespace: str
) -> None:
    kube.create(NODECLASSES, simulator_nodeclass())
    health = {"unhealthyConditions": [{"type": "Ready", "status": "False", "timeoutSeconds": 2}]}
    kube.create(
        NODESETS,
        nodeset_manifest("drained", 1, healthCheck=health, drain={"timeoutSeconds": 120}),
    )
    eventually(lambda: settled(kube, "drained", 1, manager), timeout=60)
    (sick,) = names(members(kube, "drained"))
    pod = {
        "metadata": {"name": "precious", "labels": {"app": "precious"}},
        "spec": {"nodeName": sick, "containers": [{"name": "c", "image": "registry.example/app:1"}]},
    }
    kube.create(PODS, pod, namespace)
    budget = {
        "metadata": {"name": "precious"},
        "spec": {"minAvailable": 1, "selector": {"matchLabels": {"app": "precious"}}},
    }
    kube.create(PDBS, budget, namespace)
    eventually(
        lambda: kube.get(PODS, "precious", namespace).get("status", {}).get("phase") == "Running",
        what="the pod Running",
    )
    eventually(
        lambda: kube.get(PDBS, "precious", namespace).get("status", {}).get("currentHealthy") == 1,
        what="the budget to count the pod",
    )
    set_ready(kube, sick, "False")

    node = eventually(
        lambda: (n := kube.get(NODES, sick))["spec"].get("unschedulable") and n, timeout=30, what="the Node cordoned"
    )
    assert node["metadata"]["annotations"][ANNOTATION_REMOVAL_REASON] == "Replace"
    manager.recorder.flush()
    started = eventually(lambda: events_of_node(kube, sick, "DrainStarted"), what="DrainStarted")
    assert "its condition Ready has been False" in started[0]["message"]
    eventually(lambda: events_of_node(kube, sick, "EvictionBlocked"), what="the budget to hold the pod")
    # The replacement comes while the sick Node drains; the sick one stays as long as its budget holds.
    eventually(
        lambda: (
            len(
                [
                    n
                    for n in members(kube, "drained")
                    if not (n["metadata"].get("annotations") or {}).get(ANNOTATION_DRAIN_STARTED)
                ]
            )
            == 1
        ),
        timeout=30,
        what="a replacement Node",
    )
    time.sleep(2)
    assert sick in names(members(kube, "drained"))
    assert kube.get(PODS, "precious", namespace)["metadata"].get("deletionTimestamp") is None

    kube.delete(PDBS, "precious", namespace)
    eventually(lambda: sick not in names(members(kube, "drained")), timeout=60, what="the drained Node gone")
    eventually(lambda: settled(kube, "drained", 1, manager), timeout=60)


def events_of_node(kube: KubeClient, node: str, reason: str) -> list[dict[str, Any]]:
    return events(kube, node, reason)


def test_a_node_with_the_sets_label_that_the_set_did_not_create_is_never_counted_drained_or_removed(
    kube: KubeClient, manager: Manager
) -> None:
    kube.create(NODECLASSES, simulator_nodeclass())
    kube.create(NODESETS, nodeset_manifest("owned", 2))
    eventually(lambda: settled(kube, "owned", 2, manager), timeout=60)
    impostor = managed_node("impostor")
    impostor["metadata"]["labels"][LABEL_NODESET] = "owned"  # a kubelet told these labels, no ownerReference
    kube.create(NODES, impostor)
    eventually(
        lambda: (
            (kube.get(NODES, "impostor")["metadata"].get("annotations") or {}).get(ANNOTATION_MACHINE_PHASE)
            == "Running"
        ),
        timeout=30,
        what="the impostor's machine",
    )

    def reported() -> dict[str, Any] | None:
        nodeset = kube.get(NODESETS, "owned")
        conditions = {c["type"]: c for c in nodeset.get("status", {}).get("conditions", [])}
        foreign = conditions.get("ForeignNodes")
        return nodeset if foreign and foreign["status"] == "True" else None

    nodeset = eventually(reported, timeout=30, what="ForeignNodes=True")
    assert "impostor" in condition(nodeset, "ForeignNodes")["message"]
    assert nodeset["status"]["replicas"] == 2
    time.sleep(2)
    assert "impostor" in names(kube.list(NODES, labelSelector=f"{LABEL_NODECLASS}=sim")["items"])
    assert not kube.get(NODES, "impostor")["spec"].get("unschedulable")
    manager.recorder.flush()
    assert eventually(lambda: events(kube, "impostor", "ForeignNode"))[0]["type"] == "Warning"

    kube.patch(NODESETS, "owned", {"spec": {"replicas": 1}})
    eventually(
        lambda: len([n for n in members(kube, "owned") if n["metadata"]["name"] != "impostor"]) == 1,
        timeout=60,
        what="one of the set's own Nodes removed",
    )
    time.sleep(1)
    impostor_now = kube.get(NODES, "impostor")
    assert impostor_now["metadata"].get("deletionTimestamp") is None
    assert not impostor_now["spec"].get("unschedulable")
    assert kube.get(NODESETS, "owned")["status"]["replicas"] == 1
