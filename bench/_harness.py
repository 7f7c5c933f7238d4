"""What the benchmarks share: a control plane, kube-node as its own process, plain Node creates, memory."""

from __future__ import annotations

import concurrent.futures
import contextlib
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from kube_node._grpc import make_grpc_certificates, write_cloud_config  # noqa: E402
from kube_node.controlplane import ControlPlane, find_binaries  # noqa: E402
from nodeset_controller.api import (  # noqa: E402
    ANNOTATION_MACHINE_ID,
    ANNOTATION_MACHINE_PHASE,
    FINALIZER_MACHINE,
    TAINT_STARTUP,
)
from nodeset_controller.kube import (  # noqa: E402
    LEASES,
    NODECLASSES,
    NODES,
    STRATEGIC_MERGE_PATCH,
    KubeClient,
    install_crds,
)
from nodeset_controller.providers import LEASE_NAMESPACE, node_lease, ready_status  # noqa: E402


@contextlib.contextmanager
def control_plane() -> Iterator[tuple[ControlPlane, KubeClient, Path]]:
    """A fresh control plane with the CRDs, an admin client, and a scratch directory."""
    with tempfile.TemporaryDirectory(prefix="kube-node-bench-") as tmp, ControlPlane(Path(tmp) / "cp") as plane:
        client = KubeClient.from_kubeconfig(plane.kubeconfig)
        install_crds(client)
        print(f"control plane ready in {plane.startup_seconds:.1f} s")
        yield plane, client, Path(tmp)


def create_nodes(client: KubeClient, names: list[str], labels: dict[str, str], threads: int) -> float:
    """Create the Nodes with ``threads`` concurrent clients; returns the seconds it took."""
    start = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(threads) as pool:
        list(pool.map(lambda n: client.create(NODES, {"metadata": {"name": n, "labels": labels}}), names))
    return time.monotonic() - start


def plain_creates(client: KubeClient, count: int, threads: int) -> float:
    """Create ``count`` plain Nodes (no kube-node label), time it, and delete them again."""
    names = [f"plain-{i:05d}" for i in range(count)]
    seconds = create_nodes(client, names, {"bench": "plain"}, threads)
    with concurrent.futures.ThreadPoolExecutor(threads) as pool:
        list(pool.map(lambda n: client.delete(NODES, n), names))
    print(f"created {count} plain Nodes in {seconds:.2f} s")
    return seconds


