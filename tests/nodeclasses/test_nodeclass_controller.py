"""NodeClasses on the real control plane: never deleted from under their Nodes, and a status that says whether
machines can be made from them (NodeClassController + simulator, and libcloud's offline dummy driver)."""

from __future__ import annotations

import dataclasses
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from nodeset_controller import metrics
from nodeset_controller.api import (
    ANNOTATION_MACHINE_ERROR,
    FINALIZER_IN_USE,
    LABEL_NODECLASS,
    LABEL_NODESET,
    TAINT_STARTUP,
)
from nodeset_controller.controllers import Manager
from nodeset_controller.kube import NAMESPACES, NODECLASSES, NODES, NODESETS, SECRETS, ApiError, KubeClient, Resource
from tests.conftest import Kubectl, eventually, managed_node, nodeset_manifest, simulator_nodeclass

pytestmark = pytest.mark.controlplane

EVENTS = Resource("", "v1", "events", namespaced=True)


def nodeclass_or_none(kube: KubeClient, name: str) -> dict[str, Any] | None:
    try:
        return kube.get(NODECLASSES, name)
    except ApiError as error:
        if error.not_found:
            return None
        raise


def condition(nodeclass: dict[str, Any] | None, kind: str) -> dict[str, Any] | None:
    conditions = ((nodeclass or {}).get("status") or {}).get("conditions") or []
    return next((c for c in conditions if c["type"] == kind), None)


def when_condition(kube: KubeClient, name: str, kind: str, **expected: Any) -> dict[str, Any] | None:
    """The NodeClass once its condition ``kind`` has every ``expected`` field (substring for message)."""
    nodeclass = nodeclass_or_none(kube, name)
    found = condition(nodeclass, kind)
    if found is None:
        return None
    for key, value in expected.items():
        if key == "message":
            if value not in found["message"]:
                return None
        elif found.get(key) != value:
            return None
    return nodeclass


def events_for(kube: KubeClient, name: str, reason: str | None = None) -> list[dict[str, Any]]:
    items = kube.list(EVENTS, "default", fieldSelector=f"involvedObject.name={name}")["items"]
    return [
        e for e in items if (reason is None or e["reason"] == reason) and e["involvedObject"]["kind"] == "NodeClass"
    ]


def is_ready(node: dict[str, Any]) -> bool:
    conditions = node.get("status", {}).get("conditions") or []
    taints = [t["key"] for t in node["spec"].get("taints") or []]
    return TAINT_STARTUP not in taints and any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)


def nodes_of(kube: KubeClient, nodeclass: str = "sim") -> list[dict[str, Any]]:
    return kube.list(NODES, labelSelector=f"{LABEL_NODECLASS}={nodeclass}")["items"]


def all_ready(kube: KubeClient, count: int, manager: Manager) -> list[dict[str, Any]] | None:
    nodes = nodes_of(kube)
    assert manager.simulator is not None
    if len(nodes) != count or not all(is_ready(n) for n in nodes) or len(manager.simulator.machines()) != count:
        return None
    return nodes


def test_every_nodeclass_gets_the_in_use_finalizer_and_a_status(
    kube: KubeClient, kubectl: Kubectl, manager: Manager
) -> None:
    kube.create(NODECLASSES, simulator_nodeclass())

    nodeclass = eventually(lambda: when_condition(kube, "sim", "Ready", status="True"), what="Ready")
    assert FINALIZER_IN_USE in nodeclass["metadata"]["finalizers"]
    status = nodeclass["status"]
    assert status["observedGeneration"] == nodeclass["metadata"]["generation"]
    assert (status["nodes"], status["nodeSets"]) == (0, 0)
    ready = condition(nodeclass, "Ready")
    assert ready is not None and ready["reason"] == "Resolved" and ready["message"].startswith("simulator: ")
    in_use = condition(nodeclass, "InUse")
    assert in_use is not None and (in_use["status"], in_use["reason"]) == ("False", "Unused")
    assert eventually(lambda: events_for(kube, "sim", "Ready"), what="the Ready Event")[0]["type"] == "Normal"

    kube.create(NODESETS, nodeset_manifest("web", 2))
    kube.create(NODES, managed_node("solo"))
    nodeclass = eventually(lambda: when_condition(kube, "sim", "InUse", status="True", reason="InUse"))
    in_use = condition(nodeclass, "InUse")
    assert in_use is not None and "1 NodeSet (web)" in in_use["message"]
    nodeclass = eventually(lambda: (nc := kube.get(NODECLASSES, "sim"))["status"].get("nodes") == 3 and nc)
    assert nodeclass["status"]["nodeSets"] == 1
    assert "3 Nodes (solo, web-" in condition(nodeclass, "InUse")["message"]  # type: ignore[index]

    table = kubectl.run("get", "nodeclass", "sim").stdout.splitlines()
    assert table[0].split()[:3] == ["NAME", "PROVIDER", "READY"] and "NODES" in table[0].split()
    assert table[1].split()[:4] == ["sim", "simulator", "True", "3"]


