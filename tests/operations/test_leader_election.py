"""Leader election: exactly one replica acts, a standby takes over a dead leader's Lease, SIGTERM hands it
over at once, and a leader that cannot renew stops before its Lease can expire."""

from __future__ import annotations

import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
import urllib3

from autoscaler_provider._proto import externalgrpc_pb2 as pb
from autoscaler_provider._proto import externalgrpc_pb2_grpc as pb_grpc
from kube_node.controlplane import ControlPlane
from nodeset_controller.api import ANNOTATION_MACHINE_ID, parse_time
from nodeset_controller.kube import (
    LEASES,
    NODECLASSES,
    NODES,
    NODESETS,
    KubeClient,
    LeaderElectionSettings,
    LeaderElector,
    LeaderState,
)
from nodeset_controller.providers import SimulatorCloud
from tests.conftest import eventually, nodeset_manifest, simulator_nodeclass

from ._process import KubeNodeProcess, free_port

LEASE_DURATION = 4.0
RENEW_DEADLINE = 3.0
RETRY_PERIOD = 0.5


def _settings(lease: str, identity: str) -> LeaderElectionSettings:
    return LeaderElectionSettings(
        namespace="kube-system",
        identity=identity,
        name=lease,
        lease_duration=LEASE_DURATION,
        renew_deadline=RENEW_DEADLINE,
        retry_period=RETRY_PERIOD,
    )


def test_of_two_candidates_exactly_one_leads_and_a_release_hands_over_at_once(kube: KubeClient) -> None:
    lease = f"pair-{uuid.uuid4().hex[:8]}"
    started: list[str] = []
    electors = [
        LeaderElector(kube, _settings(lease, name), on_started_leading=lambda n=name: started.append(n))
        for name in ("first", "second")
    ]
    for elector in electors:
        elector.start()
    try:
        eventually(lambda: started, what="a leader")
        time.sleep(3 * RETRY_PERIOD)  # time for a second (wrong) winner to show up
        leaders = [e for e in electors if e.is_leader()]
        assert [e.settings.identity for e in leaders] == started, started
        leader, standby = (electors[0], electors[1]) if electors[0].is_leader() else (electors[1], electors[0])
        assert standby.state is LeaderState.STANDBY
        assert kube.get(LEASES, lease, "kube-system")["spec"]["holderIdentity"] == leader.settings.identity

        released_at = time.monotonic()
        leader.release()
        eventually(standby.is_leader, timeout=LEASE_DURATION, what="the standby to take over")
        # An emptied Lease is taken at the next try, not after the lease duration.
        assert time.monotonic() - released_at < 2 * RETRY_PERIOD + 1.0
        spec = kube.get(LEASES, lease, "kube-system")["spec"]
        assert spec["holderIdentity"] == standby.settings.identity
        assert spec["leaseTransitions"] == 1
    finally:
        for elector in electors:
            elector.release()


def test_a_leader_that_cannot_renew_stops_before_its_lease_can_expire(
    kube: KubeClient, control_plane: ControlPlane, monkeypatch: pytest.MonkeyPatch
) -> None:
    lease = f"cut-off-{uuid.uuid4().hex[:8]}"
    client = KubeClient.from_kubeconfig(control_plane.kubeconfig)
    stopped: list[float] = []
    elector = LeaderElector(client, _settings(lease, "cut-off"), on_stopped_leading=lambda: stopped.append(time.time()))
    elector.start()
    try:
        eventually(elector.is_leader, what="leadership")
        renewed = kube.get(LEASES, lease, "kube-system")["spec"]["renewTime"]
        eventually(lambda: kube.get(LEASES, lease, "kube-system")["spec"]["renewTime"] != renewed, what="a renewal")

        def unreachable(*_: object, **__: object) -> object:
            raise urllib3.exceptions.NewConnectionError(None, "the API server is unreachable")  # type: ignore[arg-type]

        monkeypatch.setattr(client, "request", unreachable)
        eventually(lambda: stopped, timeout=RENEW_DEADLINE + 2, what="the leader to give up")
        assert not elector.is_leader()
        assert elector.state is LeaderState.STOPPED
        # It stopped acting before anyone else could take the Lease: a standby waits a whole lease duration
        # after the last renewal it saw, and the Lease shows the last renewal that succeeded.
        last_renewal = parse_time(kube.get(LEASES, lease, "kube-system")["spec"]["renewTime"])
        assert stopped[0] < last_renewal + LEASE_DURATION, (stopped[0] - last_renewal, LEASE_DURATION)
    finally:
        monkeypatch.undo()
        elector.release()


