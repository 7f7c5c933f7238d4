"""Real kubelets when things go wrong, and growing from pending pods: a token that expired before its machine
booted, a kubelet killed by hand, and a KubeNode-mode NodeSet grown from 0 by a real pending pod."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Any

import pytest

from nodeset_controller.api import ANNOTATION_DRAIN_STARTED, LABEL_NODESET
from nodeset_controller.controllers import Manager
from nodeset_controller.kube import NODECLASSES, NODES, NODESETS, KubeClient
from nodeset_controller.kube._events import CORE_EVENTS
from nodeset_controller.providers import LocalMachines
from tests.conftest import eventually, nodeset_manifest

from .test_local_nodeset import PODS, busybox_pod, local_nodeclass, ready

pytestmark = [pytest.mark.controlplane, pytest.mark.realnodes]


def members(kube: KubeClient, nodeset: str) -> list[dict[str, Any]]:
    return list(kube.list(NODES, labelSelector=f"{LABEL_NODESET}={nodeset}")["items"])


def events(kube: KubeClient, reason: str) -> list[dict[str, Any]]:
    return [e for e in kube.list(CORE_EVENTS)["items"] if e.get("reason") == reason]


def machines_of(manager: Manager) -> LocalMachines:
    assert manager.settings.local_machines_dir is not None
    return LocalMachines(manager.settings.local_machines_dir)


def test_a_token_that_expired_before_the_machine_booted_never_joins_and_the_failure_is_reported(
    kube: KubeClient, namespace: str, local_manager: Manager
) -> None:
    nodeclass = local_nodeclass()
    shebang, rest = nodeclass["spec"]["userData"].split("\n", 1)
    # The machine boots slowly: its kubelet starts after its token (valid for the registration timeout) expired.
    nodeclass["spec"]["userData"] = f"{shebang}\nsleep 12\n{rest}"
    kube.create(NODECLASSES, nodeclass)
    kube.create(
        NODESETS,
        nodeset_manifest(
            "late",
            1,
            "local",
            replacement={"registrationTimeoutSeconds": 5},
            # No replacement, so that the machine lives on to try its expired token (and it is reported).
            healthCheck={"maxUnhealthy": 0},
        ),
    )
    (first,) = eventually(lambda: members(kube, "late"), what="the Node")
    name = first["metadata"]["name"]
    machines = machines_of(local_manager)
    machine = eventually(lambda: next((m for m in machines.machines() if m.node_name == name), None), what="machine")
    log = Path(machine.directory) / "logs" / "kubelet.log"

    def refused() -> bool:
        try:
            text = log.read_text(errors="replace")
        except OSError:
            return False
        return "Unauthorized" in text or "401" in text

    eventually(refused, timeout=60, what="the kubelet's bootstrap refused (its token expired)")
    assert not ready(kube.get(NODES, name)), "a kubelet with an expired token joined"

    # kube-node reports it on the NodeSet: the Node did not become Ready within the registration timeout, and
    # it would replace it but for the cap.
    def held() -> dict[str, Any] | None:
        conditions = {c["type"]: c for c in (kube.get(NODESETS, "late").get("status") or {}).get("conditions") or []}
        remediation = conditions.get("RemediationAllowed")
        return conditions if remediation and remediation["status"] == "False" else None

    conditions = eventually(held, timeout=30, what="the NodeSet saying it holds back the failed Node's replacement")
    assert conditions["RemediationAllowed"]["reason"] == "TooManyUnhealthy", conditions
    assert eventually(lambda: events(kube, "RemediationHeld"), what="the NodeSet's RemediationHeld Event")
    assert [m.node_name for m in machines.machines()] == [name], "nothing was replaced past the cap"


def test_a_kubelet_killed_by_hand_is_remediated_by_the_health_check_and_the_healthy_node_is_left_alone(
    kube: KubeClient, namespace: str, local_manager: Manager
) -> None:
    kube.create(NODECLASSES, local_nodeclass())
    kube.create(
        NODESETS,
        nodeset_manifest(
            "killed",
            2,
            "local",
            healthCheck={
                "maxUnhealthy": 1,
                "unhealthyConditions": [{"type": "Ready", "status": "Unknown", "timeoutSeconds": 5}],
            },
        ),
    )
    nodes = eventually(
        lambda: len(m := members(kube, "killed")) == 2 and all(ready(n) for n in m) and m,
        timeout=90,
        what="two real Nodes Ready",
    )
    victim, healthy = nodes[0], nodes[1]
    machines = machines_of(local_manager)
    machine = next(m for m in machines.machines() if m.node_name == victim["metadata"]["name"])
    kubelets = [
        int(p.name)
        for p in Path("/proc").iterdir()
        if p.name.isdigit()
        and _cmdline(p).startswith(str(local_manager.settings.local_kubelet))
        and machine.directory in _cmdline(p)
    ]
    assert kubelets, "the victim's kubelet process"
    for pid in kubelets:
        os.kill(pid, signal.SIGKILL)  # its containerd and the machine's other processes live on
    # The node lifecycle controller marks it Unknown (about 40-50 s), the health check's 5 s pass, and
    # kube-node replaces it: cordoned and drained first, since its machine still exists.
    eventually(
        lambda: any(
            c["type"] == "Ready" and c["status"] == "Unknown"
            for c in (kube.get(NODES, victim["metadata"]["name"])["status"].get("conditions") or [])
        ),
        timeout=120,
        what="the killed kubelet's Node Unknown",
    )

    def remediated() -> bool:
        names = {n["metadata"]["name"] for n in members(kube, "killed")}
        return victim["metadata"]["name"] not in names and len(names) == 2

    eventually(remediated, timeout=120, what="the killed kubelet's Node replaced")
    now = kube.get(NODES, healthy["metadata"]["name"])
    assert now["metadata"]["uid"] == healthy["metadata"]["uid"]
    assert not now["spec"].get("unschedulable"), "the healthy Node was cordoned"
    assert ANNOTATION_DRAIN_STARTED not in (now["metadata"].get("annotations") or {})
    reasons = [e for e in kube.list(CORE_EVENTS)["items"] if victim["metadata"]["name"] in e.get("message", "")]
    assert any("Unknown" in e.get("message", "") or e.get("reason") == "Unhealthy" for e in reasons), [
        (e["reason"], e["message"]) for e in reasons
    ]


def _cmdline(process: Path) -> str:
    try:
        return (process / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def test_a_pending_real_pod_grows_a_kube_node_mode_nodeset_from_zero_and_runs_on_the_new_real_node(
    kube: KubeClient, namespace: str, local_manager: Manager
) -> None:
    kube.create(NODECLASSES, local_nodeclass())
    kube.create(
        NODESETS,
        nodeset_manifest("grow", 0, "local", minReplicas=0, maxReplicas=2, autoscaling={"mode": "KubeNode"}),
    )
    started = time.monotonic()
    pod = busybox_pod("waits", "unused")
    del pod["spec"]["nodeSelector"]
    pod["spec"]["nodeSelector"] = {"example.com/pool": "local"}  # only the local class's Nodes have it
    pod["spec"]["containers"][0]["resources"] = {"requests": {"cpu": "500m", "memory": "64Mi"}}
    kube.create(PODS, pod, namespace)
    running = eventually(
        lambda: (p := kube.get(PODS, "waits", namespace))["status"].get("phase") == "Running" and p,
        timeout=150,
        what="the pending pod Running on a new real Node",
    )
    print(f"pending pod -> Running on a new real Node in {time.monotonic() - started:.1f} s")
    (node,) = members(kube, "grow")
    assert running["spec"]["nodeName"] == node["metadata"]["name"]
    assert kube.get(NODESETS, "grow")["spec"]["replicas"] == 1
