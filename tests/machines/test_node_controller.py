"""A Node that names a NodeClass gets a machine, and loses it when deleted (NodeController + simulator)."""

from __future__ import annotations

import dataclasses
import itertools
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from kube_node.controlplane import ControlPlane
from nodeset_controller.api import (
    ANNOTATION_MACHINE_ERROR,
    ANNOTATION_MACHINE_ERROR_CLASS,
    ANNOTATION_MACHINE_ID,
    ANNOTATION_MACHINE_PHASE,
    FINALIZER_MACHINE,
    LABEL_NODECLASS,
    TAINT_STARTUP,
    now_rfc3339,
)
from nodeset_controller.controllers import Manager
from nodeset_controller.failpoints import FAILPOINTS_ENV
from nodeset_controller.kube import LEASES, NODECLASSES, NODES, ApiError, KubeClient, Resource
from nodeset_controller.providers import MachineSpec, SimulatorCloud, SimulatorSettings, machine_name
from tests.conftest import Kubectl, eventually, managed_node, simulator_nodeclass

pytestmark = pytest.mark.controlplane

EVENTS = Resource("", "v1", "events", namespaced=True)


def node_or_none(kube: KubeClient, name: str) -> dict[str, Any] | None:
    try:
        return kube.get(NODES, name)
    except ApiError as error:
        if error.not_found:
            return None
        raise


def node_when(kube: KubeClient, name: str, predicate: Any) -> dict[str, Any] | None:
    """The Node if ``predicate(node)`` holds now, else None (for eventually)."""
    node = node_or_none(kube, name)
    return node if node is not None and predicate(node) else None


def has_startup_taint(node: dict[str, Any]) -> bool:
    return TAINT_STARTUP in [t["key"] for t in node["spec"].get("taints") or []]


def is_ready(node: dict[str, Any] | None) -> bool:
    conditions = (node or {}).get("status", {}).get("conditions") or []
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)


def events_for(kube: KubeClient, name: str, reason: str | None = None) -> list[dict[str, Any]]:
    items = kube.list(EVENTS, "default", fieldSelector=f"involvedObject.name={name}")["items"]
    return [e for e in items if reason is None or e["reason"] == reason]


def test_a_node_naming_a_class_gets_a_machine_becomes_ready_and_loses_the_machine_on_delete(
    kube: KubeClient, kubectl: Kubectl, manager: Manager, tmp_path: Path
) -> None:
    kube.create(NODECLASSES, simulator_nodeclass(bootDelaySeconds=1))
    manifest = tmp_path / "node.yaml"
    manifest.write_text(yaml.safe_dump(managed_node("worker-1")))
    kubectl.run("create", "-f", str(manifest))

    # First sight: finalizer, our providerID and the startup taint, before any machine exists.
    node = eventually(lambda: node_when(kube, "worker-1", lambda n: n["spec"].get("providerID")))
    assert node["spec"]["providerID"] == "kube-node://sim/worker-1"
    assert FINALIZER_MACHINE in node["metadata"]["finalizers"]
    assert manager.simulator is not None
    machine = eventually(lambda: manager.simulator.get(machine_name("worker-1", node["metadata"]["uid"])))
    assert machine.node_name == "worker-1"
    assert machine.spec["userData"] == "#cloud-config\n# join as worker-1\n"
    tainted = kube.get(NODES, "worker-1")
    assert not is_ready(tainted)
    assert has_startup_taint(tainted)

    # The simulated kubelet marks it Ready; the controller removes the startup taint and records the machine.
    ready = eventually(
        lambda: node_when(kube, "worker-1", lambda n: is_ready(n) and not has_startup_taint(n)),
        what="Node Ready without the startup taint",
    )
    annotations = ready["metadata"]["annotations"]
    assert annotations[ANNOTATION_MACHINE_ID] == machine.id
    assert eventually(
        lambda: kube.get(NODES, "worker-1")["metadata"]["annotations"][ANNOTATION_MACHINE_PHASE] == "Running"
    )
    assert ready["status"]["capacity"]["cpu"] == "4"
    assert ready["status"]["allocatable"]["memory"] == "16Gi"
    assert ready["status"]["nodeInfo"]["kubeletVersion"].startswith("v1.36.3")
    assert kube.get(LEASES, "worker-1", "kube-node-lease")["spec"]["holderIdentity"] == "worker-1"
    assert {e["reason"] for e in events_for(kube, "worker-1")} >= {"MachineCreated", "NodeReady"}

    kubectl.run("delete", "node", "worker-1", "--wait=false")
    eventually(lambda: node_or_none(kube, "worker-1") is None, what="the Node to go")
    assert manager.simulator.machines() == []


