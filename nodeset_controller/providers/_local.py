"""The ``local`` provider: machines that are real kubelets on this host, for development and tests.

A :class:`LocalMachines` keeps its machines in a state directory (``--local-machines-dir``), one directory per
machine (``m<hash of its name>``) holding ``machine.json`` (what it was made from, what it was given), the
rendered user-data, its log, and everything the machine itself writes. Creating a machine does what a cloud
does at boot: it runs the NodeClass's rendered user-data as a shell script, as root, in the machine's
directory, in a session and process group of its own, and in a cgroup of its own (``/kube-node-<id>``, which
is also the kubelet's ``cgroupRoot``, so every process the machine starts, pods included, stays in it). The
script is told where its things are by its environment:

=================================  ================================================================
MACHINE_NAME                       the machine's name
MACHINE_DIR                        its directory (everything it writes goes below it)
MACHINE_CONTAINERD_SOCKET          the socket its own containerd serves (one containerd per machine:
                                   kubelets sharing one kill each other's pods as orphans)
MACHINE_KUBELET                    the kubelet binary (``--local-kubelet``, else ``kubelet`` on PATH)
MACHINE_KUBELET_ROOT_DIR           the kubelet's ``--root-dir``
MACHINE_KUBELET_CERT_DIR           the kubelet's ``--cert-dir`` (it defaults to /var/lib/kubelet/pki)
MACHINE_KUBELET_PORT               the kubelet's port (on 127.0.0.1)
MACHINE_KUBELET_HEALTHZ_PORT       its healthz port (on 127.0.0.1)
MACHINE_CGROUP_ROOT                the kubelet's ``cgroupRoot``
MACHINE_POD_CIDR                   the machine's pod subnet (a /24 of the pod range)
MACHINE_CNI_BRIDGE                 the name of its CNI bridge
MACHINE_CNI_BIN_DIR                where the CNI plugins are
MACHINE_IMAGES_DIR                 docker-archives to import: the sandbox and busybox images
MACHINE_SANDBOX_IMAGE              the sandbox ("pause") image's name
=================================  ================================================================

Ports, subnet and bridge are allocated per machine (never one another machine has, nor a subnet something on
the host already routes) and persisted in ``machine.json``, so machines survive a restart of kube-node: they
are processes of their own, and ``list`` and ``get`` read the directory. Destroying a machine kills its process
group and then every process left in its cgroup, unmounts whatever is mounted below its directory, deletes its
bridge and cgroup and removes the directory.

Nothing a machine does may send a packet off this host: blackhole routes for the whole pod range and Service
range (``driverOptions.serviceClusterIPRange``) are put in place before any machine starts (see
:mod:`._local_host`), and the user-data gives its bridge the gateway address.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import ipaddress
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ..api import NodeClass
from . import _local_host as host
from ._images import PAUSE_IMAGE, build_images
from ._machine import ErrorClass, Machine, MachineSpec, MachineState, ProviderError

log = logging.getLogger(__name__)

#: The pod range machines' subnets come from (one /24 each), unless driverOptions.podRange says otherwise.
DEFAULT_POD_RANGE = "10.244.0.0/16"
#: The Service range to keep on the host, unless driverOptions.serviceClusterIPRange says otherwise: the local
#: control plane's (kube_node.controlplane).
DEFAULT_SERVICE_RANGE = "10.0.0.0/24"
#: How long a machine may take to start its user-data before it counts as failed.
_START_TIMEOUT = 10.0
#: The longest unix socket path a kubelet below the machine's directory opens, past the directory itself.
_LONGEST_SOCKET = "/kubelet/root/plugins_registry/kubelet.sock"
_MAX_SOCKET_PATH = 107


@dataclass(frozen=True)
class LocalMachine:
    """One machine's record (``machine.json``)."""

    name: str
    id: str  #: "local-<hash>"; the directory is m<hash>
    cluster: str
    nodeclass: str
    node_name: str
    created_at: float
    subnet: str
    kubelet_port: int
    healthz_port: int
    directory: str

    @property
    def key(self) -> str:
        """The hash naming its directory, cgroup and bridge."""
        return self.id.removeprefix("local-")

    @property
    def cgroup(self) -> str:
        """Its cgroup, and the kubelet's cgroupRoot (without the leading slash)."""
        return f"kube-node-{self.key}"

    @property
    def bridge(self) -> str:
        """Its CNI bridge (at most 15 characters)."""
        return f"kn{self.key}"


