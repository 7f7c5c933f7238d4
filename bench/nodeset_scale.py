"""Benchmark: a NodeSet on the simulator (no boot delay) scaled 0 -> 1,000 until readyReplicas = 1,000, next to
creating 1,000 plain Nodes and to the design's floor (the writes no implementation can skip, issued by the
benchmark itself) in the same run, and back to 0 until every Node and machine is gone. Prints the times, the
ratios, kube-node's peak memory, the API server's writes per Node and the CPU each process used.

    .venv/bin/python bench/nodeset_scale.py [--nodes 1000]
"""

from __future__ import annotations

import argparse
import sqlite3
import time

from _harness import (
    api_writes,
    control_plane,
    cpu_seconds,
    design_floor,
    kube_node,
    peak_rss_mib,
    plain_creates,
    print_cpu,
    print_writes,
    simulator_nodeclass,
)

from nodeset_controller.api import LABEL_NODESET
from nodeset_controller.kube import NODES, NODESETS, KubeClient


def wait_for(what: str, check: object, timeout: float = 900) -> float:
    """Poll ``check`` (every 0.5 s, a cheap read) until true; return the seconds it took."""
    assert callable(check)
    start = time.monotonic()
    while not check():
        if time.monotonic() - start > timeout:
            raise TimeoutError(f"{what} did not happen within {timeout:.0f} s")
        time.sleep(0.5)
    return time.monotonic() - start


def ready_replicas(client: KubeClient) -> int:
    return int(client.get(NODESETS, "bench").get("status", {}).get("readyReplicas") or 0)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nodes", type=int, default=1000)
    parser.add_argument("--threads", type=int, default=16)
    args = parser.parse_args()

    with control_plane() as (plane, client, scratch):
        plain_seconds = plain_creates(client, args.nodes, args.threads)
        floor_seconds = design_floor(
            client, args.nodes, args.threads, pre_made=True, processes={p.name: p.pid for p in plane.processes}
        )
        simulator_nodeclass(client)
        client.create(
            NODESETS,
            {
                "apiVersion": "kube-node.io/v1alpha1",
                "kind": "NodeSet",
                "metadata": {"name": "bench"},
                "spec": {"nodeClassName": "bench", "replicas": 0, "drain": {"timeoutSeconds": 0}},
            },
        )
        with kube_node(plane, scratch) as (process, _):
            writes_before = api_writes(client)
            processes = {**{p.name: p.pid for p in plane.processes}, "kube-node": process.pid}
            cpu_before = cpu_seconds(processes)
            client.patch(NODESETS, "bench", {"spec": {"replicas": args.nodes}}, subresource="scale")
            up = wait_for("scale-up", lambda: ready_replicas(client) >= args.nodes)
            writes_up = api_writes(client)
            cpu_up = cpu_seconds(processes)
            print(f"NodeSet 0 -> {args.nodes}: readyReplicas = {args.nodes} after {up:.2f} s")
            client.patch(NODESETS, "bench", {"spec": {"replicas": 0}}, subresource="scale")
            database = scratch / "sim" / "machines.db"

            def all_gone() -> bool:
                nodes = client.list(NODES, labelSelector=f"{LABEL_NODESET}=bench", limit=1)["items"]
                with sqlite3.connect(database) as db:
                    machines = db.execute("SELECT COUNT(*) FROM machines").fetchone()[0]
                return not nodes and machines == 0

            down = wait_for("scale-down", all_gone)
            print(f"NodeSet {args.nodes} -> 0: every Node and machine gone after {down:.2f} s")
            peak = peak_rss_mib(process.pid)

    print(f"ratio scale-up / plain-create: {up / plain_seconds:.2f}x (target <= 2x)")
    floor_ratio = floor_seconds / plain_seconds
    print(f"ratio design floor / plain-create: {floor_ratio:.2f}x; scale-up / floor: {up / floor_seconds:.2f}x")
    print(f"kube-node peak memory (VmHWM): {peak:.0f} MiB")
    print("scale-up:", end=" ")
    print_writes(writes_before, writes_up, args.nodes)
    print("scale-up:", end=" ")
    print_cpu(cpu_before, cpu_up, up)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