def node_versions(kube: KubeClient, name: str, since: str, until: Any, timeout: float = 60) -> list[dict[str, Any]]:
    """Every version of the Node the watch shows after resourceVersion ``since``, up to the first for which
    ``until`` holds."""
    versions: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for event in kube.watch(
            NODES, resource_version=since, fieldSelector=f"metadata.name={name}", timeout_seconds=5
        ):
            if event["type"] == "BOOKMARK":
                continue
            node = event["object"]
            since = node["metadata"]["resourceVersion"]
            versions.append(node)
            if until(node):
                return versions
    raise AssertionError(f"Node {name} never reached the state waited for; saw {len(versions)} versions")


def test_a_machine_created_running_is_recorded_in_the_write_that_removes_the_startup_taint(
    kube: KubeClient, manager: Manager
) -> None:
    kube.create(NODECLASSES, simulator_nodeclass())  # no boot delay: the machine runs as soon as it is created
    since = kube.create(NODES, managed_node("quick"))["metadata"]["resourceVersion"]

    versions = node_versions(kube, "quick", since, lambda n: has_startup_taint(n) is False and is_ready(n))

    assert any(has_startup_taint(n) for n in versions), "the Node never carried the startup taint"
    untainted = versions[-1]  # the version the startup taint's removal made
    assert not any(ANNOTATION_MACHINE_ID in annotations_of(n) for n in versions[:-1]), "recorded on its own"
    assert ANNOTATION_MACHINE_ID in annotations_of(untainted), "the taint went without the machine's record"
    assert annotations_of(untainted)[ANNOTATION_MACHINE_PHASE] == "Running"
    assert manager.simulator is not None
    assert annotations_of(untainted)[ANNOTATION_MACHINE_ID] == manager.simulator.machines()[0].id
    # Nothing creates or records it a second time once the cache shows the record.
    time.sleep(1.0)  # five of the test NodeController's boot polls
    manager.recorder.flush()
    created = events_for(kube, "quick", "MachineCreated")
    assert [e.get("count") for e in created] == [1]
    assert [m.name for m in manager.simulator.machines()] == [machine_name("quick", untainted["metadata"]["uid"])]


def test_a_machine_created_running_whose_kubelet_stays_silent_is_recorded_after_the_grace(
    kube: KubeClient, manager: Manager
) -> None:
    manager.node_controller.settings = dataclasses.replace(manager.node_controller.settings, record_grace=3.0)
    assert manager.kubelets is not None
    manager.kubelets.stop()  # the machine runs, but nothing on it reports to the API server
    kube.create(NODECLASSES, simulator_nodeclass())
    kube.create(NODES, managed_node("silent"))
    assert manager.simulator is not None
    eventually(manager.simulator.machines, what="the machine")
    assert ANNOTATION_MACHINE_ID not in annotations_of(kube.get(NODES, "silent")), "not waiting for the kubelet"

    node = eventually(
        lambda: node_when(kube, "silent", lambda n: ANNOTATION_MACHINE_ID in annotations_of(n)),
        what="the machine recorded without the kubelet",
    )
    assert manager.simulator is not None
    assert annotations_of(node)[ANNOTATION_MACHINE_ID] == manager.simulator.machines()[0].id
    assert annotations_of(node)[ANNOTATION_MACHINE_PHASE] == "Running"
    assert not is_ready(node)
    assert has_startup_taint(node), "the startup taint must stay until the kubelet reports Ready"


