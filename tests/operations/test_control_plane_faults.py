"""Control-plane faults: kube-apiserver and etcd restarted mid scale-up, a watch that silently stops, 410 Gone,
429 throttling. kube-node notices within its client timeouts, lists again where it must, converges, and
loses no write.

Each test runs its own control plane (it is restarted, or started with flags of its own) and kube-node's
controllers in this process, as a user outside system:masters (so the API server's limits apply to it, as
to a service account), through a loopback proxy that can go silent or cut connections. The test itself
talks to the API server directly, as an administrator.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import REGISTRY

from kube_node.controlplane import Binaries, ControlPlane
from nodeset_controller.api import ANNOTATION_MACHINE_ID, LABEL_NODESET
from nodeset_controller.controllers import (
    Manager,
    ManagerSettings,
    NodeControllerSettings,
    NodeSetControllerSettings,
)
from nodeset_controller.kube import NODECLASSES, NODES, NODESETS, KubeClient, Resource, install_crds
from nodeset_controller.providers import SimulatorCloud
from tests._proxy import FaultyProxy
from tests.conftest import eventually, nodeset_manifest, simulator_nodeclass
from tests.nodesets.test_nodeset_controller import ready

pytestmark = [pytest.mark.controlplane, pytest.mark.slow]

CLUSTER_ROLE_BINDINGS = Resource("rbac.authorization.k8s.io", "v1", "clusterrolebindings")
CONFIGMAPS = Resource("", "v1", "configmaps", namespaced=True)
KUBE_NODE_USER = "kube-node-under-test"
#: Machines take a second to create and boot, so a scale-up has Node and machine writes in flight for seconds.
SIM_OPTIONS = {"bootDelaySeconds": "0.5", "createDelaySeconds": "0.5"}


@dataclass
class Rig:
    """A control plane of this test's own, a proxy in front of it, and kube-node behind the proxy."""

    plane: ControlPlane
    proxy: FaultyProxy
    admin: KubeClient  #: straight to the API server, in system:masters
    manager: Manager  #: kube-node, through the proxy, as KUBE_NODE_USER

    @property
    def simulator(self) -> SimulatorCloud:
        assert self.manager.simulator is not None
        return self.manager.simulator

    def scale(self, name: str, replicas: int) -> None:
        """What ``kubectl scale nodeset/<name> --replicas=<n>`` does, written straight to the API server."""
        self.admin.patch(NODESETS, name, {"spec": {"replicas": replicas}}, subresource="scale")

    def members(self, name: str) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = self.admin.list(NODES, labelSelector=f"{LABEL_NODESET}={name}")["items"]
        return [n for n in items if not n["metadata"].get("deletionTimestamp")]

    def converged(self, name: str, replicas: int) -> dict[str, Any] | None:
        """The NodeSet once it is exactly as asked: ``replicas`` in its spec, that many member Nodes, all Ready,
        one machine per Node and no other, each machine recorded on its Node, and a status that says so."""
        nodeset = self.admin.get(NODESETS, name)
        if nodeset["spec"]["replicas"] != replicas:
            return None
        nodes = {n["metadata"]["name"]: n for n in self.members(name)}
        if len(nodes) != replicas or not all(ready(n) for n in nodes.values()):
            return None
        machines = self.simulator.machines()
        if sorted(m.node_name for m in machines) != sorted(nodes):
            return None
        if any(
            nodes[m.node_name]["metadata"].get("annotations", {}).get(ANNOTATION_MACHINE_ID) != m.id for m in machines
        ):
            return None
        status = nodeset.get("status", {})
        if (status.get("replicas"), status.get("readyReplicas")) != (replicas, replicas):
            return None
        if status.get("observedGeneration") != nodeset["metadata"]["generation"]:
            return None
        return nodeset

    def converge(self, name: str, replicas: int, timeout: float = 45.0) -> float:
        """Wait until ``converged``; returns the seconds it took, or fails saying what is off."""
        started = time.monotonic()
        try:
            eventually(lambda: self.converged(name, replicas), timeout=timeout, what=f"{replicas} Ready Nodes")
        except AssertionError as error:
            raise AssertionError(f"{error}\n{self.describe(name)}") from None
        return time.monotonic() - started

    def describe(self, name: str) -> str:
        """What the NodeSet, its Nodes and the machines look like now."""
        nodeset = self.admin.get(NODESETS, name)
        lines = [f"spec.replicas {nodeset['spec']['replicas']}, status {nodeset.get('status', {}).get('replicas')}"]
        lines += [
            f"  Node {n['metadata']['name']}: ready {ready(n)}, "
            f"machine {n['metadata'].get('annotations', {}).get(ANNOTATION_MACHINE_ID)}"
            for n in self.members(name)
        ]
        lines += [f"  machine {m.id} for {m.node_name}" for m in self.simulator.machines()]
        pending = self.manager.nodeset_controller.expectations.pending_creations(name)
        lines.append(f"  pending creations {sorted(pending)}; creates logged {list(self.simulator.create_log)}")
        return "\n".join(lines)

    def machines_created(self) -> int:
        """Creates that made a machine, as the cloud's audit log shows them."""
        return sum(1 for _, _, error in self.simulator.create_log if not error)

    def start_nodeset(self, name: str, replicas: int) -> None:
        self.admin.create(NODECLASSES, simulator_nodeclass(**SIM_OPTIONS))
        self.admin.create(NODESETS, nodeset_manifest(name, replicas))