@dataclass(frozen=True)
class LocalSettings:
    """The local provider's behaviour for one NodeClass (from its driverOptions)."""

    pod_range: str = DEFAULT_POD_RANGE
    service_range: str = DEFAULT_SERVICE_RANGE

    @classmethod
    def from_nodeclass(cls, nodeclass: NodeClass) -> LocalSettings:
        """Read the settings; a malformed range is an InvalidConfiguration error naming the option."""
        options = nodeclass.spec.driver_options
        values: dict[str, str] = {}
        for key, field, default in (
            ("podRange", "pod_range", DEFAULT_POD_RANGE),
            ("serviceClusterIPRange", "service_range", DEFAULT_SERVICE_RANGE),
        ):
            value = str(options.get(key, default))
            try:
                network = ipaddress.ip_network(value, strict=True)
            except ValueError:
                raise ProviderError(
                    f"NodeClass {nodeclass.metadata.name}: driverOptions.{key} must be an IPv4 network "
                    f"such as {default}, got {value!r}",
                    error_class=ErrorClass.INVALID_CONFIGURATION,
                    code="INVALID_DRIVER_OPTION",
                ) from None
            if network.version != 4 or (key == "podRange" and network.prefixlen > 23):
                raise ProviderError(
                    f"NodeClass {nodeclass.metadata.name}: driverOptions.{key} must be an IPv4 network"
                    + (" of at least two /24s" if key == "podRange" else ""),
                    error_class=ErrorClass.INVALID_CONFIGURATION,
                    code="INVALID_DRIVER_OPTION",
                )
            values[field] = str(network)
        return cls(**values)