def design_floor(
    client: KubeClient, count: int, threads: int, *, pre_made: bool, processes: dict[str, int] | None = None
) -> float:
    """Time for the writes this design cannot do without, issued straight from here (no kube-node, no watch, no
    cloud) for ``count`` Nodes, ``threads`` at a time, each Node's writes in order:

    - the Node's create, and unless ``pre_made`` (a NodeSet creates its Nodes whole) the patch that adds the
      finalizer, providerID and startup taint to a Node a user created bare;
    - the kubelet's Ready status (the simulated kubelet's own body) and its Lease;
    - the patch that removes the startup taint and records the machine.

    A lower bound for any implementation of the design on this machine: what kube-node adds on top of it is its
    own cost. With ``processes`` it prints the CPU each used meanwhile: what the API server and etcd spend on
    these writes bounds the time from below however fast the client. The Nodes and Leases are removed again
    afterwards (not timed)."""
    names = [f"floor-{i:05d}" for i in range(count)]
    startup = {"key": TAINT_STARTUP, "effect": "NoSchedule"}

    def bring_up(name: str) -> None:
        finish = {"finalizers": [FINALIZER_MACHINE], "annotations": {ANNOTATION_MACHINE_PHASE: "Pending"}}
        spec = {"providerID": f"kube-node://floor/{name}", "taints": [startup]}
        if pre_made:
            node = client.create(
                NODES, {"metadata": {"name": name, "labels": {"bench": "floor"}, **finish}, "spec": spec}
            )
        else:
            node = client.create(NODES, {"metadata": {"name": name, "labels": {"bench": "floor"}}})
            version = node["metadata"]["resourceVersion"]
            client.patch(NODES, name, {"metadata": {"resourceVersion": version, **finish}, "spec": spec})
        status = ready_status(name, f"sim-{name}", "10.0.0.1", {"cpu": "4", "memory": "16Gi"})
        node = client.patch(NODES, name, {"status": status}, subresource="status", content_type=STRATEGIC_MERGE_PATCH)
        client.create(LEASES, node_lease(name, node["metadata"]["uid"]), namespace=LEASE_NAMESPACE)
        record = {ANNOTATION_MACHINE_ID: f"sim-{name}", ANNOTATION_MACHINE_PHASE: "Running"}
        version = node["metadata"]["resourceVersion"]
        client.patch(
            NODES, name, {"metadata": {"resourceVersion": version, "annotations": record}, "spec": {"taints": None}}
        )

    def remove(name: str) -> None:
        client.patch(NODES, name, {"metadata": {"finalizers": None}})
        client.delete(NODES, name)
        client.delete(LEASES, name, namespace=LEASE_NAMESPACE)

    cpu_before = cpu_seconds(processes or {})
    start = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(threads) as pool:
        list(pool.map(bring_up, names))
    seconds = time.monotonic() - start
    cpu_after = cpu_seconds(processes or {})
    with concurrent.futures.ThreadPoolExecutor(threads) as pool:
        list(pool.map(remove, names))
    writes = 4 if pre_made else 5
    print(f"the design's floor ({writes} writes a Node, issued directly): {count} Nodes Ready in {seconds:.2f} s")
    if processes:
        print_cpu(cpu_before, cpu_after, seconds)
    return seconds


def simulator_nodeclass(client: KubeClient, name: str = "bench") -> None:
    """A simulator NodeClass with no boot delay."""
    client.create(
        NODECLASSES,
        {
            "apiVersion": "kube-node.io/v1alpha1",
            "kind": "NodeClass",
            "metadata": {"name": name},
            "spec": {
                "provider": "simulator",
                "capacity": {"cpu": "4", "memory": "16Gi"},
                "driverOptions": {"bootDelaySeconds": 0},
            },
        },
    )


@contextlib.contextmanager
def kube_node(
    plane: ControlPlane,
    scratch: Path,
    *,
    provider_port: int | None = None,
    status_port: int | None = None,
    machines: list[str] | None = None,
) -> Iterator[tuple[subprocess.Popen[bytes], Path | None]]:
    """``kube-node run`` as its own process (so its memory can be read), its machines from the simulator or
    the flags in ``machines``; with ``provider_port`` also the gRPC server over mutual TLS, whose cloud-config is
    yielded; with ``status_port`` its /metrics on 127.0.0.1 (see :func:`kube_node_metrics`)."""
    provider: list[str] = ["--grpc-address="]
    cloud_config = None
    if provider_port is not None:
        certificates = make_grpc_certificates(scratch / "tls")
        address = f"127.0.0.1:{provider_port}"
        cloud_config = write_cloud_config(scratch / "cloud-config.yaml", address, certificates)
        provider = [
            f"--grpc-address={address}",
            f"--grpc-cert={certificates.server.cert}",
            f"--grpc-key={certificates.server.key}",
            f"--grpc-client-ca={certificates.ca}",
        ]
    log: IO[Any] = open(scratch / "kube-node.log", "w")  # noqa: SIM115 - closed below
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "kube_node",
            "--log-level",
            "WARNING",
            "run",
            "--kubeconfig",
            str(plane.kubeconfig),
            *(machines if machines is not None else ["--simulator-dir", str(scratch / "sim")]),
            f"--status-address=127.0.0.1:{status_port}" if status_port else "--status-address=",
            "--no-leader-elect",
            *provider,
        ],
        stdout=log,
        stderr=log,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    try:
        time.sleep(2)  # let it sync its (empty) caches
        yield process, cloud_config
    finally:
        process.terminate()
        process.wait(30)
        log.close()


