"""Benchmark: kube-node's pending-pod autoscaler against the real cluster-autoscaler, on the same cluster state.

1,000 pending pods of mixed sizes, three NodeSets of different sizes (2, 4 and 8 CPUs) that could all run
them. Each autoscaler gets a fresh control plane (with kube-scheduler and kube-controller-manager) and the
same pods; for each pod, the time from the scheduler marking it unschedulable to the first raise of a
NodeSet's replicas after that; and the Nodes each orders in the end. Machines boot slowly (10 minutes), so
what is measured is the decision, not the boot. Targets: kube-node at least 5x faster, p50 at most 1 s, and
never more Nodes than the cluster-autoscaler orders.

    .venv/bin/python bench/pending_pods_vs_ca.py [--pods 1000] [--settle 20]
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import random
import threading
import time
from pathlib import Path
from typing import Any

from _harness import cluster_autoscaler, control_plane, kube_node, peak_rss_mib

from nodeset_controller.kube import NODECLASSES, NODESETS, KubeClient, Resource

PODS = Resource("", "v1", "pods", namespaced=True)
NAMESPACES = Resource("", "v1", "namespaces")
SERVICE_ACCOUNTS = Resource("", "v1", "serviceaccounts", namespaced=True)
CLASSES = {"small": ("2", "8Gi"), "medium": ("4", "16Gi"), "large": ("8", "32Gi")}
SIZES = [("250m", "512Mi"), ("500m", "1Gi"), ("1", "2Gi"), ("1500m", "3Gi")]


class Recorder:
    """Watches pods (when each became unschedulable) and NodeSets (every change of replicas)."""

    def __init__(self, client: KubeClient, namespace: str) -> None:
        self.unschedulable: dict[str, float] = {}
        self.raises: list[tuple[float, str, int]] = []
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._pods, args=(client, namespace), daemon=True),
            threading.Thread(target=self._nodesets, args=(client,), daemon=True),
        ]
        for thread in self._threads:
            thread.start()

    def _pods(self, client: KubeClient, namespace: str) -> None:
        version = client.list(PODS, namespace, limit=1)["metadata"]["resourceVersion"]
        while not self._stop.is_set():
            try:
                for event in client.watch(PODS, namespace, resource_version=version, timeout_seconds=30):
                    pod = event["object"]
                    version = pod["metadata"]["resourceVersion"]
                    for c in (pod.get("status") or {}).get("conditions") or []:
                        if c.get("reason") == "Unschedulable":
                            self.unschedulable.setdefault(pod["metadata"]["name"], time.time())
            except Exception:
                continue

    def _nodesets(self, client: KubeClient) -> None:
        seen: dict[str, int] = {}
        version = client.list(NODESETS)["metadata"]["resourceVersion"]
        while not self._stop.is_set():
            try:
                for event in client.watch(NODESETS, resource_version=version, timeout_seconds=30):
                    nodeset = event["object"]
                    version = nodeset["metadata"]["resourceVersion"]
                    name, replicas = nodeset["metadata"]["name"], nodeset["spec"]["replicas"]
                    if replicas > seen.get(name, 0):
                        self.raises.append((time.time(), name, replicas))
                    seen[name] = replicas
            except Exception:
                continue

    def stop(self) -> None:
        self._stop.set()


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] if ordered else float("nan")


def measure(client: KubeClient, pods: int, settle: float) -> tuple[Recorder, dict[str, int]]:
    """Create the pods, and record until the NodeSets have not been raised for ``settle`` seconds."""
    namespace = "load"
    client.create(NAMESPACES, {"metadata": {"name": namespace}})
    while not client.list(SERVICE_ACCOUNTS, namespace)["items"]:
        time.sleep(0.1)
    time.sleep(3)
    recorder = Recorder(client, namespace)
    rng = random.Random(7)  # the same pods on both sides
    bodies = []
    for i in range(pods):
        cpu, memory = SIZES[rng.randrange(len(SIZES))]
        bodies.append(
            {
                "metadata": {"name": f"p-{i:04d}"},
                "spec": {
                    "terminationGracePeriodSeconds": 0,
                    "automountServiceAccountToken": False,
                    "containers": [
                        {
                            "name": "c",
                            "image": "registry.invalid/x:1",
                            "resources": {"requests": {"cpu": cpu, "memory": memory}},
                        }
                    ],
                },
            }
        )
    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda b: client.create(PODS, b, namespace), bodies))
    deadline = time.time() + 300
    while len(recorder.unschedulable) < pods and time.time() < deadline:
        time.sleep(0.2)
    last_change = time.time()
    seen = len(recorder.raises)
    while time.time() - last_change < settle and time.time() < deadline:
        time.sleep(0.5)
        if len(recorder.raises) != seen:
            seen, last_change = len(recorder.raises), time.time()
    recorder.stop()
    nodes = {name: client.get(NODESETS, name)["spec"]["replicas"] for name in CLASSES}
    return recorder, nodes


def one_side(mode: str, pods: int, settle: float) -> dict[str, Any]:
    with control_plane() as (plane, client, scratch):
        plane.start_scheduler()
        plane.start_controller_manager()
        for name, (cpu, memory) in CLASSES.items():
            client.create(
                NODECLASSES,
                {
                    "apiVersion": "kube-node.io/v1alpha1",
                    "kind": "NodeClass",
                    "metadata": {"name": name},
                    "spec": {
                        "provider": "simulator",
                        "capacity": {"cpu": cpu, "memory": memory},
                        "driverOptions": {"bootDelaySeconds": 600},
                    },
                },
            )
            client.create(
                NODESETS,
                {
                    "apiVersion": "kube-node.io/v1alpha1",
                    "kind": "NodeSet",
                    "metadata": {"name": name},
                    "spec": {"nodeClassName": name, "replicas": 0, "maxReplicas": 1000, "autoscaling": {"mode": mode}},
                },
            )
        with contextlib.ExitStack() as stack:
            process, cloud_config = stack.enter_context(kube_node(plane, scratch, provider_port=18087))
            if mode == "ClusterAutoscaler":
                stack.enter_context(cluster_autoscaler(plane, scratch, cloud_config or Path(), "--max-nodes-total=0"))
            measured = measure(client, pods, settle)
            peak = peak_rss_mib(process.pid)
    recorder, nodes = measured
    raise_times = sorted(t for t, _, _ in recorder.raises)
    latencies = []
    for marked in recorder.unschedulable.values():
        later = [t for t in raise_times if t >= marked]
        if later:
            latencies.append(later[0] - marked)
    return {
        "mode": mode,
        "nodes": nodes,
        "latencies": latencies,
        "unschedulable": len(recorder.unschedulable),
        "covered": len(latencies),
        "peak": peak,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pods", type=int, default=1000)
    parser.add_argument("--settle", type=float, default=20.0, help="seconds without a raise that end a side")
    parser.add_argument("--only-kube-node", action="store_true", help="skip the cluster-autoscaler side")
    args = parser.parse_args()
    results = [one_side("KubeNode", args.pods, args.settle)]
    if not args.only_kube_node:
        results.append(one_side("ClusterAutoscaler", args.pods, args.settle))
    for result in results:
        lat = result["latencies"]
        print(
            f"{result['mode']:18} pods unschedulable {result['unschedulable']}, with a later raise "
            f"{result['covered']}; unschedulable -> replicas raised p50 {percentile(lat, 0.5):.2f} s, "
            f"p99 {percentile(lat, 0.99):.2f} s; Nodes ordered {sum(result['nodes'].values())} {result['nodes']}; "
            f"kube-node peak memory {result['peak']:.0f} MiB"
        )
    if args.only_kube_node:
        return 0
    ours, theirs = results
    speedup = percentile(theirs["latencies"], 0.5) / percentile(ours["latencies"], 0.5)
    print(
        f"kube-node p50 is {speedup:.1f}x faster (target >= 5x, p50 <= 1 s); Nodes: kube-node "
        f"{sum(ours['nodes'].values())} vs cluster-autoscaler {sum(theirs['nodes'].values())} (target: never more)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
