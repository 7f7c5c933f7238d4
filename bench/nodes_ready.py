"""Benchmark: 1,000 Nodes naming a simulator NodeClass (no boot delay), created at once, until all are Ready,
next to creating 1,000 plain Nodes in the same run and to the design's floor (the writes no implementation can
skip, issued by the benchmark itself). Prints the times, the ratios, kube-node's peak memory, the API server's
writes per Node and the CPU each process used.

    .venv/bin/python bench/nodes_ready.py [--nodes 1000] [--threads 16]

It starts its own control plane (etcd + kube-apiserver) and runs `kube-node run` as a separate process, so the
memory figure is that process's peak resident set (VmHWM).
"""

from __future__ import annotations

import argparse
import os
import threading
import time
from typing import Any

from _harness import (
    api_writes,
    control_plane,
    cpu_seconds,
    create_nodes,
    design_floor,
    kube_node,
    peak_rss_mib,
    plain_creates,
    print_cpu,
    print_writes,
    simulator_nodeclass,
)

from nodeset_controller.api import LABEL_NODECLASS, TAINT_STARTUP
from nodeset_controller.kube import NODES, KubeClient


def node_ready(node: dict[str, Any]) -> bool:
    """The kubelet reports Ready and kube-node has removed its startup taint."""
    conditions = node.get("status", {}).get("conditions") or []
    startup = any(t["key"] == TAINT_STARTUP for t in node.get("spec", {}).get("taints") or [])
    return not startup and any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)


def wait_all_ready(client: KubeClient, selector: str, count: int, timeout: float) -> bool:
    """Watch the Nodes (cheaper for the API server than polling lists) until ``count`` are Ready."""
    ready: set[str] = set()
    version = client.list(NODES, labelSelector=selector, limit=1)["metadata"]["resourceVersion"]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for event in client.watch(NODES, resource_version=version, labelSelector=selector, timeout_seconds=60):
            node = event["object"]
            version = node["metadata"]["resourceVersion"]
            if event["type"] in ("ADDED", "MODIFIED") and node_ready(node):
                ready.add(node["metadata"]["name"])
            if len(ready) >= count:
                return True
    return False


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nodes", type=int, default=1000)
    parser.add_argument("--threads", type=int, default=16)
    args = parser.parse_args()

    with control_plane() as (plane, client, scratch):
        plain_seconds = plain_creates(client, args.nodes, args.threads)
        floor_seconds = design_floor(
            client, args.nodes, args.threads, pre_made=False, processes={p.name: p.pid for p in plane.processes}
        )
        simulator_nodeclass(client)
        with kube_node(plane, scratch) as (process, _):
            managed = [f"managed-{i:05d}" for i in range(args.nodes)]
            writes_before = api_writes(client)
            processes = {**{p.name: p.pid for p in plane.processes}, "kube-node": process.pid, "bench": os.getpid()}
            cpu_before = cpu_seconds(processes)
            start = time.monotonic()
            creating = threading.Thread(
                target=create_nodes, args=(client, managed, {LABEL_NODECLASS: "bench"}, args.threads)
            )
            creating.start()
            if not wait_all_ready(client, f"{LABEL_NODECLASS}=bench", args.nodes, 600):
                print("gave up after 600 s")
                return 1
            ready_seconds = time.monotonic() - start
            creating.join()
            cpu_after = cpu_seconds(processes)
            peak = peak_rss_mib(process.pid)
            writes_after = api_writes(client)

    print(
        f"{args.nodes} managed Nodes created and Ready (machine, kubelet, startup taint gone) in {ready_seconds:.2f} s"
    )
    print(f"ratio managed-Ready / plain-create: {ready_seconds / plain_seconds:.2f}x (target <= 2x)")
    print(
        f"ratio design floor / plain-create: {floor_seconds / plain_seconds:.2f}x; managed-Ready / floor: "
        f"{ready_seconds / floor_seconds:.2f}x"
    )
    print(f"kube-node peak memory (VmHWM): {peak:.0f} MiB")
    print_writes(writes_before, writes_after, args.nodes)
    print_cpu(cpu_before, cpu_after, ready_seconds)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
