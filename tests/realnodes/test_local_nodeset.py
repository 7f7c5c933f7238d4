"""Real kubelets: a NodeSet of ``local`` machines joins with minted tokens, runs pods, and scales down cleanly.

The NodeClass is the shipped sample (kube_node/samples/nodeclass-local.yaml): its user-data does what a cloud
machine's cloud-init would, and each kubelet TLS-bootstraps with its machine's own bootstrap token and adopts
the Node kube-node created before the machine existed.
"""

from __future__ import annotations

import ipaddress
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from kube_node._samples import SAMPLES_DIR
from kube_node.controlplane._controlplane import SERVICE_CLUSTER_IP_RANGE
from nodeset_controller.api import (
    ANNOTATION_BOOTSTRAP_TOKENS,
    LABEL_BOOTSTRAP_TOKEN_NODE_UID,
    LABEL_NODESET,
)
from nodeset_controller.controllers import Manager
from nodeset_controller.kube import NODECLASSES, NODES, NODESETS, SECRETS, ApiError, KubeClient, Resource
from nodeset_controller.providers import BUSYBOX_IMAGE, LocalMachines, machine_name
from nodeset_controller.providers import _local_host as host
from tests.conftest import eventually, nodeset_manifest

pytestmark = [pytest.mark.controlplane, pytest.mark.realnodes]

PODS = Resource("", "v1", "pods", namespaced=True)
CSRS = Resource("certificates.k8s.io", "v1", "certificatesigningrequests")
STARTUP_TAINT = "startup-taint.cluster-autoscaler.kubernetes.io/kube-node"


def local_nodeclass() -> dict[str, Any]:
    """The shipped sample, its Service range the local control plane's."""
    manifest: dict[str, Any] = yaml.safe_load((SAMPLES_DIR / "nodeclass-local.yaml").read_text())
    manifest["spec"]["driverOptions"]["serviceClusterIPRange"] = SERVICE_CLUSTER_IP_RANGE
    return manifest


def ready(node: dict[str, Any]) -> bool:
    conditions = node.get("status", {}).get("conditions") or []
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)


def _lifecycle(taint: dict[str, Any]) -> bool:
    return str(taint["key"]).startswith("node.kubernetes.io/")


def busybox_pod(name: str, node: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {
            "nodeSelector": {"kubernetes.io/hostname": node},
            "automountServiceAccountToken": False,
            "terminationGracePeriodSeconds": 1,
            "containers": [
                {
                    "name": "busybox",
                    "image": BUSYBOX_IMAGE,
                    "imagePullPolicy": "Never",
                    "command": ["sh", "-c", "trap 'exit 0' TERM; while true; do sleep 1; done"],
                }
            ],
        },
    }


def route(address: str) -> str:
    return subprocess.run(
        ["ip", "route", "get", address], capture_output=True, text=True, check=False
    ).stdout.strip() or (
        subprocess.run(["ip", "route", "get", address], capture_output=True, text=True, check=False).stderr.strip()
    )


def assert_contained(pod_ips: list[str], pod_range: str) -> None:
    """No pod or Service address resolves through the default route: pods' through their bridges, the rest of
    both ranges to blackholes."""
    default = subprocess.run(
        ["ip", "route", "show", "default"], capture_output=True, text=True, check=False
    ).stdout.split()
    gateway = default[default.index("via") + 1] if "via" in default else None
    device = default[default.index("dev") + 1] if "dev" in default else None
    unused_pod = str(ipaddress.ip_network(pod_range)[-2])
    service = str(ipaddress.ip_network(SERVICE_CLUSTER_IP_RANGE)[1])
    for address in [*pod_ips, unused_pod, service]:
        seen = route(address)
        assert (gateway is None or f"via {gateway}" not in seen) and (device is None or f"dev {device} " not in seen), (
            f"{address} would leave the machine: {seen}"
        )
    for address in pod_ips:
        assert " dev kn" in route(address), route(address)
    for address in (unused_pod, service):
        assert "blackhole" in route(address) or "Invalid argument" in route(address), route(address)