@pytest.mark.parametrize("leading", [True, False], ids=["clean stop", "lease lost"])
def test_stopping_records_a_machine_still_waiting_unless_the_lease_was_lost(
    kube: KubeClient, manager: Manager, leading: bool
) -> None:
    manager.node_controller.settings = dataclasses.replace(manager.node_controller.settings, record_grace=600.0)
    assert manager.kubelets is not None and manager.simulator is not None
    manager.kubelets.stop()  # no Ready, so the record waits (for the whole test: the grace is long)
    kube.create(NODECLASSES, simulator_nodeclass())
    kube.create(NODES, managed_node("waiting"))
    machines = eventually(manager.simulator.machines, what="the machine")
    assert eventually(lambda: manager.recorder.flush() or events_for(kube, "waiting", "MachineCreated"))
    assert ANNOTATION_MACHINE_ID not in annotations_of(kube.get(NODES, "waiting"))

    assert manager.stop_acting(grace=5.0, leading=leading)

    annotations = annotations_of(kube.get(NODES, "waiting"))
    if leading:
        assert annotations[ANNOTATION_MACHINE_ID] == machines[0].id
        assert annotations[ANNOTATION_MACHINE_PHASE] == "Running"
    else:  # another replica may lead already: it finds the machine through the idempotent create
        assert ANNOTATION_MACHINE_ID not in annotations


def test_an_error_on_a_node_whose_machine_waits_to_be_recorded_is_written_with_the_record(
    kube: KubeClient, manager: Manager
) -> None:
    # An error beside no machine id reads as a failed create, to the cluster-autoscaler too.
    manager.node_controller.settings = dataclasses.replace(manager.node_controller.settings, record_grace=600.0)
    assert manager.kubelets is not None and manager.simulator is not None
    manager.kubelets.stop()
    kube.create(NODECLASSES, simulator_nodeclass())
    kube.create(NODES, managed_node("orphaned-class"))
    machines = eventually(manager.simulator.machines, what="the machine")
    assert ANNOTATION_MACHINE_ID not in annotations_of(kube.get(NODES, "orphaned-class"))

    # The provider can no longer be built (a NodeClass deleted while in use no longer does it: it stays).
    kube.patch(NODECLASSES, "sim", {"spec": {"driverOptions": {"bootDelaySeconds": "soon"}}})

    node = eventually(
        lambda: node_when(kube, "orphaned-class", lambda n: ANNOTATION_MACHINE_ERROR in annotations_of(n)),
        what="the error recorded",
    )
    assert "driverOptions.bootDelaySeconds must be a number" in annotations_of(node)[ANNOTATION_MACHINE_ERROR]
    assert annotations_of(node)[ANNOTATION_MACHINE_ID] == machines[0].id


def annotations_of(node: dict[str, Any]) -> dict[str, str]:
    return node["metadata"].get("annotations") or {}


def test_a_crash_between_create_and_record_never_makes_a_second_machine(
    control_plane: ControlPlane, kube: KubeClient, tmp_path: Path
) -> None:
    kube.create(NODECLASSES, simulator_nodeclass())
    simulator_dir = tmp_path / "simulator"
    args = [
        sys.executable,
        "-m",
        "kube_node",
        "run",
        "--kubeconfig",
        str(control_plane.kubeconfig),
        "--simulator-dir",
        str(simulator_dir),
        "--grpc-address=",
        "--status-address=",
        "--no-leader-elect",  # one process; leader election has its own tests
    ]
    log = (tmp_path / "kube-node.log").open("w")
    crashing = subprocess.Popen(
        args, env={**os.environ, FAILPOINTS_ENV: "after-machine-create=1"}, stdout=log, stderr=log
    )
    kube.create(NODES, managed_node("crashy"))
    try:
        assert crashing.wait(timeout=60) == -signal.SIGKILL, (tmp_path / "kube-node.log").read_text()
    except BaseException:
        log.close()
        raise
    uid = kube.get(NODES, "crashy")["metadata"]["uid"]
    cloud = SimulatorCloud(simulator_dir)
    assert [m.name for m in cloud.machines()] == [machine_name("crashy", uid)]
    first_id = cloud.machines()[0].id
    cloud.close()
    assert ANNOTATION_MACHINE_ID not in kube.get(NODES, "crashy")["metadata"].get("annotations", {})

    restarted = subprocess.Popen(args, stdout=log, stderr=log)
    try:
        node = eventually(
            lambda: node_when(kube, "crashy", lambda n: is_ready(n) and not has_startup_taint(n)),
            timeout=60,
            what="the Node Ready, its startup taint removed and its machine recorded in the same write",
        )
        assert annotations_of(node)[ANNOTATION_MACHINE_ID] == first_id
        cloud = SimulatorCloud(simulator_dir)
        assert [m.id for m in cloud.machines()] == [first_id]
        cloud.close()
    finally:
        restarted.send_signal(signal.SIGTERM)
        assert restarted.wait(timeout=30) == 0
        log.close()


