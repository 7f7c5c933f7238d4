"""Benchmark: 1,000 Nodes naming a simulator NodeClass (no boot delay), created at once, until all are Ready,
next to creating 1,000 plain Nodes in the same run. Prints both times, their ratio and kube-node's peak memory.

    .venv/bin/python bench/nodes_ready.py [--nodes 1000] [--threads 16]

It starts its own control plane (etcd + kube-apiserver) and runs `kube-node run` as a separate process, so the
memory figure is that process's peak resident set (VmHWM).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from kube_node.controlplane import ControlPlane  # noqa: E402
from nodeset_controller.api import LABEL_NODECLASS  # noqa: E402
from nodeset_controller.kube import NODECLASSES, NODES, KubeClient, install_crds  # noqa: E402


def create_nodes(client: KubeClient, names: list[str], labels: dict[str, str], threads: int) -> float:
    """Create the Nodes with ``threads`` concurrent clients; returns the seconds it took."""
    start = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(threads) as pool:
        list(pool.map(lambda n: client.create(NODES, {"metadata": {"name": n, "labels": labels}}), names))
    return time.monotonic() - start


def delete_all(client: KubeClient, names: list[str], threads: int) -> None:
    with concurrent.futures.ThreadPoolExecutor(threads) as pool:
        list(pool.map(lambda n: client.delete(NODES, n), names))


def wait_all_ready(client: KubeClient, selector: str, count: int, timeout: float) -> bool:
    """Watch the Nodes (cheaper for the API server than polling lists) until ``count`` are Ready."""
    ready: set[str] = set()
    resource_version = client.list(NODES, labelSelector=selector, limit=1)["metadata"]["resourceVersion"]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for event in client.watch(NODES, resource_version=resource_version, labelSelector=selector, timeout_seconds=60):
            node = event["object"]
            resource_version = node["metadata"]["resourceVersion"]
            if event["type"] in ("ADDED", "MODIFIED") and _ready(node):
                ready.add(node["metadata"]["name"])
            if len(ready) >= count:
                return True
    return False


def _ready(node: dict[str, Any]) -> bool:
    conditions = node.get("status", {}).get("conditions") or []
    startup = any(t["key"].startswith("startup-taint.") for t in node.get("spec", {}).get("taints") or [])
    return not startup and any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)


def peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nodes", type=int, default=1000)
    parser.add_argument("--threads", type=int, default=16)
    parser.add_argument("--workers", type=int, default=16, help="kube-node --workers")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="kube-node-bench-") as tmp, ControlPlane(Path(tmp) / "cp") as plane:
        client = KubeClient.from_kubeconfig(plane.kubeconfig)
        install_crds(client)
        print(f"control plane ready in {plane.startup_seconds:.1f} s")

        plain = [f"plain-{i:04d}" for i in range(args.nodes)]
        plain_seconds = create_nodes(client, plain, {"bench": "plain"}, args.threads)
        print(f"created {args.nodes} plain Nodes in {plain_seconds:.2f} s")
        delete_all(client, plain, args.threads)

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
        log = open(Path(tmp) / "kube-node.log", "w")  # noqa: SIM115
        kube_node = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "kube_node",
                "--log-level",
                "WARNING",
                "run",
                "--kubeconfig",
                str(plane.kubeconfig),
                "--simulator-dir",
                str(Path(tmp) / "sim"),
                "--workers",
                str(args.workers),
            ],
            stdout=log,
            stderr=log,
            cwd=REPO,
            env={**os.environ, "PYTHONPATH": str(REPO)},
        )
        try:
            time.sleep(2)  # let it sync its (empty) caches
            managed = [f"managed-{i:04d}" for i in range(args.nodes)]
            selector = f"{LABEL_NODECLASS}=bench"
            start = time.monotonic()
            creating = threading.Thread(
                target=create_nodes, args=(client, managed, {LABEL_NODECLASS: "bench"}, args.threads)
            )
            creating.start()
            if not wait_all_ready(client, selector, args.nodes, 600):
                print("gave up after 600 s", file=sys.stderr)
                return 1
            ready_seconds = time.monotonic() - start
            creating.join()
            peak = peak_rss_mib(kube_node.pid)
        finally:
            kube_node.terminate()
            kube_node.wait(30)
            log.close()

    print(
        f"{args.nodes} managed Nodes created and Ready (machine, kubelet, startup taint gone) in {ready_seconds:.2f} s"
    )
    print(f"ratio managed-Ready / plain-create: {ready_seconds / plain_seconds:.2f}x (target <= 2x)")
    print(f"kube-node peak memory (VmHWM): {peak:.0f} MiB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
