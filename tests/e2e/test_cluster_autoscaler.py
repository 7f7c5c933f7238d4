"""End to end with the real cluster-autoscaler (built from its source), over mutual TLS, on the real control
plane with kube-scheduler and kube-controller-manager and kube-node running with the simulator."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from kube_node._grpc import write_cloud_config
from kube_node.controlplane import ControlPlane
from nodeset_controller.api import LABEL_NODESET
from nodeset_controller.controllers import Manager
from nodeset_controller.kube import NODECLASSES, NODES, NODESETS, KubeClient, Resource
from tests.conftest import REPO, Provider, eventually, nodeset_manifest, simulator_nodeclass
from tests.nodesets.test_bad_cloud import BAD_CLOUD

pytestmark = pytest.mark.controlplane

DEPLOYMENTS = Resource("apps", "v1", "deployments", namespaced=True)
PODS = Resource("", "v1", "pods", namespaced=True)
NAMESPACES = Resource("", "v1", "namespaces")
SERVICE_ACCOUNTS = Resource("", "v1", "serviceaccounts", namespaced=True)
ARTIFACTS = Path(os.environ.get("KUBE_NODE_ARTIFACTS", REPO / "test-artifacts"))


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


#: klog's time of day at the start of a line ("W1203 17:50:01.123456 ..."), and the end of a back-off.
_KLOG_TIME = re.compile(r"^[IWEF]\d{4} (\d\d):(\d\d):(\d\d\.\d+)")
_BACKOFF = re.compile(r"Disabling scale-up for node group (\S+) until \S+ (\d\d):(\d\d):(\d\d(?:\.\d+)?)")


def _seconds(hours: str, minutes: str, seconds: str) -> float:
    return int(hours) * 3600 + int(minutes) * 60 + float(seconds)


def backoffs_and_scale_ups(log: str, group: str) -> tuple[list[tuple[float, float]], list[float]]:
    """From a cluster-autoscaler log: each back-off of ``group`` as (when, until), and when each scale-up of it
    was decided, as seconds since midnight (the test never spans one)."""
    backoffs: list[tuple[float, float]] = []
    scale_ups: list[float] = []
    for line in log.splitlines():
        at = _KLOG_TIME.match(line)
        if at is None:
            continue
        when = _seconds(*at.groups())
        backoff = _BACKOFF.search(line)
        if backoff is not None and backoff.group(1) == group:
            backoffs.append((when, _seconds(*backoff.groups()[1:])))
        elif f"setting group {group} size to" in line:
            scale_ups.append(when)
    return backoffs, scale_ups


# With this seed the simulator refuses the first create for quota, then lets the next five through (its draws are
# in call order, whichever Node makes the call): the back-off below is certain, not a 70%-per-create chance.
@pytest.mark.simulator_seed(3)
def test_a_bad_cloud_makes_the_autoscaler_back_off_then_it_converges_within_bounds_and_nothing_leaks(
    kube: KubeClient,
    control_plane: ControlPlane,
    manager: Manager,
    provider: Provider,
    namespace: str,
    autoscaler_binary: Path,
    tmp_path: Path,
) -> None:
    """The bad cloud of tests/nodesets/test_bad_cloud.py (30% of creates refused for quota, 10% of destroys
    failing, 5% of machines crashing, creates ten times slower than boot) under the real cluster-autoscaler: it
    is told OutOfResources for the refused machine, backs the group off and scales it up again only once the
    back-off is over; the pods all run, the NodeSet never passes its maximum, and nothing leaks on the way down."""
    assert manager.simulator is not None
    kube.create(NODECLASSES, simulator_nodeclass("flaky", **BAD_CLOUD))
    kube.create(
        NODESETS,
        nodeset_manifest("flaky", 0, nodeclass="flaky", maxReplicas=6, autoscaling={"mode": "ClusterAutoscaler"}),
    )
    autoscaler = Autoscaler(
        autoscaler_binary,
        control_plane,
        provider,
        tmp_path,
        "bad-cloud",
        # A long provision time, so a back-off can only come from the instance errors; short back-offs, so the
        # test sees the group scaled up again after one.
        "--max-node-provision-time=15m",
        "--initial-node-group-backoff-duration=5s",
        "--max-node-group-backoff-duration=10s",
    )
    most_replicas = 0

    def all_running() -> bool:
        nonlocal most_replicas
        most_replicas = max(most_replicas, kube.get(NODESETS, "flaky")["spec"]["replicas"])
        return running_pods(kube, namespace) == 8

    try:
        # Eight pods of 1.5 CPU: four 4-CPU Nodes.
        kube.create(DEPLOYMENTS, deployment(8, "flaky", "1500m"), namespace)
        eventually(all_running, timeout=240, interval=0.5, what=f"8 pods Running\n{autoscaler.tail()}")
        log = autoscaler.log()
        refused = [name for name, _, error in manager.simulator.create_log if error == "QUOTA_EXCEEDED"]
        assert refused, "the seeded simulator refused no create"
        assert "errorCode=QUOTA_EXCEEDED" in log and "OutOfResource" in log, autoscaler.tail()
        backoffs, scale_ups = backoffs_and_scale_ups(log, "flaky")
        assert backoffs, autoscaler.tail()
        # Backed off means no scale-up of the group while the back-off lasts (0.5 s of slack for the log's
        # clock against the back-off's), and a scale-up once it is over (the pods could not all run otherwise).
        for started, until in backoffs:
            during = [at for at in scale_ups if started < at < until - 0.5]
            assert not during, f"scaled up at {during} while backed off {started}..{until}\n{autoscaler.tail()}"
        assert any(at >= backoffs[0][1] - 0.5 for at in scale_ups), autoscaler.tail()
        assert most_replicas <= 6

        kube.patch(DEPLOYMENTS, "load", {"spec": {"replicas": 0}}, namespace)
        eventually(
            lambda: not set_members(kube, "flaky"),
            timeout=180,
            interval=0.5,
            what=f"every Node of the set gone\n{autoscaler.tail()}",
        )
        eventually(
            lambda: not [m for m in manager.simulator.machines() if m.nodeclass == "flaky"],
            timeout=60,
            what="every machine destroyed (none leaked), 10% of destroys failing",
        )
        assert kube.get(NODESETS, "flaky")["spec"]["replicas"] == 0
        assert autoscaler.process.poll() is None, autoscaler.tail()
    finally:
        autoscaler.stop()


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
        assert {nodeset for _, nodeset, _, _ in manager.pending_pod_autoscaler.decisions} == {"for-kube-node"}
        log = autoscaler.log()
        assert "setting group for-ca size to 2" in log
        assert "for-kube-node size" not in log
    finally:
        autoscaler.stop()