@contextmanager
def rig(
    binaries: Binaries,
    tmp_path: Path,
    *,
    apiserver_flags: tuple[str, ...] = (),
    watch_idle_timeout: float = 30.0,
    request_timeout: float = 30.0,
) -> Iterator[Rig]:
    """Start a control plane, a proxy in front of it and kube-node through the proxy; stop them all after."""
    plane = ControlPlane(tmp_path / "controlplane", binaries=binaries, apiserver_flags=apiserver_flags)
    plane.start()
    manager: Manager | None = None
    proxy = FaultyProxy(plane.port)
    try:
        admin = KubeClient.from_kubeconfig(plane.kubeconfig)
        install_crds(admin)
        admin.create(
            CLUSTER_ROLE_BINDINGS,
            {
                "metadata": {"name": KUBE_NODE_USER},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin"},
                "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": KUBE_NODE_USER}],
            },
        )
        kubeconfig = plane.kubeconfig_dict(KUBE_NODE_USER, plane.issue_client_certificate(KUBE_NODE_USER))
        kubeconfig["clusters"][0]["cluster"]["server"] = proxy.url  # the certificate is valid for 127.0.0.1
        path = tmp_path / "kube-node.kubeconfig"
        path.write_text(yaml.safe_dump(kubeconfig))
        client = KubeClient.from_kubeconfig(path)
        client.request_timeout = request_timeout
        eventually(lambda: _allowed(client), what="kube-node's ClusterRoleBinding to take effect")
        settings = ManagerSettings(
            node_controller=NodeControllerSettings(boot_poll=0.2, orphan_grace=600, sweep_interval=1.0),
            nodeset_controller=NodeSetControllerSettings(replacement_backoff=1.0, failed_instance_ttl=2.0),
            simulator_dir=tmp_path / "simulator",
            kubelet_lease_interval=5.0,
            watch_idle_timeout=watch_idle_timeout,
        )
        manager = Manager(client, settings)
        manager.start()
        yield Rig(plane, proxy, admin, manager)
    finally:
        if manager is not None:
            manager.stop()
        proxy.close()
        plane.stop()


def _allowed(client: KubeClient) -> bool:
    try:
        client.list(NODESETS)
    except Exception:
        return False
    return True


def counter(name: str, **labels: str) -> float:
    """A process-wide counter of kube-node's (0 before its first increment)."""
    return REGISTRY.get_sample_value(f"{name}_total", labels) or 0.0


def mid_scale_up(rig: Rig, name: str, at_least: int, target: int) -> str:
    """Wait until a scale-up to ``target`` is under way: ``at_least`` Nodes exist, not all of them Ready.
    Returns how far it got, to print."""

    def progress() -> str | None:
        nodes = rig.members(name)
        count, up = len(nodes), sum(ready(n) for n in nodes)
        return f"{count} of {target} Nodes made, {up} Ready" if count >= at_least and up < target else None

    result: str = eventually(progress, interval=0.02, what=f"a scale-up to {target} under way")
    return result


def test_kube_apiserver_killed_mid_scale_up_converges_without_a_lost_write_or_an_extra_machine(
    binaries: Binaries, tmp_path: Path
) -> None:
    with rig(binaries, tmp_path) as r:
        r.start_nodeset("web", 0)
        r.scale("web", 8)
        progress = mid_scale_up(r, "web", 1, 8)
        outage = r.plane.restart_apiserver(kill=True, downtime=1.0)
        r.scale("web", 10)  # written while kube-node is still reconnecting
        took = r.converge("web", 10)
        print(f"kube-apiserver killed at {progress}, down {outage:.1f} s; converged {took:.1f} s after it was back")
        assert r.machines_created() == 10  # no machine was made twice, or made and thrown away
        assert all(informer.running for informer in r.manager.informers)


