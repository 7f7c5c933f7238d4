"""The write fence: a fenced client sends no change, and the provider registry starts no create or destroy,
while the fence refuses; reads pass; the refusal is logged once and the work queue retries it quietly."""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import pytest

from kube_node.controlplane import ControlPlane
from nodeset_controller.kube import (
    NODECLASSES,
    NODES,
    KubeClient,
    NotLeaderError,
    Result,
    WorkQueue,
    WriteFence,
    nodeclass_from_json,
    run_workers,
)
from nodeset_controller.providers import MachineSpec, ProviderRegistry, SimulatorCloud
from tests.conftest import eventually, managed_node, simulator_nodeclass


class Leading:
    """A switch standing in for LeaderElector.is_leader."""

    def __init__(self) -> None:
        self.now = True

    def __call__(self) -> bool:
        return self.now


def test_a_fenced_client_sends_no_change_while_its_fence_refuses_and_says_so_once(
    kube: KubeClient, caplog: pytest.LogCaptureFixture
) -> None:
    leading = Leading()
    fenced = kube.fenced(WriteFence(leading))
    assert kube.fence is None  # the client it was made from is not fenced
    created = fenced.create(NODES, managed_node("fenced"))

    leading.now = False
    caplog.set_level(logging.DEBUG, logger="nodeset_controller.kube._fence")
    refused = [
        lambda: fenced.create(NODES, managed_node("never")),
        lambda: fenced.patch(NODES, "fenced", {"metadata": {"labels": {"fenced": "patched"}}}),
        lambda: fenced.replace(NODES, "fenced", created),
        lambda: fenced.delete(NODES, "fenced"),
    ]
    for write in refused:
        with pytest.raises(NotLeaderError) as error:
            write()
        assert error.value.status == 0
        assert "does not hold the leader Lease" in str(error.value)
    # Nothing reached the API server: the Node is as it was and the other was never made (its resourceVersion
    # may move: the session's node-lifecycle controller taints a Node no kubelet reports for).
    current = kube.get(NODES, "fenced")
    assert "fenced" not in (current["metadata"].get("labels") or {})
    assert current["metadata"].get("deletionTimestamp") is None
    assert current["metadata"]["uid"] == created["metadata"]["uid"]
    assert [n["metadata"]["name"] for n in kube.list(NODES)["items"]] == ["fenced"]
    # Reads pass, and so do the writes of the unfenced client (leader election's own).
    assert fenced.get(NODES, "fenced")["metadata"]["name"] == "fenced"
    kube.patch(NODES, "fenced", {"metadata": {"labels": {"unfenced": "yes"}}})
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1, [r.getMessage() for r in warnings]
    assert "not the leader now: refusing POST /api/v1/nodes" in warnings[0].getMessage()

    leading.now = True
    fenced.patch(NODES, "fenced", {"metadata": {"labels": {"fenced": "again"}}})
    assert kube.get(NODES, "fenced")["metadata"]["labels"]["fenced"] == "again"


def test_the_fence_is_asked_again_on_the_open_connection_right_before_the_request_is_written(
    kube: KubeClient, control_plane: ControlPlane
) -> None:
    # A process frozen after the first check, while it opens a connection (a TLS handshake takes milliseconds),
    # must not send the request when it wakes: the second answer, on the open connection, is the one that counts.
    client = KubeClient.from_kubeconfig(control_plane.kubeconfig)  # a new pool: the request opens a connection
    answers = iter([True, False])
    fenced = client.fenced(WriteFence(lambda: next(answers, False)))
    with pytest.raises(NotLeaderError):
        fenced.create(NODES, managed_node("late"))
    assert kube.list(NODES)["items"] == []
    # The connection it refused on is not left broken: the unfenced client goes on through the same pool.
    assert client.create(NODES, managed_node("late"))["metadata"]["name"] == "late"


def test_the_provider_registry_starts_no_create_or_destroy_while_the_fence_refuses(
    kube: KubeClient, tmp_path: Path
) -> None:
    leading = Leading()
    cloud = SimulatorCloud(tmp_path / "simulator")
    try:
        registry = ProviderRegistry(kube.fenced(WriteFence(leading)), "fence-test", simulator=cloud)
        provider = registry.provider_for(nodeclass_from_json(kube.create(NODECLASSES, simulator_nodeclass())))
        spec = MachineSpec(
            name="m-1", node_name="n-1", node_uid="u-1", nodeclass="sim", cluster="fence-test", provider_id="p"
        )
        leading.now = False
        with pytest.raises(NotLeaderError):
            provider.create(spec)
        assert cloud.calls() == []
        assert cloud.machines() == []

        leading.now = True
        provider.create(spec)
        leading.now = False
        with pytest.raises(NotLeaderError):
            provider.destroy("m-1")
        assert [(c.operation, c.machine) for c in cloud.calls()] == [("create", "m-1")]
        assert [m.name for m in cloud.machines()] == ["m-1"]
        assert [m.name for m in provider.list()] == ["m-1"]  # reads pass
    finally:
        cloud.close()


def test_the_work_queue_retries_a_fenced_reconcile_quietly(caplog: pytest.LogCaptureFixture) -> None:
    queue = WorkQueue("fenced", base_delay=0.01)
    stop = threading.Event()
    attempts: list[str] = []

    def reconcile(key: str) -> Result | None:
        attempts.append(key)
        if len(attempts) == 1:
            raise NotLeaderError("PATCH /api/v1/nodes/x")
        return None

    caplog.set_level(logging.INFO)
    threads = run_workers(queue, reconcile, 1, stop)
    try:
        queue.add("x")
        eventually(lambda: len(attempts) == 2, timeout=5, what="the retry")
    finally:
        stop.set()
        for thread in threads:
            thread.join(2)
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.INFO] == []
