"""Benchmark: one cluster-autoscaler loop's calls at 5,000 Nodes in 100 NodeSets, against kube-node's provider
and, in the same run, against a server whose handlers return empty answers. Prints p50/p99 per RPC, the loop
totals and their ratio (targets: within 2x of the empty server; NodeGroupForNode p99 under 1 ms).

    .venv/bin/python bench/provider_loop.py [--nodes 5000] [--groups 100] [--loops 3]

The loop is what the client does (docs/cluster-autoscaler.md): Refresh, NodeGroups, NodeGroupForNode for every
node (one at a time, as the client serializes them), NodeGroupTargetSize for every group, NodeGroupNodes for
every group. The Nodes are real API objects on a real control plane, read through kube-node's caches.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import statistics
import time
from collections import defaultdict
from collections.abc import Callable
from concurrent import futures
from typing import Any

import grpc
from _harness import control_plane

from autoscaler_provider import CloudProviderService
from autoscaler_provider._proto import externalgrpc_pb2 as pb
from autoscaler_provider._proto import externalgrpc_pb2_grpc as pb_grpc
from nodeset_controller.api import LABEL_NODECLASS, LABEL_NODESET, NodeSet, provider_id
from nodeset_controller.kube import (
    NODECLASSES,
    NODES,
    NODESETS,
    Informer,
    KubeClient,
    NodeRecord,
    nodeclass_from_json,
    nodeset_from_json,
    wait_for_sync,
)


class EmptyService(pb_grpc.CloudProviderServicer):
    """Every RPC answers an empty message at once: the floor of gRPC's own cost."""

    def Refresh(self, request: Any, context: Any) -> pb.RefreshResponse:  # noqa: N802
        return pb.RefreshResponse()

    def NodeGroups(self, request: Any, context: Any) -> pb.NodeGroupsResponse:  # noqa: N802
        return pb.NodeGroupsResponse()

    def NodeGroupForNode(self, request: Any, context: Any) -> pb.NodeGroupForNodeResponse:  # noqa: N802
        return pb.NodeGroupForNodeResponse()

    def NodeGroupTargetSize(self, request: Any, context: Any) -> pb.NodeGroupTargetSizeResponse:  # noqa: N802
        return pb.NodeGroupTargetSizeResponse()

    def NodeGroupNodes(self, request: Any, context: Any) -> pb.NodeGroupNodesResponse:  # noqa: N802
        return pb.NodeGroupNodesResponse()


def serve(service: pb_grpc.CloudProviderServicer) -> tuple[grpc.Server, pb_grpc.CloudProviderStub]:
    server = grpc.server(futures.ThreadPoolExecutor(16))
    pb_grpc.add_CloudProviderServicer_to_server(service, server)  # type: ignore[no-untyped-call]
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    return server, pb_grpc.CloudProviderStub(grpc.insecure_channel(f"127.0.0.1:{port}"))


