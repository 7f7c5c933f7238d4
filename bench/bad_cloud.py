"""Benchmark: kube-node against a bad cloud. A NodeSet of N Nodes (Manual, maxInFlight 2) on a simulator that
refuses 30% of creates for quota, fails 10% of destroys, crashes 5% of machines after boot and creates ten
times slower than it boots, for a while; then back to 0. Prints kube-node's API writes per second (by verb
and resource) and cloud calls per second (by operation and result), the most replacements under way at once,
and what is left after the scale-down (machines leaked, Nodes left).

    .venv/bin/python bench/bad_cloud.py [--nodes 100] [--seconds 60]
"""

from __future__ import annotations

import argparse
import sqlite3
import time
from pathlib import Path

from _harness import api_writes, control_plane, free_port, kube_node, kube_node_metrics

from nodeset_controller.api import ANNOTATION_REMOVAL_REASON, LABEL_NODESET
from nodeset_controller.kube import NODECLASSES, NODES, NODESETS, KubeClient

#: The same faults as tests/nodesets/test_bad_cloud.py.
BAD_CLOUD = {
    "createFailureRate": "0.3",
    "destroyFailureRate": "0.1",
    "crashRate": "0.05",
    "crashAfterSeconds": 20,
    "bootDelaySeconds": "0.2",
    "createDelaySeconds": 2,
}


def machines(database: Path) -> int:
    with sqlite3.connect(database) as db:
        return int(db.execute("SELECT COUNT(*) FROM machines").fetchone()[0])


def members(client: KubeClient) -> list[dict[str, object]]:
    return client.list(NODES, labelSelector=f"{LABEL_NODESET}=flaky")["items"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nodes", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=60)
    args = parser.parse_args()

    with control_plane() as (plane, client, scratch):
        client.create(
            NODECLASSES,
            {
                "apiVersion": "kube-node.io/v1alpha1",
                "kind": "NodeClass",
                "metadata": {"name": "flaky"},
                "spec": {
                    "provider": "simulator",
                    "capacity": {"cpu": "4", "memory": "16Gi"},
                    "driverOptions": BAD_CLOUD,
                },
            },
        )
        client.create(
            NODESETS,
            {
                "apiVersion": "kube-node.io/v1alpha1",
                "kind": "NodeSet",
                "metadata": {"name": "flaky"},
                "spec": {"nodeClassName": "flaky", "replicas": 0, "replacement": {"maxInFlight": 2}},
            },
        )
        status_port = free_port()
        with kube_node(plane, scratch, status_port=status_port):
            time.sleep(1)
            writes_before = api_writes(client)
            calls_before = kube_node_metrics(status_port, "kube_node_machine_operations_total")
            client.patch(NODESETS, "flaky", {"spec": {"replicas": args.nodes}}, subresource="scale")
            started = time.monotonic()
            most_replacing = most_members = 0
            while time.monotonic() - started < args.seconds:
                nodes = members(client)
                most_members = max(most_members, len(nodes))
                replacing = sum(
                    1
                    for n in nodes
                    if (n["metadata"].get("annotations") or {}).get(ANNOTATION_REMOVAL_REASON)  # type: ignore[attr-defined]
                )
                most_replacing = max(most_replacing, replacing)
                time.sleep(0.5)
            seconds = time.monotonic() - started
            writes_after = api_writes(client)
            calls_after = kube_node_metrics(status_port, "kube_node_machine_operations_total")
            ready = int(client.get(NODESETS, "flaky").get("status", {}).get("readyReplicas") or 0)

            client.patch(NODESETS, "flaky", {"spec": {"replicas": 0}}, subresource="scale")
            database = scratch / "sim" / "machines.db"
            deadline = time.monotonic() + 300
            while (members(client) or machines(database)) and time.monotonic() < deadline:
                time.sleep(0.5)
            left_nodes, leaked = len(members(client)), machines(database)

    print(f"bad cloud, {args.nodes} Nodes for {seconds:.0f} s: {ready} Ready at the end")
    total = sum(after - writes_before.get(key, 0.0) for key, after in writes_after.items())
    print(f"API writes: {total / seconds:.1f}/s ({total / seconds / args.nodes:.3f}/s per Node)")
    for key in sorted(writes_after, key=lambda k: writes_before.get(k, 0.0) - writes_after[k]):
        count = writes_after[key] - writes_before.get(key, 0.0)
        if count >= seconds:
            print(f"  {key:32} {count / seconds:7.1f}/s")
    calls = sum(calls_after.values()) - sum(calls_before.values())
    print(f"cloud calls: {calls / seconds:.1f}/s ({calls / seconds / args.nodes:.3f}/s per Node)")
    for labels in sorted(calls_after):
        count = calls_after[labels] - calls_before.get(labels, 0.0)
        if count:
            print(f"  {' '.join(f'{k}={v}' for k, v in labels):48} {count / seconds:7.2f}/s")
    print(f"most replacements under way at once: {most_replacing} (maxInFlight 2)")
    print(f"most Nodes at once: {most_members} (replicas {args.nodes} + maxInFlight 2)")
    print(f"after scale-down to 0: {left_nodes} Nodes left, {leaked} machines leaked")
    return 0 if not left_nodes and not leaked and most_replacing <= 2 else 1


if __name__ == "__main__":
    raise SystemExit(main())
