"""Benchmark: a NodeSet of real local kubelets from 0 to N Ready, and a pod Running on each.

A control plane configured as a real cluster (bootstrap tokens, CSR signing), the chart's bootstrap bindings,
the shipped local NodeClass, and `kube-node run --local-machines-dir` as its own process. Each Node's time from
the NodeSet's creation is split into kube-node's part (making the Node, minting its token and starting its
machine; then removing the startup taint once the kubelet is Ready) and the machine's part (containerd and the
kubelet starting, the TLS bootstrap, the kubelet reporting Ready). Needs root; installs containerd, runc and
the CNI plugins from the distribution when missing, and builds the kubelet once.

    sudo .venv/bin/python bench/real_nodes.py --nodes 3
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml
from _harness import control_plane, kube_node

from kube_node._dev import CLUSTER_ROLE_BINDINGS, bootstrap_bindings
from kube_node._samples import SAMPLES_DIR
from kube_node.controlplane import find_binaries
from kube_node.controlplane._controlplane import SERVICE_CLUSTER_IP_RANGE
from nodeset_controller.api import TAINT_STARTUP
from nodeset_controller.kube import NODECLASSES, NODES, NODESETS, PODS, KubeClient
from nodeset_controller.providers import BUSYBOX_IMAGE, LocalMachines, install_runtime, is_root


def ready(node: dict[str, Any]) -> bool:
    return any(c["type"] == "Ready" and c["status"] == "True" for c in node["status"].get("conditions") or [])


def pod(node: str) -> dict[str, Any]:
    return {
        "metadata": {"name": f"bench-{node}"},
        "spec": {
            "nodeSelector": {"kubernetes.io/hostname": node},
            "automountServiceAccountToken": False,
            "terminationGracePeriodSeconds": 1,
            "containers": [
                {"name": "busybox", "image": BUSYBOX_IMAGE, "imagePullPolicy": "Never", "command": ["sleep", "3600"]}
            ],
        },
    }


def watch_up(
    client: KubeClient, machines: LocalMachines, count: int, start: float, timeout: float
) -> dict[str, dict[str, float]]:
    """Times (seconds after ``start``, wall clock) of each Node's creation, its machine's start (from the
    machine's own record), Ready and the startup taint's removal, polled every 50 ms."""
    seen: dict[str, dict[str, float]] = {}
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        now = time.time() - start
        started = {m.node_name: m.created_at - start for m in machines.machines()}
        for node in client.list(NODES, labelSelector="kube-node.io/nodeset=bench")["items"]:
            marks = seen.setdefault(node["metadata"]["name"], {"created": now})
            if node["metadata"]["name"] in started:
                marks.setdefault("started", started[node["metadata"]["name"]])
            if ready(node):
                marks.setdefault("ready", now)
                if TAINT_STARTUP not in [t["key"] for t in node["spec"].get("taints") or []]:
                    marks.setdefault("untainted", now)
        if len(seen) == count and all("untainted" in m for m in seen.values()):
            return seen
        time.sleep(0.05)
    raise SystemExit(f"not all {count} Nodes Ready within {timeout:.0f} s: {seen}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=3)
    parser.add_argument("--timeout", type=float, default=180.0)
    args = parser.parse_args()
    if not is_root():
        print("real nodes need root", file=sys.stderr)
        return 1
    installed = install_runtime()
    if installed:
        print(f"installed {', '.join(installed)}")
    kubelet = find_binaries(with_kubelet=True).kubelet
    if kubelet is None:
        print("no kubelet was built", file=sys.stderr)
        return 1
    machines_dir = Path(tempfile.mkdtemp(prefix="kn-b", dir="/tmp"))  # short: unix sockets live below it
    with control_plane() as (plane, client, scratch):
        plane.start_scheduler()
        plane.start_controller_manager()
        for binding in bootstrap_bindings():
            client.create(CLUSTER_ROLE_BINDINGS, binding)
        nodeclass: dict[str, Any] = yaml.safe_load((SAMPLES_DIR / "nodeclass-local.yaml").read_text())
        nodeclass["spec"]["driverOptions"]["serviceClusterIPRange"] = SERVICE_CLUSTER_IP_RANGE
        client.create(NODECLASSES, nodeclass)
        local_flags = ["--local-machines-dir", str(machines_dir), "--local-kubelet", str(kubelet)]
        try:
            with kube_node(plane, scratch, machines=local_flags):
                start = time.time()
                client.create(
                    NODESETS,
                    {
                        "apiVersion": "kube-node.io/v1alpha1",
                        "kind": "NodeSet",
                        "metadata": {"name": "bench"},
                        "spec": {"nodeClassName": nodeclass["metadata"]["name"], "replicas": args.nodes},
                    },
                )
                marks = watch_up(client, LocalMachines(machines_dir), args.nodes, start, args.timeout)
                all_ready = max(m["untainted"] for m in marks.values())
                pods_start = time.monotonic()
                for name in marks:
                    client.create(PODS, pod(name), namespace="default")
                running: dict[str, float] = {}
                while len(running) < len(marks) and time.monotonic() - pods_start < args.timeout:
                    for item in client.list(PODS, "default")["items"]:
                        if item["status"].get("phase") == "Running":
                            running.setdefault(item["metadata"]["name"], time.monotonic() - pods_start)
                    time.sleep(0.05)
                print(f"NodeSet 0 -> {args.nodes} real Nodes Ready (startup taint removed): {all_ready:.2f} s")
                print("per Node, seconds: kube-node (Node, token, machine started) | machine (containerd, kubelet,")
                print("  TLS bootstrap, Ready) | kube-node (startup taint removed after Ready) | total")
                kube_node_parts, machine_parts = [], []
                for name, m in sorted(marks.items()):
                    first, machine, last = m["started"], m["ready"] - m["started"], m["untainted"] - m["ready"]
                    kube_node_parts.append(first + last)
                    machine_parts.append(machine)
                    print(f"  {name}: {first:.2f} | {machine:.2f} | {last:.2f} | {m['untainted']:.2f}")
                print(
                    f"median: kube-node {statistics.median(kube_node_parts):.2f} s, "
                    f"machine {statistics.median(machine_parts):.2f} s"
                )
                if running:
                    print(
                        f"pods Running after create: median {statistics.median(running.values()):.2f} s, "
                        f"max {max(running.values()):.2f} s ({len(running)} of {len(marks)})"
                    )
                client.patch(NODESETS, "bench", {"spec": {"replicas": 0}})
                deadline = time.monotonic() + args.timeout
                while client.list(NODES, labelSelector="kube-node.io/nodeset=bench")["items"]:
                    if time.monotonic() > deadline:
                        print("the Nodes did not go within the timeout", file=sys.stderr)
                        break
                    time.sleep(0.2)
        finally:
            machines = LocalMachines(machines_dir)
            for machine in machines.machines():
                machines.destroy(machine.name)
            shutil.rmtree(machines_dir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
