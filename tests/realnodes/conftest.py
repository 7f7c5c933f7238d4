"""The real-node test bed: real kubelets on this host (kube-node's ``local`` provider), and a host left as found.

The tests here need root, containerd, runc, the CNI plugins and the kubelet binary. The runtime is installed
from the distribution when missing (apt-get, as root), the kubelet built by hack/build-tools.sh
--with-kubelet. They are skipped, with the reason, only when this process is not root or those cannot be
had; in CI (``CI`` set) that is a failure instead.

A kubelet changes its host: sysctls, iptables chains, cgroups, mounts, network links, a few directories.
:class:`HostSnapshot` records those before the first real-node test and puts back what the session changed.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from kube_node.controlplane import ControlPlane, find_binaries
from nodeset_controller.controllers import (
    Manager,
    ManagerSettings,
    NodeControllerSettings,
    NodeSetControllerSettings,
)
from nodeset_controller.kube import KubeClient, Resource
from nodeset_controller.providers import HostError, LocalMachines, install_runtime
from nodeset_controller.providers import _local_host as host
from tests.chart._helm import Helm

#: What a kubelet rewrites (protectKernelDefaults off).
SYSCTLS = ("vm.overcommit_memory", "vm.panic_on_oom", "kernel.panic", "kernel.panic_on_oops")
#: Directories a kubelet or containerd makes outside its own.
HOST_DIRS = ("/var/lib/kubelet", "/var/log/containers", "/run/containerd", "/run/netns")
_TABLES = ("filter", "nat", "mangle")
CLUSTER_ROLE_BINDINGS = Resource("rbac.authorization.k8s.io", "v1", "clusterrolebindings")


def _sysctl_path(name: str) -> Path:
    return Path("/proc/sys", *name.split("."))


def _chains(command: str, table: str) -> list[str]:
    result = subprocess.run([command, "-t", table, "-S"], capture_output=True, text=True, check=False)
    return result.stdout.splitlines() if result.returncode == 0 else []


def _links() -> set[str]:
    return set(os.listdir("/sys/class/net"))


def _blackholes() -> set[str]:
    out = subprocess.run(
        ["ip", "route", "show", "type", "blackhole"], capture_output=True, text=True, check=False
    ).stdout
    return {line.split()[1] for line in out.splitlines() if line.startswith("blackhole")}


def _top_cgroups() -> dict[Path, set[str]]:
    return {h: {p.name for p in h.iterdir() if p.is_dir()} for h in host.cgroup_hierarchies()}


@dataclass
class HostSnapshot:
    """What a kubelet may change on the host, as it was."""

    sysctls: dict[str, str]
    chains: dict[tuple[str, str], set[str]]
    cgroups: dict[Path, set[str]]
    links: set[str]
    blackholes: set[str]
    dirs: dict[str, bool]
    restored: list[str] = field(default_factory=list)  #: what restore() put back, for people

    @classmethod
    def take(cls) -> HostSnapshot:
        return cls(
            sysctls={k: _sysctl_path(k).read_text().strip() for k in SYSCTLS if _sysctl_path(k).exists()},
            chains={
                (command, table): {line.split()[1] for line in _chains(command, table) if line.startswith("-N ")}
                for command in ("iptables", "ip6tables")
                for table in _TABLES
            },
            cgroups=_top_cgroups(),
            links=_links(),
            blackholes=_blackholes(),
            dirs={d: os.path.lexists(d) for d in HOST_DIRS},
        )

    def restore(self, machine_roots: list[Path]) -> list[str]:
        """Put back everything that changed since the snapshot; returns what it did."""
        done = self.restored
        # every process and cgroup of a machine (a test that failed before destroying its machines)
        for hierarchy, before in self.cgroups.items():
            if not hierarchy.is_dir():
                continue
            for name in sorted({p.name for p in hierarchy.iterdir() if p.is_dir()} - before):
                if name.startswith(("kube-node-", "kubepods")):
                    with contextlib.suppress(HostError, OSError):
                        host.kill_cgroup(name)
                        host.remove_cgroup(name)
                        done.append(f"cgroup /{name}")
        for root in machine_roots:
            with contextlib.suppress(HostError):
                if host.mounts_under(root):
                    host.unmount_all(root)
                    done.append(f"mounts under {root}")
        for name, value in self.sysctls.items():
            path = _sysctl_path(name)
            if path.read_text().strip() != value:
                path.write_text(value)
                done.append(f"sysctl {name}={value}")
        for (command, table), before in self.chains.items():
            rules = _chains(command, table)
            new = {line.split()[1] for line in rules if line.startswith("-N ")} - before
            if not new:
                continue
            for rule in rules:  # jumps into a new chain from an old one
                words = rule.split()
                if words[0] == "-A" and words[1] not in new and any(w in new for w in words[2:]):
                    subprocess.run([command, "-t", table, "-D", *words[1:]], capture_output=True, check=False)
            for chain in sorted(new):
                subprocess.run([command, "-t", table, "-F", chain], capture_output=True, check=False)
            for chain in sorted(new):
                subprocess.run([command, "-t", table, "-X", chain], capture_output=True, check=False)
            done.append(f"{command} -t {table}: chains {', '.join(sorted(new))} removed")
        for link in sorted(_links() - self.links):
            if link.startswith("kn") or link.startswith("veth"):
                host.delete_link(link)
                done.append(f"link {link}")
        for cidr in sorted(_blackholes() - self.blackholes):
            subprocess.run(["ip", "route", "del", "blackhole", cidr], capture_output=True, check=False)
            done.append(f"blackhole route {cidr}")
        for directory, existed in self.dirs.items():
            if not existed and os.path.lexists(directory):
                with contextlib.suppress(HostError):
                    host.unmount_all(Path(directory))
                shutil.rmtree(directory, ignore_errors=True)
                done.append(f"directory {directory}")
        return done


@dataclass(frozen=True)
class RealHost:
    """A host that runs local machines: where they live, the kubelet, and the snapshot to restore."""

    root: Path
    kubelet: Path
    snapshot: HostSnapshot


def _unavailable(reason: str) -> None:
    if os.environ.get("CI"):  # in CI the host must run real nodes: their absence is a failure, not a skip
        pytest.fail(reason)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def real_host() -> Iterator[RealHost]:
    """Root, the runtime installed, the kubelet built, and a snapshot of the host restored at the end."""
    if not host.is_root():
        _unavailable("real nodes need root (cgroups, mounts, network links)")
    try:
        installed = install_runtime()
    except HostError as error:
        _unavailable(f"real nodes need containerd, runc and the CNI plugins: {error}")
    else:
        if installed:
            print(f"installed {', '.join(installed)}")
    kubelet = find_binaries(with_kubelet=True).kubelet
    if kubelet is None:
        _unavailable("hack/build-tools.sh --with-kubelet built no kubelet")
    assert kubelet is not None
    snapshot = HostSnapshot.take()
    root = Path(tempfile.mkdtemp(prefix="kn-", dir="/tmp"))  # short: unix socket paths live below it
    try:
        yield RealHost(root, kubelet, snapshot)
    finally:
        restored = snapshot.restore([root])
        shutil.rmtree(root, ignore_errors=True)
        print(f"host restored: {'; '.join(restored) or 'nothing to do'}")


@pytest.fixture
def bootstrap_bindings(kube: KubeClient, control_plane: ControlPlane, tmp_path: Path) -> Iterator[None]:
    """The chart's ClusterRoleBindings for kube-node's bootstrap tokens (send and have approved the kubelet's
    client CSR), as installed by the chart."""
    helm = Helm(find_binaries(), control_plane, tmp_path / "helm")
    bindings = [
        doc for doc in helm.template("--show-only", "templates/bootstrap.yaml") if doc["kind"] == "ClusterRoleBinding"
    ]
    assert bindings, "the chart installs no bootstrap ClusterRoleBindings"
    for binding in bindings:
        kube.create(CLUSTER_ROLE_BINDINGS, binding)
    try:
        yield
    finally:
        for binding in bindings:
            kube.delete(CLUSTER_ROLE_BINDINGS, binding["metadata"]["name"])


@pytest.fixture
def local_manager(kube: KubeClient, real_host: RealHost, bootstrap_bindings: None) -> Iterator[Manager]:
    """kube-node's controllers, in this process, with local machines (real kubelets) in a directory of the
    session's; every machine left is destroyed afterwards."""
    directory = Path(tempfile.mkdtemp(prefix="t", dir=real_host.root))
    settings = ManagerSettings(
        node_controller=NodeControllerSettings(boot_poll=0.2, orphan_grace=600, sweep_interval=1.0),
        nodeset_controller=NodeSetControllerSettings(replacement_backoff=1.0, failed_instance_ttl=2.0),
        local_machines_dir=directory,
        local_kubelet=real_host.kubelet,
    )
    running = Manager(kube, settings)
    running.start()
    try:
        yield running
    finally:
        running.stop()
        machines = LocalMachines(directory)
        for machine in machines.machines():
            machines.destroy(machine.name)