def test_an_in_use_nodeclass_stays_until_its_nodes_and_nodesets_are_gone(
    kube: KubeClient, kubectl: Kubectl, manager: Manager
) -> None:
    kube.create(NODECLASSES, simulator_nodeclass())
    kube.create(NODESETS, nodeset_manifest("web", 2))
    kube.create(NODES, managed_node("solo"))
    eventually(lambda: all_ready(kube, 3, manager), timeout=60, what="3 Ready Nodes")
    eventually(lambda: FINALIZER_IN_USE in kube.get(NODECLASSES, "sim")["metadata"].get("finalizers", []))

    kubectl.run("delete", "nodeclass", "sim", "--wait=false")

    # Terminating, saying why, and nothing else changes: the Nodes keep their machines and stay healthy.
    nodeclass = eventually(lambda: when_condition(kube, "sim", "InUse", reason="DeletionBlocked"), what="blocked")
    assert nodeclass["metadata"]["deletionTimestamp"]
    message = condition(nodeclass, "InUse")["message"]  # type: ignore[index]
    assert "3 Nodes (solo, web-" in message and "1 NodeSet (web)" in message
    event = eventually(lambda: events_for(kube, "sim", "DeletionBlocked"), what="the Warning Event")[0]
    assert event["type"] == "Warning" and "1 NodeSet (web)" in event["message"]
    time.sleep(3)  # a few sweeps (once a second here) and reconciles
    nodes = nodes_of(kube)
    assert len(nodes) == 3 and all(is_ready(n) and not n["metadata"].get("deletionTimestamp") for n in nodes)
    assert not [n for n in nodes if ANNOTATION_MACHINE_ERROR in (n["metadata"].get("annotations") or {})]
    assert manager.simulator is not None and len(manager.simulator.machines()) == 3
    assert nodeclass_or_none(kube, "sim") is not None

    # A lone Node goes: its machine is destroyed through the (Terminating) class; the class stays for the set.
    kubectl.run("delete", "node", "solo")
    eventually(lambda: len(manager.simulator.machines()) == 2, what="solo's machine destroyed")  # type: ignore[union-attr]
    eventually(lambda: when_condition(kube, "sim", "InUse", message="2 Nodes (web-"), what="2 Nodes left")

    # The set scales to zero: only the NodeSet holds the class now.
    kubectl.run("scale", "nodeset", "web", "--replicas=0")
    eventually(lambda: not nodes_of(kube) and not manager.simulator.machines(), timeout=60, what="Nodes gone")  # type: ignore[union-attr]
    nodeclass = eventually(lambda: when_condition(kube, "sim", "InUse", message="deletion waits for 1 NodeSet (web)"))
    assert nodeclass["status"]["nodes"] == 0

    kubectl.run("delete", "nodeset", "web")
    eventually(lambda: nodeclass_or_none(kube, "sim") is None, what="the NodeClass gone")
    assert manager.simulator.machines() == []


def test_a_nodeclass_deleted_and_created_again_keeps_its_nodes_and_machines(kube: KubeClient, manager: Manager) -> None:
    """What a GitOps tool's replace does, here with the finalizer removed by hand so that the deletion is
    final: the Nodes of the class, their machines and the NodeSet are left as they are."""
    kube.create(NODECLASSES, simulator_nodeclass())
    kube.create(NODESETS, nodeset_manifest("web", 2))
    kube.create(NODES, managed_node("solo"))
    before = eventually(lambda: all_ready(kube, 3, manager), timeout=60, what="3 Ready Nodes")
    uids = sorted(n["metadata"]["uid"] for n in before)
    assert manager.simulator is not None
    machines = sorted(m.name for m in manager.simulator.machines())
    destroyed_before = metrics.MACHINE_OPERATIONS.labels("simulator", "destroy", "success")._value.get()

    kube.delete(NODECLASSES, "sim")
    if nodeclass_or_none(kube, "sim") is not None:  # held by the in-use finalizer: forced, as a person might
        kube.patch(NODECLASSES, "sim", {"metadata": {"finalizers": None}})
    eventually(lambda: manager.nodeclasses.get("sim") is None, what="kube-node to see the NodeClass gone")
    kube.create(NODECLASSES, simulator_nodeclass())

    time.sleep(4)  # sweeps once a second, NodeSet replacement backoff 1 s: long enough for any harm to show
    after = nodes_of(kube)
    assert sorted(n["metadata"]["uid"] for n in after) == uids, "no Node may be deleted or replaced"
    assert all(is_ready(n) and not n["metadata"].get("deletionTimestamp") for n in after)
    assert not [
        n["metadata"]["name"] for n in after if ANNOTATION_MACHINE_ERROR in n["metadata"].get("annotations", {})
    ]
    assert sorted(m.name for m in manager.simulator.machines()) == machines, "no machine may be destroyed"
    assert metrics.MACHINE_OPERATIONS.labels("simulator", "destroy", "success")._value.get() == destroyed_before
    assert kube.get(NODESETS, "web")["status"]["readyReplicas"] == 2
    assert {n["metadata"]["labels"].get(LABEL_NODESET) for n in after} == {"web", None}
    nodeclass = eventually(lambda: when_condition(kube, "sim", "Ready", status="True"), what="Ready again")
    assert nodeclass["status"]["observedGeneration"] == 1
    assert FINALIZER_IN_USE in nodeclass["metadata"]["finalizers"]