def test_a_nodeset_of_two_real_kubelets_joins_runs_pods_and_scales_down(
    kube: KubeClient, namespace: str, local_manager: Manager
) -> None:
    nodeclass = kube.create(NODECLASSES, local_nodeclass())
    pod_range = nodeclass["spec"]["driverOptions"]["podRange"]
    started = time.monotonic()
    kube.create(NODESETS, nodeset_manifest("real", 2, "local"))

    # kube-node makes the Nodes first (labels, finalizer, providerID, startup taint), then their machines
    def members() -> list[dict[str, Any]]:
        return kube.list(NODES, labelSelector=f"{LABEL_NODESET}=real")["items"]

    made = {n["metadata"]["name"]: n for n in eventually(lambda: len(members()) == 2 and members(), what="2 Nodes")}
    nodes = eventually(lambda: all(ready(n) for n in members()) and members(), timeout=90, what="both kubelets Ready")
    ready_seconds = time.monotonic() - started
    print(f"NodeSet 0 -> 2 real Nodes Ready in {ready_seconds:.1f} s")
    for node in nodes:
        name = node["metadata"]["name"]
        before = made[name]
        assert node["metadata"]["uid"] == before["metadata"]["uid"], "the kubelet made a Node of its own"
        for key, value in before["metadata"]["labels"].items():
            assert node["metadata"]["labels"].get(key) == value, f"{name}: label {key} changed"
        assert node["metadata"]["labels"]["kubernetes.io/hostname"] == name
        assert set(before["metadata"]["finalizers"]) <= set(node["metadata"]["finalizers"])
        assert node["spec"]["providerID"] == before["spec"]["providerID"] == f"kube-node://local/{name}"
        # (the node lifecycle controller's node.kubernetes.io/* taints come and go with readiness)
        own = {(t["key"], t["effect"]) for t in before["spec"].get("taints", []) if not _lifecycle(t)}
        assert (STARTUP_TAINT, "NoSchedule") in own
        assert own - {(STARTUP_TAINT, "NoSchedule")} <= {
            (t["key"], t["effect"]) for t in node["spec"].get("taints") or []
        }

    # each kubelet bootstrapped with its own token, named on its Node; kube-node deletes the tokens after join
    tokens = {n["metadata"]["name"]: made[n["metadata"]["name"]]["metadata"]["annotations"] for n in nodes}
    token_ids = {name: a[ANNOTATION_BOOTSTRAP_TOKENS].removeprefix("bootstrap-token-") for name, a in tokens.items()}
    assert len(set(token_ids.values())) == 2, token_ids
    requesters = {c["spec"]["username"] for c in kube.list(CSRS)["items"]}
    for name, token in token_ids.items():
        assert f"system:bootstrap:{token}" in requesters, f"{name} did not join with its token {token}"
    eventually(
        lambda: not kube.list(SECRETS, "kube-system", labelSelector=LABEL_BOOTSTRAP_TOKEN_NODE_UID)["items"],
        what="the bootstrap tokens deleted",
    )
    # ... and removes the startup taint from Ready Nodes
    eventually(
        lambda: all(STARTUP_TAINT not in {t["key"] for t in n["spec"].get("taints") or []} for n in members()),
        what="the startup taints removed",
    )

    # a pod from the locally built image runs on each Node
    pods_started = time.monotonic()
    for node in nodes:
        kube.create(PODS, busybox_pod(f"bb-{node['metadata']['name']}", node["metadata"]["name"]), namespace)

    def running() -> list[dict[str, Any]]:
        pods = kube.list(PODS, namespace)["items"]
        return pods if len(pods) == 2 and all(p["status"].get("phase") == "Running" for p in pods) else []

    pods = eventually(running, timeout=60, what="a pod Running on each real Node")
    print(f"pods Running {time.monotonic() - pods_started:.1f} s after create")
    machines = LocalMachines(local_manager.settings.local_machines_dir or Path("/nonexistent"))
    subnets = {m.node_name: m.subnet for m in machines.machines()}
    for pod in pods:
        assert ipaddress.ip_address(pod["status"]["podIP"]) in ipaddress.ip_network(subnets[pod["spec"]["nodeName"]])
    assert_contained([p["status"]["podIP"] for p in pods], pod_range)

    # scale to 1: the victim is cordoned and drained, its machine stopped and removed, then its Node deleted
    by_node = {m.node_name: m for m in machines.machines()}
    seen: dict[str, dict[str, float]] = {n["metadata"]["name"]: {} for n in nodes}
    stop = threading.Event()

    def watch() -> None:
        # Each pass looks in the order the steps must happen, so steps done between two passes keep their order
        while not stop.is_set():
            for name, marks in seen.items():
                machine = by_node[name]
                try:
                    node: dict[str, Any] | None = kube.get(NODES, name)
                except ApiError as error:
                    if not error.not_found:
                        raise
                    node = None
                if node is None or node["spec"].get("unschedulable"):
                    marks.setdefault("cordoned", time.monotonic())
                pods = kube.list(PODS, namespace, fieldSelector=f"spec.nodeName={name}")["items"]
                if all(p["metadata"].get("deletionTimestamp") for p in pods):
                    marks.setdefault("pod evicted", time.monotonic())
                if all(p["status"].get("phase") in ("Succeeded", "Failed") for p in pods):
                    marks.setdefault("pod finished", time.monotonic())
                if not host.cgroup_pids(machine.cgroup):
                    marks.setdefault("processes gone", time.monotonic())
                if not Path(machine.directory).exists():
                    marks.setdefault("directory gone", time.monotonic())
                if node is None:
                    marks.setdefault("node gone", time.monotonic())
            time.sleep(0.05)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        scaled = time.monotonic()
        kube.patch(NODESETS, "real", {"spec": {"replicas": 1}})
        eventually(lambda: any("node gone" in m for m in seen.values()), timeout=60, what="the victim's Node gone")
        print(f"scale 2 -> 1 in {time.monotonic() - scaled:.1f} s")
        time.sleep(0.2)
    finally:
        stop.set()
        watcher.join()
    (victim,) = [name for name, marks in seen.items() if "node gone" in marks]
    (survivor,) = [name for name in seen if name != victim]
    marks = seen[victim]
    order = ["cordoned", "pod evicted", "pod finished", "processes gone", "directory gone", "node gone"]
    assert all(step in marks for step in order), marks
    assert [marks[s] for s in order] == sorted(marks[s] for s in order), marks
    assert not host.cgroup_pids(by_node[victim].cgroup)
    assert not Path(by_node[victim].directory).exists()
    assert not host.link_exists(by_node[victim].bridge)
    assert machines.get(machine_name(victim, made[victim]["metadata"]["uid"])) is None
    assert {m.node_name for m in machines.machines()} == {survivor}
    assert ready(kube.get(NODES, survivor))
    assert seen[survivor] == {}, f"the survivor was touched: {seen[survivor]}"
    assert kube.get(PODS, f"bb-{survivor}", namespace)["status"]["phase"] == "Running"
