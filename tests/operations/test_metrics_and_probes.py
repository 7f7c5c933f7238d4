"""The status port of ``kube-node run``: Prometheus metrics that move with the work, and the probes."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from prometheus_client import REGISTRY, generate_latest
from prometheus_client.parser import text_string_to_metric_families

import kube_node
from autoscaler_provider._proto import externalgrpc_pb2 as pb
from autoscaler_provider._proto import externalgrpc_pb2_grpc as pb_grpc
from kube_node.controlplane import ControlPlane
from nodeset_controller import metrics
from nodeset_controller.kube import NODECLASSES, NODESETS, KubeClient, nodeset_from_json
from tests.conftest import eventually, nodeset_manifest, simulator_nodeclass

from ._process import KubeNodeProcess, free_port, sample


@pytest.fixture
def running(control_plane: ControlPlane, kube: KubeClient, tmp_path: Path) -> Iterator[tuple[KubeNodeProcess, str]]:
    grpc_address = f"127.0.0.1:{free_port()}"
    process = KubeNodeProcess(
        control_plane,
        tmp_path,
        "kube-node",
        f"--simulator-dir={tmp_path / 'simulator'}",
        f"--grpc-address={grpc_address}",
        "--grpc-insecure",
        f"--leader-election-lease-name=metrics-{uuid.uuid4().hex[:8]}",
    )
    try:
        eventually(process.ready, timeout=30, what="kube-node ready")
        yield process, grpc_address
    finally:
        process.close()


def test_probes_say_what_they_checked(running: tuple[KubeNodeProcess, str]) -> None:
    process, _ = running
    status, body = process.get("/healthz")
    assert (status, body.splitlines()[-1]) == (200, "ok")
    status, body = process.get("/readyz")
    assert status == 200
    assert "caches synced" in body
    assert "provider serving" in body
    eventually(lambda: "leader election: leading" in process.get("/readyz")[1], what="leadership on /readyz")
    assert process.get("/nothing-here")[0] == 404


def test_metrics_parse_as_prometheus_text_and_move_with_the_work(
    running: tuple[KubeNodeProcess, str], kube: KubeClient
) -> None:
    process, grpc_address = running
    eventually(lambda: sample(process.metrics(), "kube_node_leader") == 1, what="leadership in the metrics")
    before = process.metrics()
    assert sample(before, "kube_node_cache_synced", resource="nodes") == 1
    assert ("kube_node_workqueue_depth", (("queue", "node-controller"),)) in before
    assert ("process_resident_memory_bytes", ()) in before
    assert sample(before, "kube_node_build_info", version=kube_node.__version__) == 1

    kube.create(NODECLASSES, simulator_nodeclass())
    kube.create(NODESETS, nodeset_manifest("pool", 3, autoscaling={"mode": "ClusterAutoscaler", "minReplicas": 0}))
    eventually(lambda: (kube.get(NODESETS, "pool").get("status") or {}).get("readyReplicas") == 3, what="3 ready Nodes")
    with grpc.insecure_channel(grpc_address) as channel:
        stub = pb_grpc.CloudProviderStub(channel)
        assert [g.id for g in stub.NodeGroups(pb.NodeGroupsRequest()).nodeGroups] == ["pool"]
        with pytest.raises(grpc.RpcError) as refused:
            stub.NodeGroupTargetSize(pb.NodeGroupTargetSizeRequest(id="no-such-group"))
        assert refused.value.code() is grpc.StatusCode.NOT_FOUND

    def moved() -> dict[tuple[str, tuple[tuple[str, str], ...]], float] | None:
        after = process.metrics()
        return after if sample(after, "kube_node_nodeset_ready_replicas", nodeset="pool") == 3 else None

    after = eventually(moved, what="the NodeSet gauges")
    assert sample(after, "kube_node_nodeset_desired_replicas", nodeset="pool") == 3
    assert sample(after, "kube_node_nodeset_replicas", nodeset="pool") == 3
    for controller in ("node-controller", "nodeset-controller"):
        grew = sum(
            sample(after, "kube_node_reconcile_total", controller=controller, result=result)
            - sample(before, "kube_node_reconcile_total", controller=controller, result=result)
            for result in ("success", "requeue")
        )
        assert grew >= 3, controller
        assert sample(after, "kube_node_reconcile_duration_seconds_count", controller=controller) > 0
        assert sample(after, "kube_node_workqueue_adds_total", queue=controller) > sample(
            before, "kube_node_workqueue_adds_total", queue=controller
        )
    creates = {"provider": "simulator", "operation": "create"}
    # At least one call per machine (a reconcile that runs before its record reaches the cache calls the
    # idempotent create again and gets the same machine back).
    assert (
        sample(after, "kube_node_machine_operations_total", **creates, result="success")
        - sample(before, "kube_node_machine_operations_total", **creates, result="success")
        >= 3
    )
    assert sample(after, "kube_node_machine_operation_duration_seconds_count", **creates) >= 3
    assert sample(after, "kube_node_grpc_requests_total", method="NodeGroups", code="OK") == 1
    assert sample(after, "kube_node_grpc_requests_total", method="NodeGroupTargetSize", code="NOT_FOUND") == 1
    assert sample(after, "kube_node_grpc_request_duration_seconds_count", method="NodeGroups") == 1
    assert sample(after, "kube_node_cache_objects", resource="nodes") == 3


def test_a_nodeset_without_a_status_yet_is_exported_with_zero_replicas() -> None:
    fresh = nodeset_from_json(nodeset_manifest("fresh", 2))
    assert fresh.status is None  # as in a standby's cache before the leader's first status write
    metrics.watch_nodesets(lambda: [fresh])
    try:
        exported = {
            (sample.name, tuple(sample.labels.items())): sample.value
            for family in text_string_to_metric_families(generate_latest(REGISTRY).decode())
            for sample in family.samples
        }
    finally:
        metrics.watch_nodesets(list)
    assert exported[("kube_node_nodeset_desired_replicas", (("nodeset", "fresh"),))] == 2
    assert exported[("kube_node_nodeset_replicas", (("nodeset", "fresh"),))] == 0
    assert exported[("kube_node_nodeset_ready_replicas", (("nodeset", "fresh"),))] == 0
