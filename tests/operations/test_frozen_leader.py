"""A frozen leader (SIGSTOP) stops acting before its Lease can expire: its standby takes over, and when the old
leader wakes up, with creates in flight, nothing it sends lands: no API write (the API server's audit log,
by user agent) and no new cloud call (the simulator's call log, by pid). It exits with status 1."""

from __future__ import annotations

import signal
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kube_node import __version__
from kube_node.controlplane import Binaries, ControlPlane
from nodeset_controller.api import ANNOTATION_MACHINE_ID, parse_time
from nodeset_controller.kube import LEASES, NODECLASSES, NODES, NODESETS, KubeClient, install_crds
from nodeset_controller.providers import SimulatorCloud
from tests.conftest import eventually, nodeset_manifest, simulator_nodeclass

from ._process import KubeNodeProcess

LEASE_DURATION = 4.0
RENEW_DEADLINE = 3.0
RETRY_PERIOD = 0.5
LEASE = "kube-node-frozen"
#: Slow creates, so that the leader freezes with several in flight: each wakes up to write its machine down.
CREATE_DELAY = 2.0


@pytest.fixture
def audited(binaries: Binaries, tmp_path: Path) -> Iterator[ControlPlane]:
    """A control plane of its own whose API server keeps an audit log of every change."""
    plane = ControlPlane(tmp_path / "controlplane", binaries=binaries, audit=True)
    plane.start()
    try:
        install_crds(KubeClient.from_kubeconfig(plane.kubeconfig))
        yield plane
    finally:
        plane.stop()


def _changes_by(plane: ControlPlane, identity: str) -> list[dict[str, Any]]:
    """The audit log's changes sent by the kube-node process with this leader-election identity."""
    agent = f"kube-node/{__version__} ({identity})"
    return [e for e in plane.audit_events() if e.get("userAgent") == agent]


def _received(event: dict[str, Any]) -> float:
    received = parse_time(event["requestReceivedTimestamp"])
    assert received is not None
    return received


def _landed(event: dict[str, Any]) -> bool:
    return int(event.get("responseStatus", {}).get("code", 0)) < 300


def _is_lease(event: dict[str, Any]) -> bool:
    return (event.get("objectRef") or {}).get("resource") == "leases"


