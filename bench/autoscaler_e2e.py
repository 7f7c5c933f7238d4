"""Benchmark: 100 pending pods to all Running through the real cluster-autoscaler and kube-node (simulator boot
delay 0), from `apply` of the Deployment to the last pod Running. Target: within the autoscaler's scan interval
(1 s here) + 5 s. Prints the time to the scale-up request, to all Nodes Ready and to all pods Running.

    .venv/bin/python bench/autoscaler_e2e.py [--pods 100] [--cpu 1] [--runs 3]

A control plane with kube-scheduler and kube-controller-manager, `kube-node run` (simulator, provider over
mutual TLS) and the cluster-autoscaler built from $KUBE_NODE_AUTOSCALER_SRC (see docs/cluster-autoscaler.md),
each its own process.
"""

from __future__ import annotations

import argparse
import statistics
import time
import uuid
from pathlib import Path
from typing import Any

from _harness import cluster_autoscaler, control_plane, kube_node, peak_rss_mib

from nodeset_controller.api import LABEL_NODESET
from nodeset_controller.controllers import is_ready
from nodeset_controller.kube import NODECLASSES, NODES, NODESETS, KubeClient, NodeRecord, Resource

PODS = Resource("", "v1", "pods", namespaced=True)
DEPLOYMENTS = Resource("apps", "v1", "deployments", namespaced=True)
NAMESPACES = Resource("", "v1", "namespaces")
SERVICE_ACCOUNTS = Resource("", "v1", "serviceaccounts", namespaced=True)


def wait(check: Any, timeout: float = 300, interval: float = 0.1) -> float:
    start = time.monotonic()
    while not check():
        if time.monotonic() - start > timeout:
            raise TimeoutError("timed out")
        time.sleep(interval)
    return time.monotonic() - start


def one_run(client: KubeClient, pods: int, cpu: str) -> tuple[float, float, float, int]:
    namespace = f"bench-{uuid.uuid4().hex[:6]}"
    client.create(NAMESPACES, {"metadata": {"name": namespace}})
    wait(lambda: client.list(SERVICE_ACCOUNTS, namespace)["items"])
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "load"},
        "spec": {
            "replicas": pods,
            "selector": {"matchLabels": {"app": "load"}},
            "template": {
                "metadata": {"labels": {"app": "load"}},
                "spec": {
                    "nodeSelector": {LABEL_NODESET: "bench"},
                    "terminationGracePeriodSeconds": 0,
                    "containers": [
                        {"name": "c", "image": "registry.invalid/load:1", "resources": {"requests": {"cpu": cpu}}}
                    ],
                },
            },
        },
    }
    start = time.monotonic()
    client.create(DEPLOYMENTS, deployment, namespace)
    wait(lambda: client.get(NODESETS, "bench")["spec"]["replicas"] > 0, interval=0.02)
    to_request = time.monotonic() - start

    def running() -> bool:
        items = client.list(PODS, namespace, labelSelector="app=load")["items"]
        return sum(1 for p in items if p["status"].get("phase") == "Running") >= pods

    def nodes_ready() -> bool:
        target = client.get(NODESETS, "bench")["spec"]["replicas"]
        records = [NodeRecord.from_json(n) for n in client.list(NODES, labelSelector=f"{LABEL_NODESET}=bench")["items"]]
        return len(records) == target and all(is_ready(r) for r in records)

    wait(nodes_ready, interval=0.1)
    to_ready = time.monotonic() - start
    wait(running, interval=0.2)
    to_running = time.monotonic() - start
    replicas = client.get(NODESETS, "bench")["spec"]["replicas"]
    # Back to zero for the next run: remove the load, and the Nodes with it.
    client.delete(NAMESPACES, namespace)
    client.patch(NODESETS, "bench", {"spec": {"replicas": 0}}, subresource="scale")
    wait(lambda: not client.list(NODES, labelSelector=f"{LABEL_NODESET}=bench")["items"], timeout=120)
    return to_request, to_ready, to_running, replicas


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pods", type=int, default=100)
    parser.add_argument("--cpu", default="1")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    with control_plane() as (plane, client, scratch):
        plane.start_scheduler()
        plane.start_controller_manager()
        client.create(
            NODECLASSES,
            {
                "apiVersion": "kube-node.io/v1alpha1",
                "kind": "NodeClass",
                "metadata": {"name": "bench"},
                "spec": {
                    "provider": "simulator",
                    "capacity": {"cpu": "4", "memory": "16Gi"},
                    "driverOptions": {"bootDelaySeconds": 0},
                },
            },
        )
        client.create(
            NODESETS,
            {
                "apiVersion": "kube-node.io/v1alpha1",
                "kind": "NodeSet",
                "metadata": {"name": "bench"},
                "spec": {
                    "nodeClassName": "bench",
                    "replicas": 0,
                    "maxReplicas": 200,
                    "drain": {"timeoutSeconds": 0},
                    "autoscaling": {"mode": "ClusterAutoscaler"},
                },
            },
        )
        with (
            kube_node(plane, scratch, provider_port=18086) as (process, cloud_config),
            cluster_autoscaler(plane, scratch, cloud_config or Path()),
        ):
            time.sleep(3)
            runs = [one_run(client, args.pods, args.cpu) for _ in range(args.runs)]
            peak = peak_rss_mib(process.pid)

    for i, (request, ready, running, replicas) in enumerate(runs, 1):
        print(
            f"run {i}: scale-up request {request:.2f} s, {replicas} Nodes Ready {ready:.2f} s, "
            f"{args.pods} pods Running {running:.2f} s"
        )
    median = statistics.median(r[2] for r in runs)
    print(
        f"{args.pods} pending pods to all Running, median of {args.runs}: {median:.2f} s "
        f"(target <= scan interval 1 s + 5 s = 6 s)"
    )
    print(f"kube-node peak memory (VmHWM): {peak:.0f} MiB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