def test_the_renew_deadline_counts_from_when_the_renewal_was_sent_not_from_its_slow_answer(
    kube: KubeClient, control_plane: ControlPlane, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A standby waits a lease duration from when it saw the renewal applied, which can be right after it was
    # sent: a leader that counted from the (late) answer would still act after the standby had taken over.
    lease = f"slow-{uuid.uuid4().hex[:8]}"
    client = KubeClient.from_kubeconfig(control_plane.kubeconfig)
    elector = LeaderElector(client, _settings(lease, "slow-answers"))
    elector.start()
    try:
        eventually(elector.is_leader, what="leadership")
        real_request = client.request
        sent: list[float] = []
        slow_answer = 1.0

        def one_slow_renewal_then_unreachable(method: str, path: str, **kwargs: object) -> object:
            if sent:
                raise urllib3.exceptions.NewConnectionError(None, "the API server is unreachable")  # type: ignore[arg-type]
            if method != "PUT":
                return real_request(method, path, **kwargs)  # type: ignore[arg-type]
            sent.append(time.monotonic())
            answer = real_request(method, path, **kwargs)  # type: ignore[arg-type]
            time.sleep(slow_answer)  # applied at once; the answer is slow
            return answer

        monkeypatch.setattr(client, "request", one_slow_renewal_then_unreachable)
        eventually(lambda: not elector.is_leader(), timeout=RENEW_DEADLINE + slow_answer + 3, what="the deadline")
        stopped_leading = time.monotonic()
        assert sent, "no renewal was sent"
        assert stopped_leading - sent[-1] < RENEW_DEADLINE + 0.3, (stopped_leading - sent[-1], RENEW_DEADLINE)
    finally:
        monkeypatch.undo()
        elector.release()


def test_a_fractional_lease_duration_is_written_rounded_up(kube: KubeClient) -> None:
    # leaseDurationSeconds is an integer; rounded down, a standby would take over before this leader's renew
    # deadline (2.2 s) has passed.
    lease = f"fraction-{uuid.uuid4().hex[:8]}"
    settings = LeaderElectionSettings(
        namespace="kube-system",
        identity="fraction",
        name=lease,
        lease_duration=2.5,
        renew_deadline=2.2,
        retry_period=RETRY_PERIOD,
    )
    elector = LeaderElector(kube, settings)
    elector.start()
    try:
        eventually(elector.is_leader, what="leadership")
        assert kube.get(LEASES, lease, "kube-system")["spec"]["leaseDurationSeconds"] == 3
    finally:
        elector.release()


@pytest.fixture
def lease() -> str:
    return f"kube-node-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def pair(control_plane: ControlPlane, kube: KubeClient, tmp_path: Path, lease: str) -> Iterator[list[KubeNodeProcess]]:
    flags = (
        f"--simulator-dir={tmp_path / 'simulator'}",
        "--grpc-insecure",
        f"--leader-election-lease-name={lease}",
        f"--leader-election-lease-duration={LEASE_DURATION}",
        f"--leader-election-renew-deadline={RENEW_DEADLINE}",
        f"--leader-election-retry-period={RETRY_PERIOD}",
    )
    addresses = {name: f"127.0.0.1:{free_port()}" for name in ("a", "b")}
    processes = [
        KubeNodeProcess(control_plane, tmp_path, name, *flags, f"--grpc-address={address}")
        for name, address in addresses.items()
    ]
    try:
        yield processes
    finally:
        for process in processes:
            process.close()


def test_a_standby_finishes_a_killed_leaders_scale_up_without_a_double_machine_and_sigterm_releases_the_lease(
    kube: KubeClient, pair: list[KubeNodeProcess], tmp_path: Path, lease: str
) -> None:
    for process in pair:
        eventually(process.ready, timeout=30, what=f"{process.name} ready")
    leader = eventually(lambda: next((p for p in pair if p.leading()), None), timeout=10, what="a leader")
    standby = next(p for p in pair if p is not leader)
    time.sleep(3 * RETRY_PERIOD)
    assert not standby.leading(), "two leaders"
    assert "leader election: standby" in standby.get("/readyz")[1]
    assert "leader election: leading" in leader.get("/readyz")[1]

    # Slow creates, so the leader dies with machines on order and Nodes not yet Ready.
    kube.create(NODECLASSES, simulator_nodeclass(createDelaySeconds="1.5", bootDelaySeconds=1))
    kube.create(NODESETS, nodeset_manifest("pool", 20))
    cloud = SimulatorCloud(tmp_path / "simulator")
    try:
        eventually(lambda: len(cloud.machines()) >= 3, timeout=30, what="machines on order")
        assert (kube.get(NODESETS, "pool").get("status") or {}).get("readyReplicas", 0) < 20
        leader.kill()
        killed_at = time.monotonic()

        eventually(standby.leading, timeout=LEASE_DURATION + 3, what="the standby to take over")
        # The standby saw the last renewal at most a retry before the kill; it waits a lease duration after
        # that, then takes the Lease at its next try (a retry, with jitter), and the test polls /metrics.
        assert time.monotonic() - killed_at <= LEASE_DURATION + 3 * RETRY_PERIOD + 1.5
        eventually(
            lambda: (kube.get(NODESETS, "pool").get("status") or {}).get("readyReplicas") == 20,
            timeout=60,
            what="20 ready Nodes",
        )
        nodes = kube.list(NODES, labelSelector="kube-node.io/nodeset=pool")["items"]
        machines = cloud.machines()
        assert len(nodes) == 20
        assert len(machines) == 20, sorted(m.name for m in machines)
        per_node = Counter(m.node_name for m in machines)
        assert set(per_node) == {n["metadata"]["name"] for n in nodes}
        assert max(per_node.values()) == 1
        assert {n["metadata"]["annotations"][ANNOTATION_MACHINE_ID] for n in nodes} == {m.id for m in machines}
    finally:
        cloud.close()

    assert standby.terminate() == 0, standby.log()[-3000:]
    spec = kube.get(LEASES, lease, "kube-system")["spec"]
    assert not spec.get("holderIdentity"), spec


def test_every_replica_answers_reads_but_only_the_leaders_provider_accepts_writes(
    kube: KubeClient, pair: list[KubeNodeProcess]
) -> None:
    for process in pair:
        eventually(process.ready, timeout=30, what=f"{process.name} ready")
    leader = eventually(lambda: next((p for p in pair if p.leading()), None), timeout=10, what="a leader")
    standby = next(p for p in pair if p is not leader)
    kube.create(NODECLASSES, simulator_nodeclass())
    kube.create(NODESETS, nodeset_manifest("ca", 0, autoscaling={"mode": "ClusterAutoscaler", "maxReplicas": 5}))

    with grpc.insecure_channel(standby.flag("grpc-address")) as channel:
        stub = pb_grpc.CloudProviderStub(channel)
        # The standby's caches are warm: it knows the new NodeSet ...
        eventually(
            lambda: [g.id for g in stub.NodeGroups(pb.NodeGroupsRequest()).nodeGroups] == ["ca"],
            what="the standby to list the node group",
        )
        # ... but it changes nothing.
        with pytest.raises(grpc.RpcError) as refused:
            stub.NodeGroupIncreaseSize(pb.NodeGroupIncreaseSizeRequest(id="ca", delta=1))
        assert refused.value.code() is grpc.StatusCode.UNAVAILABLE
        assert "not the leader" in (refused.value.details() or "")
    assert kube.get(NODESETS, "ca")["spec"]["replicas"] == 0

    with grpc.insecure_channel(leader.flag("grpc-address")) as channel:
        stub = pb_grpc.CloudProviderStub(channel)
        eventually(
            lambda: [g.id for g in stub.NodeGroups(pb.NodeGroupsRequest()).nodeGroups] == ["ca"],
            what="the leader to list the node group",
        )
        stub.NodeGroupIncreaseSize(pb.NodeGroupIncreaseSizeRequest(id="ca", delta=1))
    assert kube.get(NODESETS, "ca")["spec"]["replicas"] == 1


def test_a_leader_that_fails_to_start_acting_gives_up_instead_of_holding_the_lease_idle(kube: KubeClient) -> None:
    lease = f"broken-{uuid.uuid4().hex[:8]}"
    stopped: list[bool] = []

    def cannot_start() -> None:
        raise RuntimeError("the controllers could not start")

    elector = LeaderElector(
        kube,
        _settings(lease, "broken"),
        on_started_leading=cannot_start,
        on_stopped_leading=lambda: stopped.append(True),
    )
    elector.start()
    try:
        eventually(lambda: stopped, what="the stop callback")
        assert elector.state is LeaderState.STOPPED
        assert not elector.is_leader()
        eventually(lambda: not elector.alive(), what="the campaign to end")
    finally:
        elector.release()


def test_a_leader_whose_lease_was_taken_exits_at_once_with_status_1(
    control_plane: ControlPlane, kube: KubeClient, tmp_path: Path, lease: str
) -> None:
    process = KubeNodeProcess(
        control_plane,
        tmp_path,
        "kube-node",
        f"--simulator-dir={tmp_path / 'simulator'}",
        "--grpc-address=",
        f"--leader-election-lease-name={lease}",
        f"--leader-election-lease-duration={LEASE_DURATION}",
        f"--leader-election-renew-deadline={RENEW_DEADLINE}",
        f"--leader-election-retry-period={RETRY_PERIOD}",
    )
    try:
        eventually(process.leading, timeout=30, what="leadership")
        # Another candidate holds the Lease now (as after a partition longer than the lease duration).
        taken = kube.get(LEASES, lease, "kube-system")
        taken["spec"] |= {"holderIdentity": "thief", "renewTime": taken["spec"]["renewTime"]}
        kube.replace(LEASES, lease, taken, "kube-system")
        assert process.process.wait(timeout=RENEW_DEADLINE) == 1, process.log()[-2000:]
        assert "lost the leader Lease" in process.log()
        assert kube.get(LEASES, lease, "kube-system")["spec"]["holderIdentity"] == "thief"  # not released
    finally:
        process.close()