def test_ready_is_checked_once_per_generation_and_on_a_timer_not_per_reconcile(
    kube: KubeClient, manager: Manager
) -> None:
    checks = metrics.MACHINE_OPERATIONS.labels("simulator", "validate", "success")
    kube.create(NODECLASSES, simulator_nodeclass())
    eventually(lambda: when_condition(kube, "sim", "Ready", status="True"), what="Ready")
    first = checks._value.get()

    # Many reconciles (Nodes come and go, the NodeClass's metadata changes): no check.
    kube.create(NODESETS, nodeset_manifest("web", 3))
    eventually(lambda: all_ready(kube, 3, manager), timeout=60, what="3 Ready Nodes")
    kube.patch(NODECLASSES, "sim", {"metadata": {"labels": {"team": "blue"}}})
    eventually(lambda: kube.get(NODECLASSES, "sim")["status"].get("nodes") == 3, what="the Nodes counted")
    time.sleep(1.5)
    assert checks._value.get() == first

    # A new generation: checked once more.
    kube.patch(NODECLASSES, "sim", {"spec": {"driverOptions": {"bootDelaySeconds": 0}}})
    eventually(lambda: kube.get(NODECLASSES, "sim")["status"].get("observedGeneration") == 2, what="generation 2")
    time.sleep(1.5)
    assert checks._value.get() == first + 1

    # And on the timer.
    manager.nodeclass_controller.settings = dataclasses.replace(manager.nodeclass_controller.settings, recheck=0.5)
    manager.nodeclass_controller.queue.add("sim")
    eventually(lambda: checks._value.get() >= first + 3, timeout=10, what="checks on the timer")


@pytest.fixture
def credentials(kube: KubeClient) -> Iterator[str]:
    """A namespace for credentials Secrets, deleted afterwards."""
    name = f"creds-{uuid.uuid4().hex[:6]}"
    kube.create(NAMESPACES, {"metadata": {"name": name}})
    yield name
    kube.delete(NAMESPACES, name)


def dummy_nodeclass(namespace: str, **spec: Any) -> dict[str, Any]:
    """A NodeClass of libcloud's dummy driver (offline: its sizes, images and locations are fixed lists)."""
    return {
        "apiVersion": "kube-node.io/v1alpha1",
        "kind": "NodeClass",
        "metadata": {"name": "dummy"},
        "spec": {
            "provider": "dummy",
            "credentialsSecretRef": {"name": "dummy-credentials", "namespace": namespace},
            "size": "Small",
            "image": "Ubuntu 9.10",
            "location": "London Loft",
            "capacity": {"cpu": "1", "memory": "128Mi"},
            **spec,
        },
    }


def test_ready_says_whether_libcloud_finds_the_credentials_size_image_and_location(
    kube: KubeClient, manager: Manager, credentials: str
) -> None:
    manager.nodeclass_controller.settings = dataclasses.replace(
        manager.nodeclass_controller.settings, recheck_failed=0.5
    )
    kube.create(NODECLASSES, dummy_nodeclass(credentials))
    nodeclass = eventually(lambda: when_condition(kube, "dummy", "Ready", status="False"), what="not Ready")
    ready = condition(nodeclass, "Ready")
    assert ready is not None and ready["reason"] == "CredentialsNotFound"
    assert f"credentials Secret {credentials}/dummy-credentials not found" in ready["message"]
    event = eventually(lambda: events_for(kube, "dummy", "CredentialsNotFound"))[0]
    assert event["type"] == "Warning"

    # The Secret appears: found on the next check (soon, after a failure), and everything resolves.
    kube.create(SECRETS, {"metadata": {"name": "dummy-credentials"}, "stringData": {"key": "0"}}, namespace=credentials)
    nodeclass = eventually(lambda: when_condition(kube, "dummy", "Ready", status="True"), what="Ready")
    assert condition(nodeclass, "Ready")["message"] == (  # type: ignore[index]
        "dummy: size Small (1), image Ubuntu 9.10 (1), location London Loft (2)"
    )

    kube.patch(NODECLASSES, "dummy", {"spec": {"size": "Enormous"}})
    nodeclass = eventually(lambda: when_condition(kube, "dummy", "Ready", reason="SizeNotFound"), what="bad size")
    assert condition(nodeclass, "Ready")["status"] == "False"  # type: ignore[index]
    assert "size 'Enormous' not found" in condition(nodeclass, "Ready")["message"]  # type: ignore[index]
    assert nodeclass["status"]["observedGeneration"] == nodeclass["metadata"]["generation"]