def test_etcd_killed_mid_scale_up_converges_without_a_lost_write_or_an_extra_machine(
    binaries: Binaries, tmp_path: Path
) -> None:
    with rig(binaries, tmp_path) as r:
        r.start_nodeset("web", 0)
        r.scale("web", 8)
        progress = mid_scale_up(r, "web", 1, 8)
        outage = r.plane.restart_etcd(kill=True, downtime=4.0)
        r.scale("web", 10)
        took = r.converge("web", 10)
        print(f"etcd killed at {progress}, down {outage:.1f} s; converged {took:.1f} s after the API server was back")
        assert r.machines_created() == 10
        assert all(informer.running for informer in r.manager.informers)


IDLE = 6.0  #: the watch idle timeout in the silent-watch test (30 s by default)
REQUEST_TIMEOUT = 8.0  #: and the request timeout (30 s by default)


def test_a_watch_that_goes_silent_is_noticed_within_its_idle_timeout_and_a_change_made_meanwhile_is_acted_on(
    binaries: Binaries, tmp_path: Path
) -> None:
    with rig(binaries, tmp_path, watch_idle_timeout=IDLE, request_timeout=REQUEST_TIMEOUT) as r:
        r.start_nodeset("web", 0)
        r.scale("web", 4)
        progress = mid_scale_up(r, "web", 2, 4)
        silent_before = r.manager.nodesets.silent_watches
        r.proxy.pause()
        paused = time.monotonic()
        r.scale("web", 7)  # kubectl scale, on the real API server: kube-node hears nothing of it
        time.sleep(IDLE + 2)  # longer than a watch may be silent
        # The path heals, but the connections that went silent never speak again (a NAT that forgot them):
        # only a timeout gets kube-node off them.
        r.proxy.resume(revive=False)
        resumed = time.monotonic()
        took = r.converge("web", 7)
        print(
            f"silent at {progress} for {resumed - paused:.1f} s (watch idle timeout {IDLE:g} s, request timeout "
            f"{REQUEST_TIMEOUT:g} s); converged {took:.1f} s after"
        )
        assert r.manager.nodesets.silent_watches > silent_before
        # Noticed within the client's timeouts: the watches' and a request's on a silent connection, not later.
        assert resumed - paused + took < REQUEST_TIMEOUT + IDLE + 10
        assert r.machines_created() == 7


def test_a_watch_resumed_after_its_history_was_compacted_gets_410_and_the_cache_lists_again(
    binaries: Binaries, tmp_path: Path
) -> None:
    # Watches served by etcd, not the API server's watch cache, so a compaction is what makes them expire.
    with rig(binaries, tmp_path, apiserver_flags=("--watch-cache=false",)) as r:
        r.start_nodeset("web", 3)
        r.converge("web", 3)
        relists = {i.name: i.relists for i in r.manager.informers}
        r.proxy.pause()
        r.scale("web", 5)
        r.admin.create(CONFIGMAPS, {"metadata": {"name": "later"}}, "default")  # history after the scale, too
        revision = r.plane.compact_etcd()
        r.proxy.cut()  # every watch ends; each resumes from a resourceVersion older than the compaction
        r.proxy.resume()
        took = r.converge("web", 5)
        print(f"compacted at {revision}; converged {took:.1f} s after the watches were cut")
        assert r.manager.nodesets.relists > relists["nodesets"]
        assert r.manager.nodes.relists > relists["nodes"]
        assert r.machines_created() == 5


def test_429s_from_a_tiny_in_flight_limit_are_retried_after_retry_after_and_the_scale_up_converges(
    binaries: Binaries, tmp_path: Path
) -> None:
    # The classic max-in-flight filter answers 429 with Retry-After: 1 the moment its limit is reached; users
    # in system:masters (the test's admin) are exempt, kube-node's user is not.
    flags = ("--enable-priority-and-fairness=false", "--max-requests-inflight=2", "--max-mutating-requests-inflight=1")
    with rig(binaries, tmp_path, apiserver_flags=flags) as r:
        throttled_before = counter("kube_node_api_retries", reason="throttled")
        errors_before = sum(counter("kube_node_reconcile", controller=c, result="error") for c in _CONTROLLERS)
        r.start_nodeset("web", 0)
        r.scale("web", 10)
        mid_scale_up(r, "web", 2, 10)
        r.scale("web", 12)  # written while kube-node is being throttled
        took = r.converge("web", 12, timeout=90)
        throttled = counter("kube_node_api_retries", reason="throttled") - throttled_before
        errors = sum(counter("kube_node_reconcile", controller=c, result="error") for c in _CONTROLLERS)
        errors -= errors_before
        print(f"{throttled:.0f} requests retried after a 429; converged in {took:.1f} s; {errors:.0f} reconcile errors")
        assert throttled > 0
        assert r.machines_created() == 12
        assert all(informer.running for informer in r.manager.informers)
        assert all(t.is_alive() for t in threading.enumerate() if t.name.startswith("informer-"))


_CONTROLLERS = ("node-controller", "nodeset-controller")