def one_loop(
    stub: pb_grpc.CloudProviderStub,
    nodes: list[pb.ExternalGrpcNode],
    groups: list[str],
    timings: dict[str, list[float]],
) -> float:
    def timed(name: str, call: Callable[[], Any]) -> None:
        start = time.perf_counter()
        call()
        timings[name].append(time.perf_counter() - start)

    start = time.perf_counter()
    timed("Refresh", lambda: stub.Refresh(pb.RefreshRequest()))
    timed("NodeGroups", lambda: stub.NodeGroups(pb.NodeGroupsRequest()))
    for node in nodes:
        timed("NodeGroupForNode", lambda n=node: stub.NodeGroupForNode(pb.NodeGroupForNodeRequest(node=n)))
    for group in groups:
        timed("NodeGroupTargetSize", lambda g=group: stub.NodeGroupTargetSize(pb.NodeGroupTargetSizeRequest(id=g)))
    for group in groups:
        timed("NodeGroupNodes", lambda g=group: stub.NodeGroupNodes(pb.NodeGroupNodesRequest(id=g)))
    return time.perf_counter() - start


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nodes", type=int, default=5000)
    parser.add_argument("--groups", type=int, default=100)
    parser.add_argument("--loops", type=int, default=3)
    args = parser.parse_args()

    with control_plane() as (_, client, _scratch):
        client.create(
            NODECLASSES,
            {
                "apiVersion": "kube-node.io/v1alpha1",
                "kind": "NodeClass",
                "metadata": {"name": "bench"},
                "spec": {"provider": "simulator", "capacity": {"cpu": "4", "memory": "16Gi"}},
            },
        )
        groups = [f"group-{g:03d}" for g in range(args.groups)]
        for group in groups:
            client.create(
                NODESETS,
                {
                    "apiVersion": "kube-node.io/v1alpha1",
                    "kind": "NodeSet",
                    "metadata": {"name": group},
                    "spec": {
                        "nodeClassName": "bench",
                        "replicas": args.nodes // args.groups,
                        "maxReplicas": 1000,
                        "autoscaling": {"mode": "ClusterAutoscaler"},
                    },
                },
            )
        names = [(f"{groups[i % args.groups]}-{i:05d}", groups[i % args.groups]) for i in range(args.nodes)]
        start = time.monotonic()

        def create(item: tuple[str, str]) -> None:
            name, group = item
            client.create(
                NODES,
                {
                    "metadata": {
                        "name": name,
                        "labels": {LABEL_NODESET: group, LABEL_NODECLASS: "bench"},
                        "annotations": {"kube-node.io/machine-phase": "Running", "kube-node.io/machine-id": "sim-x"},
                    },
                    "spec": {"providerID": provider_id("bench", name)},
                },
            )

        with concurrent.futures.ThreadPoolExecutor(16) as pool:
            list(pool.map(create, names))
        print(f"created {args.nodes} Nodes in {args.groups} NodeSets in {time.monotonic() - start:.1f} s")

        nodes: Informer[NodeRecord] = Informer(
            client,
            NODES,
            NodeRecord.from_json,
            label_selector=LABEL_NODECLASS,
            indexers={"providerID": lambda n: (n.provider_id,), "nodeset": lambda n: (n.labels[LABEL_NODESET],)},
        )
        nodesets: Informer[NodeSet] = Informer(client, NODESETS, nodeset_from_json)
        nodeclasses = Informer(client, NODECLASSES, nodeclass_from_json)
        for informer in (nodes, nodesets, nodeclasses):
            informer.start()
        wait_for_sync([nodes, nodesets, nodeclasses], 60)
        requests = [
            pb.ExternalGrpcNode(providerID=provider_id("bench", name), name=name, labels={LABEL_NODESET: group})
            for name, group in names
        ]

        results: dict[str, tuple[dict[str, list[float]], list[float]]] = {}
        for label, service in (
            ("empty", EmptyService()),
            ("kube-node", CloudProviderService(KubeClient(client.configuration), nodesets, nodes, nodeclasses)),
        ):
            server, stub = serve(service)
            one_loop(stub, requests[:100], groups[:5], defaultdict(list))  # warm up the channel
            timings: dict[str, list[float]] = defaultdict(list)
            loops = [one_loop(stub, requests, groups, timings) for _ in range(args.loops)]
            server.stop(0)
            results[label] = (timings, loops)
        service = CloudProviderService(KubeClient(client.configuration), nodesets, nodes, nodeclasses)
        assert resolve(service, requests[0]) == names[0][1], "the benchmark nodes must resolve to their groups"
        handler: list[float] = []
        for request in requests:
            begin = time.perf_counter()
            resolve(service, request)
            handler.append(time.perf_counter() - begin)

    print(f"\n{'rpc':22} {'server':10} {'calls':>7} {'p50 us':>9} {'p99 us':>9}")
    for rpc in ("Refresh", "NodeGroups", "NodeGroupForNode", "NodeGroupTargetSize", "NodeGroupNodes"):
        for label, (timings, _) in results.items():
            values = timings[rpc]
            print(
                f"{rpc:22} {label:10} {len(values):7d} {percentile(values, 0.5) * 1e6:9.0f} "
                f"{percentile(values, 0.99) * 1e6:9.0f}"
            )
    empty_loop = statistics.median(results["empty"][1])
    ours_loop = statistics.median(results["kube-node"][1])
    p99 = percentile(results["kube-node"][0]["NodeGroupForNode"], 0.99) * 1e3
    print(
        f"\none loop (median of {args.loops}): kube-node {ours_loop:.2f} s, empty server {empty_loop:.2f} s, "
        f"ratio {ours_loop / empty_loop:.2f}x (target <= 2x)"
    )
    print(
        f"NodeGroupForNode p99: {p99:.3f} ms over gRPC (target < 1 ms); the empty server's own p99: "
        f"{percentile(results['empty'][0]['NodeGroupForNode'], 0.99) * 1e3:.3f} ms"
    )
    print(
        f"NodeGroupForNode handler alone (no gRPC): p50 {percentile(handler, 0.5) * 1e6:.0f} us, "
        f"p99 {percentile(handler, 0.99) * 1e6:.0f} us"
    )
    return 0


def resolve(service: CloudProviderService, node: pb.ExternalGrpcNode) -> str:
    """Call the real handler directly: which group the node resolves to."""

    class _Context:
        def abort(self, code: Any, message: str) -> None:
            raise RuntimeError(message)

    answer = service.NodeGroupForNode(pb.NodeGroupForNodeRequest(node=node), _Context())  # type: ignore[arg-type]
    return str(answer.nodeGroup.id)


if __name__ == "__main__":
    raise SystemExit(main())