class LocalMachines:
    """The machines in one state directory; safe to share between threads and processes (a file lock)."""

    def __init__(self, directory: Path, *, kubelet: Path | None = None) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.directory = directory.resolve()
        longest = len(str(self.directory / "m0123456789") + _LONGEST_SOCKET)
        if longest > _MAX_SOCKET_PATH:
            raise ValueError(
                f"local machines directory {self.directory} is too long: a kubelet below it would open a unix "
                f"socket path of {longest} characters (at most {_MAX_SOCKET_PATH}); choose a shorter one"
            )
        self._kubelet = kubelet
        self._lock = threading.Lock()

    @property
    def images_dir(self) -> Path:
        """The docker-archives every machine imports (built on the first create)."""
        return self.directory / "images"

    def kubelet(self) -> Path:
        """The kubelet binary machines run. Raises ProviderError if there is none."""
        found = self._kubelet or (Path(p) if (p := shutil.which("kubelet")) else None)
        if found is None or not os.access(found, os.X_OK):
            raise ProviderError(
                "local machines: no kubelet binary (give --local-kubelet, put one on PATH, or build it with "
                "hack/build-tools.sh --with-kubelet)",
                error_class=ErrorClass.INVALID_CONFIGURATION,
                code="NO_KUBELET",
            )
        return found

    def check_host(self) -> None:
        """Raise ProviderError unless this process may run local machines (root, and the runtime installed)."""
        if not host.is_root():
            raise ProviderError(
                "local machines need root (cgroups, mounts, network links)",
                error_class=ErrorClass.INVALID_CONFIGURATION,
                code="NOT_ROOT",
            )
        missing = host.missing_packages()
        if missing:
            raise ProviderError(
                f"local machines need {', '.join(missing)} installed (apt-get install {' '.join(missing)})",
                error_class=ErrorClass.INVALID_CONFIGURATION,
                code="RUNTIME_MISSING",
            )

    # -- records -----------------------------------------------------------------------------------------

    def _dir(self, name: str) -> Path:
        return self.directory / f"m{_key(name)}"

    def get(self, name: str) -> LocalMachine | None:
        """The machine called ``name``, or None."""
        return _read(self._dir(name) / "machine.json")

    def machines(self) -> list[LocalMachine]:
        """Every machine in the directory."""
        found = (_read(path / "machine.json") for path in sorted(self.directory.glob("m*")))
        return [machine for machine in found if machine is not None]

    def state(self, machine: LocalMachine) -> tuple[MachineState, str | None]:
        """Running while any of its processes lives; Pending until its user-data started; Failed after."""
        directory = Path(machine.directory)
        if host.cgroup_pids(machine.cgroup) or _group_alive(directory / "pgid"):
            return MachineState.RUNNING, None
        if not (directory / "pgid").exists() and time.time() - machine.created_at < _START_TIMEOUT:
            return MachineState.PENDING, None
        return MachineState.FAILED, f"every process of the machine has exited (its log: {directory}/user-data.log)"

    # -- create and destroy --------------------------------------------------------------------------------

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        with self._lock, open(self.directory / ".lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def create(self, spec: MachineSpec, settings: LocalSettings) -> LocalMachine:
        """Make the machine and start its user-data, or return it if it exists (idempotent by name)."""
        self.check_host()
        kubelet = self.kubelet()
        with self._locked():
            existing = self.get(spec.name)
            if existing is not None:
                return existing
            directory = self._dir(spec.name)
            if directory.exists():  # a create that crashed before its record: start over
                self._clean(directory, f"kube-node-{_key(spec.name)}", f"kn{_key(spec.name)}")
            others = self.machines()
            machine = LocalMachine(
                name=spec.name,
                id=f"local-{_key(spec.name)}",
                cluster=spec.cluster,
                nodeclass=spec.nodeclass,
                node_name=spec.node_name,
                created_at=time.time(),
                subnet=_free_subnet(settings.pod_range, {m.subnet for m in others}),
                kubelet_port=_free_port({p for m in others for p in (m.kubelet_port, m.healthz_port)}),
                healthz_port=0,
                directory=str(directory),
            )
            used = {p for m in others for p in (m.kubelet_port, m.healthz_port)} | {machine.kubelet_port}
            machine = _replace(machine, healthz_port=_free_port(used))
            host.ensure_blackholes([settings.pod_range, settings.service_range])
            build_images(self.images_dir)
            directory.mkdir(mode=0o700)
            user_data = directory / "user-data"
            user_data.write_text(spec.user_data)  # holds the machine's bootstrap token: 0600, never logged
            user_data.chmod(0o600)
            (directory / "machine.json").write_text(json.dumps(asdict(machine), indent=2))
            host.create_cgroup(f"{machine.cgroup}/machine")
            self._launch(machine, kubelet, settings)
        log.info("local machine %s started for Node %s in %s", spec.name, spec.node_name, directory)
        return machine

    def _launch(self, machine: LocalMachine, kubelet: Path, settings: LocalSettings) -> None:
        directory = Path(machine.directory)
        # Its own processes (containerd, shims, the kubelet) in a leaf below the kubelet's cgroupRoot, where the
        # kubelet puts the pods: one tree to sweep on destroy. Not in the memory hierarchy: they stay accounted
        # where kube-node is.
        procs = [
            str(h / machine.cgroup / "machine" / "cgroup.procs")
            for h in host.cgroup_hierarchies()
            if h.name != "memory"
        ]
        launcher = directory / "launch.sh"
        launcher.write_text(
            "#!/bin/bash\n"
            "# Written by kube-node: the machine's boot. Joins its cgroup, then runs its user-data.\n"
            + "".join(f"echo $$ > {p}\n" for p in procs)
            + 'echo $$ > "$MACHINE_DIR/pgid"\n'
            + 'exec bash "$MACHINE_DIR/user-data" >> "$MACHINE_DIR/user-data.log" 2>&1 < /dev/null\n'
        )
        env = {
            "PATH": os.pathsep.join(
                [str(kubelet.parent), "/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"]
            ),
            "HOME": str(directory),
            "LANG": "C.UTF-8",
            "MACHINE_NAME": machine.name,
            "MACHINE_ID": machine.id,
            # the `kubernetes` Service's address (the range's first), which pods are told the API server is at
            "MACHINE_KUBERNETES_SERVICE_IP": str(next(ipaddress.ip_network(settings.service_range).hosts())),
            "MACHINE_SERVICE_RANGE": settings.service_range,
            "MACHINE_DIR": str(directory),
            "MACHINE_CONTAINERD_SOCKET": str(directory / "containerd.sock"),
            "MACHINE_KUBELET": str(kubelet),
            "MACHINE_KUBELET_ROOT_DIR": str(directory / "kubelet" / "root"),
            "MACHINE_KUBELET_CERT_DIR": str(directory / "kubelet" / "pki"),
            "MACHINE_KUBELET_PORT": str(machine.kubelet_port),
            "MACHINE_KUBELET_HEALTHZ_PORT": str(machine.healthz_port),
            "MACHINE_CGROUP_ROOT": f"/{machine.cgroup}",
            "MACHINE_POD_CIDR": machine.subnet,
            "MACHINE_CNI_BRIDGE": machine.bridge,
            "MACHINE_CNI_BIN_DIR": str(host.CNI_BIN_DIR),
            "MACHINE_IMAGES_DIR": str(self.images_dir),
            "MACHINE_SANDBOX_IMAGE": PAUSE_IMAGE,
        }
        # setsid -f: a session and process group of its own, whose leader is not our child (nothing to reap,
        # and it outlives this process).
        subprocess.run(
            ["setsid", "-f", "bash", str(launcher)],
            env=env,
            cwd=directory,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            check=True,
        )

    def destroy(self, name: str) -> None:
        """Stop the machine's processes, unmount and remove its directory; a missing machine is fine."""
        with self._locked():
            directory = self._dir(name)
            if not directory.exists():
                return
            self._clean(directory, f"kube-node-{_key(name)}", f"kn{_key(name)}")
        log.info("local machine %s destroyed", name)

    def _clean(self, directory: Path, cgroup: str, bridge: str) -> None:
        try:
            pgid = int((directory / "pgid").read_text())
        except (OSError, ValueError):
            pgid = 0
        if pgid > 1:
            _kill_group(pgid)
        try:
            host.kill_cgroup(cgroup)
            host.delete_tagged_nat_rules(f"kube-node:local-{directory.name.removeprefix('m')}")
            host.unmount_all(directory)
            host.remove_cgroup(cgroup)
            host.delete_link(bridge)
            shutil.rmtree(directory)
        except (host.HostError, OSError) as error:
            raise ProviderError(
                f"destroying local machine {directory.name}: {error}", error_class=ErrorClass.TRANSIENT
            ) from None


class LocalProvider:
    """The MachineProvider for one local NodeClass."""

    def __init__(self, machines: LocalMachines, nodeclass: NodeClass, cluster: str) -> None:
        self._machines = machines
        self._nodeclass = nodeclass.metadata.name
        self._cluster = cluster
        self._settings = LocalSettings.from_nodeclass(nodeclass)

    def create(self, spec: MachineSpec) -> Machine:
        """Create (or return) the machine."""
        return self._seen(self._machines.create(spec, self._settings))

    def get(self, name: str) -> Machine | None:
        """The machine, or None."""
        machine = self._machines.get(name)
        return None if machine is None else self._seen(machine)

    def list(self) -> list[Machine]:
        """This cluster's machines of this NodeClass."""
        return [
            self._seen(m)
            for m in self._machines.machines()
            if m.cluster == self._cluster and m.nodeclass == self._nodeclass
        ]

    def destroy(self, name: str, machine_id: str | None = None) -> None:
        """Destroy the machine (missing is fine); with ``machine_id``, only if it has that id."""
        if machine_id is not None:
            machine = self._machines.get(name)
            if machine is None or machine.id != machine_id:
                return  # creates are idempotent by name: there is never a duplicate
        self._machines.destroy(name)

    def validate(self) -> str:
        """Whether this host can run local machines: root, the runtime, a kubelet."""
        self._machines.check_host()
        kubelet = self._machines.kubelet()
        return f"local kubelets ({kubelet}) in {self._machines.directory}, pods in {self._settings.pod_range}"

    def _seen(self, machine: LocalMachine) -> Machine:
        state, error = self._machines.state(machine)
        return Machine(
            name=machine.name,
            id=machine.id,
            state=state,
            node_name=machine.node_name,
            nodeclass=machine.nodeclass,
            cluster=machine.cluster,
            created_at=machine.created_at,
            error=error,
            extra={"directory": machine.directory, "subnet": machine.subnet},
        )


def _key(name: str) -> str:
    return hashlib.sha256(name.encode()).hexdigest()[:10]


def _read(path: Path) -> LocalMachine | None:
    try:
        data: dict[str, Any] = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return LocalMachine(**data)


def _replace(machine: LocalMachine, **changes: Any) -> LocalMachine:
    return LocalMachine(**{**asdict(machine), **changes})


def _free_subnet(pod_range: str, used: set[str]) -> str:
    taken = used | host.routed_subnets(pod_range)
    for subnet in list(ipaddress.ip_network(pod_range).subnets(new_prefix=24))[1:]:
        if str(subnet) not in taken:
            return str(subnet)
    raise ProviderError(
        f"local machines: no free /24 left in the pod range {pod_range}",
        error_class=ErrorClass.OUT_OF_RESOURCES,
        code="QUOTA_EXCEEDED",
    )


def _free_port(used: set[int]) -> int:
    while True:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port: int = probe.getsockname()[1]
        if port not in used:
            return port


def _group_alive(pgid_file: Path) -> bool:
    try:
        pgid = int(pgid_file.read_text())
    except (OSError, ValueError):
        return False
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _kill_group(pgid: int, grace: float = 5.0) -> None:
    """SIGTERM the process group, then SIGKILL whatever is left after ``grace`` seconds."""
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 2.0)):
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            try:
                os.killpg(pgid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.05)
