"""SIGTERM: kube-node stops taking work, lets the cloud call in flight finish and be recorded, releases the
Lease and exits 0."""

from __future__ import annotations

import signal
import time
import uuid
from pathlib import Path

from kube_node.controlplane import ControlPlane
from nodeset_controller.api import ANNOTATION_MACHINE_ID, FINALIZER_MACHINE
from nodeset_controller.kube import LEASES, NODECLASSES, NODES, KubeClient
from nodeset_controller.providers import SimulatorCloud
from tests.conftest import eventually, managed_node, simulator_nodeclass

from ._process import KubeNodeProcess


def test_sigterm_finishes_the_create_in_flight_records_it_and_releases_the_lease(
    control_plane: ControlPlane, kube: KubeClient, tmp_path: Path
) -> None:
    lease = f"shutdown-{uuid.uuid4().hex[:8]}"
    kube.create(NODECLASSES, simulator_nodeclass(createDelaySeconds=3))
    process = KubeNodeProcess(
        control_plane,
        tmp_path,
        "kube-node",
        f"--simulator-dir={tmp_path / 'simulator'}",
        "--grpc-address=",
        f"--leader-election-lease-name={lease}",
        "--shutdown-grace-period=10",
    )
    try:
        eventually(lambda: "leader election: leading" in process.get("/readyz")[1], timeout=30, what="leadership")
        kube.create(NODES, managed_node("slow"))
        eventually(
            lambda: FINALIZER_MACHINE in (kube.get(NODES, "slow")["metadata"].get("finalizers") or []),
            what="the Node taken in hand",
        )
        time.sleep(1.0)  # the simulated cloud is now inside its 3 s create
        cloud = SimulatorCloud(tmp_path / "simulator")
        assert cloud.machines() == [], "the create finished before the test could interrupt it"
        signalled = time.monotonic()
        assert process.terminate() == 0, process.log()[-3000:]
        took = time.monotonic() - signalled
    finally:
        process.close()
    # It waited for the create (about 2 s left) but not for the whole grace period.
    assert 1.0 < took < 10.0, took
    machines = cloud.machines()
    cloud.close()
    assert len(machines) == 1
    assert kube.get(NODES, "slow")["metadata"]["annotations"][ANNOTATION_MACHINE_ID] == machines[0].id
    assert not kube.get(LEASES, lease, "kube-system")["spec"].get("holderIdentity")
    assert "shutting down" in process.log()


def test_sigterm_with_a_create_outlasting_the_grace_period_leaves_the_lease_to_expire(
    control_plane: ControlPlane, kube: KubeClient, tmp_path: Path
) -> None:
    # A cloud call still in flight may yet make a machine no Node records: the next leader must not start
    # before the Lease has expired, by when the create is over and its machine is found by name.
    lease = f"shutdown-{uuid.uuid4().hex[:8]}"
    kube.create(NODECLASSES, simulator_nodeclass(createDelaySeconds=30))
    process = KubeNodeProcess(
        control_plane,
        tmp_path,
        "kube-node",
        f"--simulator-dir={tmp_path / 'simulator'}",
        "--grpc-address=",
        f"--leader-election-lease-name={lease}",
        "--shutdown-grace-period=1",
    )
    try:
        eventually(lambda: "leader election: leading" in process.get("/readyz")[1], timeout=30, what="leadership")
        holder = kube.get(LEASES, lease, "kube-system")["spec"]["holderIdentity"]
        kube.create(NODES, managed_node("stuck"))
        eventually(
            lambda: FINALIZER_MACHINE in (kube.get(NODES, "stuck")["metadata"].get("finalizers") or []),
            what="the Node taken in hand",
        )
        time.sleep(1.0)  # inside the 30 s create
        process.process.send_signal(signal.SIGTERM)
        process.process.wait(30)
    finally:
        process.close()
    assert kube.get(LEASES, lease, "kube-system")["spec"].get("holderIdentity") == holder
    assert "not releasing the leader Lease" in process.log()