def test_quota_failures_are_recorded_retried_with_growing_delay_and_succeed_once_quota_frees(
    kube: KubeClient, manager: Manager
) -> None:
    kube.create(NODECLASSES, simulator_nodeclass(createFailureRate=1))
    kube.create(NODES, managed_node("starved"))
    assert manager.simulator is not None

    def refused() -> list[float] | None:
        times = [t for _, t, code in manager.simulator.create_log if code == "QUOTA_EXCEEDED"]
        return times if len(times) >= 6 else None

    attempts = eventually(refused, timeout=40, what="six refused creates")
    gaps = [b - a for a, b in itertools.pairwise(attempts)]
    # Exponential backoff: after the first retries, each wait is about double the one before.
    assert gaps[-1] > 1.5 * gaps[-2] > 0, gaps
    assert gaps[-2] > 1.5 * gaps[-3], gaps
    annotations = kube.get(NODES, "starved")["metadata"]["annotations"]
    assert "QUOTA_EXCEEDED" in annotations[ANNOTATION_MACHINE_ERROR]
    assert annotations[ANNOTATION_MACHINE_ERROR_CLASS] == "OutOfResources"
    assert annotations[ANNOTATION_MACHINE_PHASE] == "Pending"
    failed = eventually(lambda: events_for(kube, "starved", "MachineCreateFailed"))
    assert failed[0]["type"] == "Warning"
    assert "quota exceeded" in failed[0]["message"]
    assert manager.simulator.machines() == []

    kube.patch(NODECLASSES, "sim", {"spec": {"driverOptions": {"createFailureRate": 0}}})
    node = eventually(lambda: node_when(kube, "starved", is_ready), timeout=60)
    assert ANNOTATION_MACHINE_ERROR not in node["metadata"]["annotations"]
    assert len(manager.simulator.machines()) == 1


def test_orphan_machines_are_destroyed_after_the_grace_period_and_owned_ones_never(
    kube: KubeClient, manager: Manager
) -> None:
    kube.create(NODECLASSES, simulator_nodeclass())
    kube.create(NODES, managed_node("owner"))
    node = eventually(lambda: node_when(kube, "owner", is_ready))
    owned = machine_name("owner", node["metadata"]["uid"])
    cloud = manager.simulator
    assert cloud is not None
    settings = SimulatorSettings()
    spec = {"nodeclass": "sim", "provider_id": "kube-node://sim/x", "capacity": {}}
    cloud.create(
        MachineSpec(name="gone-node-1234abcd", node_name="gone-node", node_uid="1234abcd", cluster="kube-node", **spec),
        settings,
    )
    cloud.create(
        MachineSpec(name="other-cluster-1", node_name="gone-node", node_uid="1", cluster="someone-else", **spec),
        settings,
    )
    # Inside the grace period (600 s in this fixture) the sweeps, once a second, touch nothing.
    time.sleep(2)
    assert len(cloud.machines()) == 3
    manager.node_controller.settings = dataclasses.replace(manager.node_controller.settings, orphan_grace=0.5)
    eventually(lambda: cloud.get("gone-node-1234abcd") is None, timeout=10, what="the orphan destroyed")
    time.sleep(2)
    assert sorted(m.name for m in cloud.machines()) == sorted([owned, "other-cluster-1"])
    assert manager.node_controller.orphans_destroyed == 1
    assert is_ready(kube.get(NODES, "owner"))