def test_a_frozen_leader_is_replaced_and_nothing_it_sends_after_waking_lands(
    audited: ControlPlane, tmp_path: Path
) -> None:
    kube = KubeClient.from_kubeconfig(audited.kubeconfig)
    flags = (
        f"--simulator-dir={tmp_path / 'simulator'}",
        "--grpc-address=",
        f"--leader-election-lease-name={LEASE}",
        f"--leader-election-lease-duration={LEASE_DURATION}",
        f"--leader-election-renew-deadline={RENEW_DEADLINE}",
        f"--leader-election-retry-period={RETRY_PERIOD}",
    )
    pair = [KubeNodeProcess(audited, tmp_path, name, *flags) for name in ("a", "b")]
    cloud = SimulatorCloud(tmp_path / "simulator")
    try:
        for process in pair:
            eventually(process.ready, timeout=30, what=f"{process.name} ready")
        old = eventually(lambda: next((p for p in pair if p.leading()), None), timeout=10, what="a leader")
        new = next(p for p in pair if p is not old)
        old_identity = kube.get(LEASES, LEASE, "kube-system")["spec"]["holderIdentity"]

        kube.create(NODECLASSES, simulator_nodeclass(createDelaySeconds=str(CREATE_DELAY), bootDelaySeconds=1))
        kube.create(NODESETS, nodeset_manifest("pool", 8))

        def creates_in_flight() -> set[str]:
            started = {c.machine for c in cloud.calls() if c.operation == "create" and c.pid == old.process.pid}
            return started - {m.name for m in cloud.machines()}

        eventually(lambda: len(creates_in_flight()) >= 3, timeout=30, what="creates in flight")
        old.process.send_signal(signal.SIGSTOP)
        frozen_at = time.time()
        in_flight = creates_in_flight()

        # The standby takes over once the Lease has gone unrenewed for its duration ...
        eventually(new.leading, timeout=LEASE_DURATION + 5, what="the standby to take over")
        new_identity = kube.get(LEASES, LEASE, "kube-system")["spec"]["holderIdentity"]
        assert new_identity != old_identity
        # ... and acts: it finishes the frozen leader's scale-up, and a further one.
        kube.patch(NODESETS, "pool", {"spec": {"replicas": 12}})
        eventually(
            lambda: (kube.get(NODESETS, "pool").get("status") or {}).get("readyReplicas") == 12,
            timeout=60,
            what="12 ready Nodes",
        )
        acted = [e for e in _changes_by(audited, new_identity) if _landed(e) and not _is_lease(e)]
        assert acted, "the new leader wrote nothing"
        new_acted_at = min(_received(e) for e in acted)
        assert new_acted_at > frozen_at + LEASE_DURATION - 1.0, (new_acted_at - frozen_at, "the leaders overlapped")

        # The old leader wakes up with its creates done (their delay passed while it was frozen): each would
        # write its machine down next. It must send none of that, notice the loss and exit 1.
        old.process.send_signal(signal.SIGCONT)
        resumed_at = time.time()
        assert old.process.wait(timeout=RENEW_DEADLINE + 5) == 1, old.log()[-3000:]
        time.sleep(1.0)  # anything it sent on its way out has reached the API server and its audit log
        log = old.log()
        assert "lost the leader Lease" in log, log[-3000:]

        sent = _changes_by(audited, old_identity)
        assert any(_landed(e) and not _is_lease(e) and _received(e) < frozen_at for e in sent), "it never acted"
        # Nothing it sent landed after it froze (so nothing after the new leader acted), but for at most one
        # request that had passed its last fence check, between the check and the socket, when the process
        # froze (a window no client can close: see docs/operate.md). That one reaches the API server as the
        # process wakes; a change carrying a resourceVersion is refused there as a conflict, an Event lands.
        late = [e for e in sent if _landed(e) and _received(e) > frozen_at + 1.0]
        assert len(late) <= 1 and all(_received(e) - resumed_at < 0.5 for e in late), (
            f"frozen at {frozen_at:.3f}, resumed at {resumed_at:.3f}",
            [(e["verb"], e["requestURI"], _received(e), parse_time(e["stageTimestamp"])) for e in late],
        )
        # ... and after it woke up it sent nothing else: leader election's own requests (a renewal, at most,
        # which the new holder's resourceVersion refuses) and that one request, if any.
        after = [e for e in sent if _received(e) >= resumed_at]
        print("sent after waking:", [(e["verb"], e["requestURI"], _landed(e)) for e in after])
        assert [e for e in after if _landed(e)] == late, [(e["verb"], e["requestURI"]) for e in after]
        assert len([e for e in after if not _is_lease(e)]) <= 1, [(e["verb"], e["requestURI"]) for e in after]
        # The fence refused what it tried: the in-flight creates' records, at least.
        assert "not the leader now: refusing" in log, (in_flight, log[-3000:])

        # No cloud call of the old leader started after it woke up, and no Node got two machines.
        woke = [c for c in cloud.calls() if c.pid == old.process.pid and c.at >= resumed_at]
        assert woke == [], woke

        # The one request that may land as it wakes can be a Node create: the new leader then removes the
        # extra Node (and its machine) like any excess.
        def nodes_and_machines() -> tuple[list[dict[str, Any]], list[Any]] | None:
            nodes = kube.list(NODES, labelSelector="kube-node.io/nodeset=pool")["items"]
            machines = cloud.machines()
            return (nodes, machines) if len(nodes) == 12 and len(machines) == 12 else None

        nodes, machines = eventually(nodes_and_machines, timeout=60, what="12 Nodes and 12 machines")
        per_node = Counter(m.node_name for m in machines)
        assert set(per_node) == {n["metadata"]["name"] for n in nodes}, sorted(per_node)
        assert max(per_node.values()) == 1, per_node
        assert {n["metadata"]["annotations"][ANNOTATION_MACHINE_ID] for n in nodes} == {m.id for m in machines}
        # The identity is in the user agent only: the field manager is "kube-node" whichever process wrote.
        assert {f["manager"] for n in nodes for f in n["metadata"]["managedFields"]} == {"kube-node"}
        assert new.process.poll() is None, new.log()[-3000:]
    finally:
        cloud.close()
        for process in pair:
            if process.process.poll() is None:
                process.process.send_signal(signal.SIGCONT)
            process.close()
