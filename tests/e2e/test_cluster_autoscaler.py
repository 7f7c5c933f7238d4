"""End to end with the real cluster-autoscaler (built from its source), over mutual TLS, on the real control
plane with kube-scheduler and kube-controller-manager and kube-node running with the simulator."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from kube_node._provider import write_cloud_config
from kube_node.controlplane import Binaries, ControlPlane, find_binaries
from nodeset_controller.api import LABEL_NODESET
from nodeset_controller.controllers import Manager
from nodeset_controller.kube import NODECLASSES, NODES, NODESETS, KubeClient, Resource
from tests.conftest import REPO, Provider, eventually, nodeset_manifest, simulator_nodeclass

pytestmark = pytest.mark.controlplane

DEPLOYMENTS = Resource("apps", "v1", "deployments", namespaced=True)
PODS = Resource("", "v1", "pods", namespaced=True)
NAMESPACES = Resource("", "v1", "namespaces")
SERVICE_ACCOUNTS = Resource("", "v1", "serviceaccounts", namespaced=True)
ARTIFACTS = Path(os.environ.get("KUBE_NODE_ARTIFACTS", REPO / "test-artifacts"))
AUTOSCALER_SRC = Path(os.environ.get("KUBE_NODE_AUTOSCALER_SRC", REPO.parent / "shared/third_party/cluster-autoscaler"))


@pytest.fixture(scope="session")
def autoscaler_binary(binaries: Binaries) -> Path:
    if binaries.cluster_autoscaler is not None:
        return binaries.cluster_autoscaler
    if not (AUTOSCALER_SRC / "go.mod").exists():
        reason = (
            f"no cluster-autoscaler source at {AUTOSCALER_SRC}: set KUBE_NODE_AUTOSCALER_SRC to a checkout "
            "of kubernetes/autoscaler's cluster-autoscaler (release 1.36) to run the end-to-end tests"
        )
        if os.environ.get("CI"):  # in CI the source is there (../shared): its absence is a failure, not a skip
            pytest.fail(reason)
        pytest.skip(reason)
    built = find_binaries(with_autoscaler=True).cluster_autoscaler
    assert built is not None, f"hack/build-tools.sh --with-autoscaler did not build {AUTOSCALER_SRC}"
    return built


class Autoscaler:
    """A running cluster-autoscaler whose log is kept as a test artifact."""

    def __init__(
        self, binary: Path, control_plane: ControlPlane, provider: Provider, workdir: Path, name: str, *extra: str
    ) -> None:
        config = write_cloud_config(workdir / "cloud-config.yaml", provider.address, provider.certificates)
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        self.log_path = ARTIFACTS / f"cluster-autoscaler-{name}.log"
        self._log = self.log_path.open("w")
        self.process = subprocess.Popen(
            [
                str(binary),
                "--cloud-provider=externalgrpc",
                f"--cloud-config={config}",
                f"--kubeconfig={control_plane.kubeconfig}",
                "--leader-elect=false",
                "--scan-interval=1s",
                "--new-pod-scale-up-delay=0s",
                "--scale-down-delay-after-add=2s",
                "--scale-down-delay-after-delete=0s",
                "--scale-down-delay-after-failure=2s",
                "--scale-down-unneeded-time=3s",
                "--unremovable-node-recheck-timeout=2s",
                "--max-inactivity=10m",
                "--max-failing-time=10m",
                "--skip-nodes-with-local-storage=false",
                "--v=2",
                *extra,
            ],
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def tail(self, lines: int = 40) -> str:
        return f"cluster-autoscaler log ({self.log_path}):\n" + "\n".join(self.log().splitlines()[-lines:])

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self._log.close()


def deployment(replicas: int, nodeset: str, cpu: str) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "load"},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": "load"}},
            "template": {
                "metadata": {"labels": {"app": "load"}},
                "spec": {
                    "nodeSelector": {LABEL_NODESET: nodeset},
                    "terminationGracePeriodSeconds": 0,
                    "containers": [
                        {
                            "name": "c",
                            "image": "registry.invalid/load:1",
                            "resources": {"requests": {"cpu": cpu, "memory": "256Mi"}},
                        }
                    ],
                },
            },
        },
    }


def running_pods(kube: KubeClient, namespace: str) -> int:
    pods = kube.list(PODS, namespace)["items"]
    return sum(1 for p in pods if p["status"].get("phase") == "Running" and not p["metadata"].get("deletionTimestamp"))


def set_members(kube: KubeClient, nodeset: str) -> list[dict[str, Any]]:
    return kube.list(NODES, labelSelector=f"{LABEL_NODESET}={nodeset}")["items"]


def test_the_autoscaler_scales_a_nodeset_from_zero_and_back(
    kube: KubeClient,
    control_plane: ControlPlane,
    manager: Manager,
    provider: Provider,
    namespace: str,
    autoscaler_binary: Path,
    tmp_path: Path,
) -> None:
    kube.create(NODECLASSES, simulator_nodeclass(bootDelaySeconds=1))
    kube.create(
        NODESETS, nodeset_manifest("auto", 0, minReplicas=0, maxReplicas=10, autoscaling={"mode": "ClusterAutoscaler"})
    )
    autoscaler = Autoscaler(autoscaler_binary, control_plane, provider, tmp_path, "scale-up-down")
    try:
        # (a) Six pods of 1.5 CPU fit nowhere; a 4-CPU node takes two: the autoscaler asks for three.
        kube.create(DEPLOYMENTS, deployment(6, "auto", "1500m"), namespace)
        eventually(lambda: running_pods(kube, namespace) == 6, timeout=120, what=f"6 pods Running\n{autoscaler.tail()}")
        assert kube.get(NODESETS, "auto")["spec"]["replicas"] == 3, autoscaler.tail()
        assert len(set_members(kube, "auto")) == 3
        assert manager.simulator is not None and len(manager.simulator.machines()) == 3
        assert "NodeGroupIncreaseSize" in autoscaler.log() or "Scale-up" in autoscaler.log()

        # (b) With the pods gone the Nodes are empty: the autoscaler removes them through DeleteNodes.
        kube.patch(DEPLOYMENTS, "load", {"spec": {"replicas": 0}}, namespace)
        eventually(
            lambda: not set_members(kube, "auto") and not manager.simulator.machines(),
            timeout=150,
            what=f"every Node and machine gone\n{autoscaler.tail()}",
        )
        assert kube.get(NODESETS, "auto")["spec"]["replicas"] == 0
        assert autoscaler.process.poll() is None, autoscaler.tail()
    finally:
        autoscaler.stop()


def test_quota_failures_make_the_autoscaler_back_off_at_once(
    kube: KubeClient,
    control_plane: ControlPlane,
    manager: Manager,
    provider: Provider,
    namespace: str,
    autoscaler_binary: Path,
    tmp_path: Path,
) -> None:
    kube.create(NODECLASSES, simulator_nodeclass("starved", createFailureRate=1))
    kube.create(
        NODESETS,
        nodeset_manifest("starved", 0, nodeclass="starved", maxReplicas=10, autoscaling={"mode": "ClusterAutoscaler"}),
    )
    # max-node-provision-time is long, so a back-off within the test can only come from the instance errors.
    autoscaler = Autoscaler(
        autoscaler_binary, control_plane, provider, tmp_path, "quota", "--max-node-provision-time=15m"
    )
    try:
        kube.create(DEPLOYMENTS, deployment(2, "starved", "1500m"), namespace)
        started = time.monotonic()
        eventually(
            lambda: "Disabling scale-up for node group starved" in autoscaler.log(),
            timeout=90,
            what=f"the autoscaler to back the group off\n{autoscaler.tail()}",
        )
        assert time.monotonic() - started < 90
        log = autoscaler.log()
        assert "QUOTA_EXCEEDED" in log
        assert "OutOfResource" in log
        assert manager.simulator is not None and manager.simulator.machines() == []
    finally:
        autoscaler.stop()
    shutil.copy(autoscaler.log_path, tmp_path / "cluster-autoscaler.log")


def test_each_nodeset_is_driven_only_by_its_own_autoscaler(
    kube: KubeClient,
    control_plane: ControlPlane,
    manager: Manager,
    provider: Provider,
    namespace: str,
    autoscaler_binary: Path,
    tmp_path: Path,
) -> None:
    for name in ("for-ca", "for-kube-node"):
        nodeclass = simulator_nodeclass(name)
        nodeclass["spec"]["labels"] = {"pool": name}
        kube.create(NODECLASSES, nodeclass)
    kube.create(
        NODESETS,
        nodeset_manifest("for-ca", 0, nodeclass="for-ca", maxReplicas=10, autoscaling={"mode": "ClusterAutoscaler"}),
    )
    kube.create(
        NODESETS,
        nodeset_manifest(
            "for-kube-node", 0, nodeclass="for-kube-node", maxReplicas=10, autoscaling={"mode": "KubeNode"}
        ),
    )
    autoscaler = Autoscaler(
        autoscaler_binary, control_plane, provider, tmp_path, "two-autoscalers", "--scale-down-enabled=false"
    )
    try:
        for pool in ("for-ca", "for-kube-node"):
            body = deployment(4, pool, "1500m")
            body["metadata"]["name"] = f"load-{pool}"
            body["spec"]["selector"]["matchLabels"] = body["spec"]["template"]["metadata"]["labels"] = {"app": pool}
            body["spec"]["template"]["spec"]["nodeSelector"] = {"pool": pool}
            kube.create(DEPLOYMENTS, body, namespace)
        eventually(
            lambda: running_pods(kube, namespace) == 8, timeout=120, what=f"all 8 pods Running\n{autoscaler.tail()}"
        )
        assert kube.get(NODESETS, "for-ca")["spec"]["replicas"] == 2
        assert kube.get(NODESETS, "for-kube-node")["spec"]["replicas"] == 2
        # kube-node's autoscaler decided only its own NodeSet; the cluster-autoscaler never saw it as a group.
        assert {nodeset for _, nodeset, _, _ in manager.autoscaler.decisions} == {"for-kube-node"}
        log = autoscaler.log()
        assert "setting group for-ca size to 2" in log
        assert "for-kube-node size" not in log
    finally:
        autoscaler.stop()