def test_a_node_whose_nodeclass_is_missing_gets_an_event_and_no_machine(kube: KubeClient, manager: Manager) -> None:
    kube.create(NODES, managed_node("lost", nodeclass="nowhere"))
    event = eventually(lambda: events_for(kube, "lost", "NodeClassNotFound"))[0]
    assert event["type"] == "Warning"
    assert "NodeClass nowhere does not exist" in event["message"]
    time.sleep(1)
    assert manager.simulator is not None and manager.simulator.machines() == []
    assert "does not exist" in kube.get(NODES, "lost")["metadata"]["annotations"][ANNOTATION_MACHINE_ERROR]
    # When the class appears, the Node gets its machine.
    kube.create(NODECLASSES, simulator_nodeclass("nowhere"))
    eventually(lambda: is_ready(kube.get(NODES, "lost")), timeout=30, what="the Node to become Ready")


def test_a_ready_node_is_proof_that_its_machine_runs_while_the_provider_still_says_creating(
    kube: KubeClient, manager: Manager
) -> None:
    kube.create(NODECLASSES, simulator_nodeclass(bootDelaySeconds=3600))  # the cloud says "creating" for an hour
    kube.create(NODES, managed_node("early"))
    eventually(
        lambda: node_when(kube, "early", lambda n: annotations_of(n).get(ANNOTATION_MACHINE_PHASE) == "Creating"),
        what="the machine recorded as Creating",
    )
    # A kubelet reports Ready (a real machine's, which the cloud's API has not caught up with).
    stamp = now_rfc3339()
    ready = {"type": "Ready", "status": "True", "reason": "KubeletReady", "lastTransitionTime": stamp}
    kube.patch(NODES, "early", {"status": {"conditions": [ready]}}, subresource="status")

    node = eventually(
        lambda: node_when(kube, "early", lambda n: annotations_of(n).get(ANNOTATION_MACHINE_PHASE) == "Running"),
        timeout=15,
        what="the machine recorded as Running",
    )
    assert not has_startup_taint(node)


def test_a_node_that_lost_its_nodeclass_label_keeps_its_machine_and_its_deletion_still_destroys_it(
    kube: KubeClient, manager: Manager
) -> None:
    manager.node_controller.settings = dataclasses.replace(manager.node_controller.settings, orphan_grace=0.5)
    kube.create(NODECLASSES, simulator_nodeclass())
    kube.create(NODES, managed_node("unlabelled"))
    node = eventually(lambda: node_when(kube, "unlabelled", is_ready), what="the Node Ready")
    assert manager.simulator is not None
    (machine,) = manager.simulator.machines()
    assert machine.name == machine_name("unlabelled", node["metadata"]["uid"])

    kube.patch(NODES, "unlabelled", {"metadata": {"labels": {LABEL_NODECLASS: None}}})  # gone from kube-node's cache
    warned = eventually(
        lambda: manager.recorder.flush() or events_for(kube, "unlabelled", "NodeClassLabelRemoved"),
        timeout=15,
        what="the Node told that it lost its label",
    )
    assert warned[0]["type"] == "Warning"
    assert machine.name in warned[0]["message"]
    time.sleep(3)  # three sweeps past the grace period
    assert [m.name for m in manager.simulator.machines()] == [machine.name]
    assert manager.node_controller.orphans_destroyed == 0

    # Deleting it keeps the finalizer's promise: the machine goes first, then the Node.
    kube.delete(NODES, "unlabelled")
    eventually(lambda: node_or_none(kube, "unlabelled") is None, timeout=15, what="the Node gone")
    assert manager.simulator.machines() == []


def test_a_machine_listed_without_a_creation_time_gets_its_grace_from_when_it_was_first_seen(
    kube: KubeClient, manager: Manager
) -> None:
    kube.create(NODECLASSES, simulator_nodeclass(reportCreationTime="false"))
    assert manager.simulator is not None
    spec = MachineSpec(
        name="stray-1234abcd",
        node_name="stray",
        node_uid="1234abcd",
        nodeclass="sim",
        cluster="kube-node",
        provider_id="kube-node://sim/stray",
    )
    manager.simulator.create(spec, SimulatorSettings())
    manager.node_controller.settings = dataclasses.replace(manager.node_controller.settings, orphan_grace=4.0)
    time.sleep(2.5)  # sweeps once a second: the first saw it, none may destroy it yet
    assert manager.simulator.get("stray-1234abcd") is not None
    eventually(lambda: manager.simulator.get("stray-1234abcd") is None, timeout=15, what="the orphan destroyed")