@contextlib.contextmanager
def cluster_autoscaler(plane: ControlPlane, scratch: Path, cloud_config: Path, *flags: str) -> Iterator[None]:
    """The real cluster-autoscaler (built from its source) against ``cloud_config``, scan interval 1 s."""
    binary = find_binaries(with_autoscaler=True).cluster_autoscaler
    if binary is None:
        raise SystemExit("no cluster-autoscaler binary: set KUBE_NODE_AUTOSCALER_SRC to its source")
    log: IO[Any] = open(scratch / "cluster-autoscaler.log", "w")  # noqa: SIM115 - closed below
    process = subprocess.Popen(
        [
            str(binary),
            "--cloud-provider=externalgrpc",
            f"--cloud-config={cloud_config}",
            f"--kubeconfig={plane.kubeconfig}",
            "--leader-elect=false",
            "--scan-interval=1s",
            "--new-pod-scale-up-delay=0s",
            "--scale-down-enabled=false",
            "--v=1",
            *flags,
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        yield
    finally:
        process.terminate()
        process.wait(30)
        log.close()


def peak_rss_mib(pid: int) -> float:
    """The process's peak resident set (VmHWM), in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def cpu_seconds(processes: dict[str, int]) -> dict[str, float]:
    """CPU time (user + system) each named process has used so far, from /proc/<pid>/stat."""
    ticks = os.sysconf("SC_CLK_TCK")
    used: dict[str, float] = {}
    for name, pid in processes.items():
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        used[name] = (int(fields[11]) + int(fields[12])) / ticks  # utime, stime (fields 14 and 15)
    return used


def print_cpu(before: dict[str, float], after: dict[str, float], seconds: float) -> None:
    """CPU each process used between two ``cpu_seconds`` snapshots, and its share of the wall time."""
    parts = ", ".join(f"{name} {after[name] - before[name]:.1f} s" for name in after)
    total = sum(after[name] - before[name] for name in after)
    print(f"CPU in {seconds:.1f} s on {os.cpu_count()} cores: {parts} (total {total:.1f} s)")


_WRITE_VERBS = ("POST", "PUT", "PATCH", "DELETE")


def api_writes(client: KubeClient) -> dict[str, float]:
    """The API server's own count of write requests so far, by "VERB resource[/subresource]" (from its
    apiserver_request_total metric), to show where a benchmark's writes go."""
    from prometheus_client.parser import text_string_to_metric_families  # noqa: PLC0415

    text = client.raw("GET", "/metrics", accept="text/plain").data.decode()
    writes: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        if family.name != "apiserver_request":
            continue
        for sample in family.samples:
            labels = sample.labels
            if sample.name != "apiserver_request_total" or labels.get("verb") not in _WRITE_VERBS:
                continue
            what = labels.get("resource", "") + (f"/{labels['subresource']}" if labels.get("subresource") else "")
            key = f"{labels['verb']} {what}"
            writes[key] = writes.get(key, 0.0) + sample.value
    return writes


def print_writes(before: dict[str, float], after: dict[str, float], per: int) -> None:
    """The writes between two ``api_writes`` snapshots, per object of the benchmark."""
    rows = sorted(((after[k] - before.get(k, 0.0), k) for k in after), reverse=True)
    total = sum(count for count, _ in rows)
    print(f"API writes: {total:.0f} ({total / per:.2f} per Node)")
    for count, key in rows:
        if count >= per / 10:
            print(f"  {key:32} {count:7.0f}  ({count / per:.2f} per Node)")


def kube_node_metrics(port: int, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    """The samples of one metric on kube-node's /metrics, by sorted labels."""
    import urllib.request  # noqa: PLC0415

    from prometheus_client.parser import text_string_to_metric_families  # noqa: PLC0415

    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        text = response.read().decode()
    return {
        tuple(sorted(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name
    }


def free_port() -> int:
    """A loopback port nobody listens on now."""
    import socket  # noqa: PLC0415

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port
