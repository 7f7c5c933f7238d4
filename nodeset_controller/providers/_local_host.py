"""The host side of the ``local`` provider: its packages, cgroups, mounts, bridges and routes.

Everything here acts on this machine only. The containment rule is that no packet to a pod or Service address
ever leaves it: each machine's CNI bridge carries its subnet's gateway address (the bridge plugin's
``isGateway``), and blackhole routes cover the whole pod and Service ranges, so an address not on a local bridge
is dropped instead of following the default route.
"""

from __future__ import annotations

import contextlib
import errno
import ipaddress
import logging
import os
import shlex
import shutil
import signal
import subprocess
import time
from collections.abc import Iterable
from pathlib import Path

log = logging.getLogger(__name__)

#: The Debian packages a local machine needs: its container runtime, CNI plugins, what the kubelet calls, and
#: the static busybox the images are made of.
RUNTIME_PACKAGES = ("containerd", "runc", "containernetworking-plugins", "iptables", "conntrack", "busybox-static")
#: Where Debian's containernetworking-plugins puts the plugins.
CNI_BIN_DIR = Path("/usr/lib/cni")
_COMMANDS = {
    "containerd": "containerd",
    "ctr": "containerd",
    "runc": "runc",
    "iptables": "iptables",
    "conntrack": "conntrack",
    "busybox": "busybox-static",
}
_CNI_PLUGINS = ("bridge", "host-local", "loopback")
CGROUP_ROOT = Path("/sys/fs/cgroup")


class HostError(RuntimeError):
    """This machine cannot run local machines (not root, packages missing and not installable)."""


def is_root() -> bool:
    """Whether this process runs as root (local machines need it: cgroups, mounts, network)."""
    return os.geteuid() == 0


def missing_packages() -> list[str]:
    """The runtime packages whose commands or plugins are not installed, in install order."""
    missing = {package for command, package in _COMMANDS.items() if shutil.which(command) is None}
    if not all((CNI_BIN_DIR / plugin).exists() for plugin in _CNI_PLUGINS):
        missing.add("containernetworking-plugins")
    return [package for package in RUNTIME_PACKAGES if package in missing]


def install_runtime() -> list[str]:
    """Install the missing runtime packages from the distribution (apt-get), and return what was installed.
    Raises HostError when some are missing and this process is not root or has no apt-get."""
    missing = missing_packages()
    if not missing:
        return []
    if not is_root():
        raise HostError(
            f"local machines need {', '.join(missing)}, which only root may install: run as root, or install "
            f"them yourself (apt-get install {' '.join(missing)})"
        )
    if shutil.which("apt-get") is None:
        raise HostError(f"local machines need {', '.join(missing)}, and this machine has no apt-get to install them")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    log.info("installing %s with apt-get", ", ".join(missing))
    for command in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "--no-install-recommends"]):
        args = command + (missing if command[1] == "install" else [])
        result = subprocess.run(args, env=env, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise HostError(f"{' '.join(args)} failed ({result.returncode}): {result.stderr.strip()[-2000:]}")
    still = missing_packages()
    if still:
        raise HostError(f"apt-get installed {', '.join(missing)}, yet {', '.join(still)} still missing")
    return missing


# -- routes --------------------------------------------------------------------------------------------


def ensure_blackholes(ranges: Iterable[str]) -> list[str]:
    """Make sure each range has a blackhole route (more specific routes, the bridges', still win); returns
    the ranges it added."""
    added: list[str] = []
    for cidr in ranges:
        network = str(ipaddress.ip_network(cidr, strict=True))
        shown = _ip("route", "show", "type", "blackhole", network).strip()
        if not shown:
            _ip("route", "replace", "blackhole", network, check=True)
            added.append(network)
    return added


def routed_subnets(pod_range: str) -> set[str]:
    """The subnets inside ``pod_range`` that some link already routes (another machine's bridge, anyone's)."""
    pods = ipaddress.ip_network(pod_range)
    routed: set[str] = set()
    for line in _ip("-o", "route", "show").splitlines():
        words = line.split()
        if not words or words[0] in ("blackhole", "unreachable", "prohibit"):
            continue
        try:
            network = ipaddress.ip_network(words[0], strict=False)
        except ValueError:
            continue
        if network.version == pods.version and network.subnet_of(pods) and network != pods:  # type: ignore[arg-type]
            routed.add(str(network))
    return routed


def delete_tagged_nat_rules(tag: str) -> int:
    """Delete the nat table's rules whose comment is ``tag`` (what a machine's user-data added, tagged with its
    id); returns how many."""
    if shutil.which("iptables-save") is None:
        return 0
    saved = subprocess.run(["iptables-save", "-t", "nat"], capture_output=True, text=True, check=False).stdout
    deleted = 0
    for line in saved.splitlines():
        if not line.startswith("-A "):
            continue
        args = shlex.split(line)
        if tag not in (args[i + 1] for i, arg in enumerate(args[:-1]) if arg == "--comment"):
            continue
        args[0] = "-D"
        result = subprocess.run(["iptables", "-t", "nat", *args], capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise HostError(f"iptables -t nat {' '.join(args)}: {result.stderr.strip()}")
        deleted += 1
    return deleted


def link_exists(name: str) -> bool:
    """Whether a network link of that name exists."""
    return Path("/sys/class/net", name).exists()


def delete_link(name: str) -> None:
    """Delete a link (a machine's CNI bridge); missing is fine."""
    if link_exists(name):
        _ip("link", "delete", name)


def _ip(*args: str, check: bool = False) -> str:
    result = subprocess.run(["ip", *args], capture_output=True, text=True, check=False)
    if check and result.returncode != 0:
        raise HostError(f"ip {' '.join(args)} failed: {result.stderr.strip()}")
    return result.stdout


# -- cgroups -------------------------------------------------------------------------------------------


def cgroup_hierarchies() -> list[Path]:
    """The mounted cgroup hierarchies: every v1 controller (and named hierarchy), or the one v2 hierarchy."""
    if (CGROUP_ROOT / "cgroup.controllers").exists():
        return [CGROUP_ROOT]
    if not CGROUP_ROOT.is_dir():
        return []
    return sorted(p for p in CGROUP_ROOT.iterdir() if p.is_dir() and not p.is_symlink() and p.name != "unified")


def create_cgroup(name: str) -> list[Path]:
    """Create the cgroup ``/<name>`` (parents first) in every hierarchy (a kubelet's cgroupRoot must exist in
    each; a v1 cpuset needs its cpus and mems before a task may join), and return its directories."""
    made: list[Path] = []
    for hierarchy in cgroup_hierarchies():
        path = hierarchy
        for part in Path(name).parts:
            path = path / part
            path.mkdir(exist_ok=True)
            if hierarchy.name == "cpuset":
                for key in ("cpuset.cpus", "cpuset.mems"):
                    if not (path / key).read_text().strip():
                        (path / key).write_text((path.parent / key).read_text().strip())
        made.append(path)
    return made


def cgroup_pids(name: str) -> set[int]:
    """Every process in the cgroup ``/<name>`` or below it, in any hierarchy."""
    pids: set[int] = set()
    for hierarchy in cgroup_hierarchies():
        top = hierarchy / name
        if not top.is_dir():
            continue
        for directory, _, _ in os.walk(top):
            try:
                text = (Path(directory) / "cgroup.procs").read_text()
            except OSError:
                continue
            pids.update(int(pid) for pid in text.split())
    return pids


def kill_cgroup(name: str, timeout: float = 10.0) -> None:
    """SIGKILL every process in the cgroup ``/<name>`` and below until none is left (forks race the kill)."""
    deadline = time.monotonic() + timeout
    while pids := cgroup_pids(name):
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        if time.monotonic() > deadline:
            raise HostError(f"processes {sorted(pids)} of cgroup /{name} survive SIGKILL")
        time.sleep(0.05)


def remove_cgroup(name: str) -> None:
    """Remove the cgroup ``/<name>`` and everything below it, deepest first, in every hierarchy."""
    for hierarchy in cgroup_hierarchies():
        top = hierarchy / name
        if not top.is_dir():
            continue
        for directory, _, _ in sorted(os.walk(top), key=lambda entry: -len(entry[0])):
            for _ in range(50):  # a cgroup whose last task just died may be busy for a moment
                try:
                    os.rmdir(directory)
                    break
                except FileNotFoundError:
                    break
                except OSError as error:
                    if error.errno != errno.EBUSY:
                        raise
                    time.sleep(0.05)


# -- mounts --------------------------------------------------------------------------------------------


def mounts_under(directory: Path) -> list[str]:
    """The mount points at or below ``directory``, deepest first."""
    prefix = str(directory.resolve())
    points: list[str] = []
    with open("/proc/self/mountinfo") as mountinfo:
        for line in mountinfo:
            point = line.split()[4].replace("\\040", " ")
            if point == prefix or point.startswith(prefix + "/"):
                points.append(point)
    return sorted(set(points), key=lambda p: (-p.count("/"), p))


def unmount_all(directory: Path) -> None:
    """Lazily unmount everything at or below ``directory`` (pod volumes, overlay rootfs, network namespaces,
    the kubelet's bind mount of its root dir), deepest first, until nothing is left."""
    for _ in range(5):
        points = mounts_under(directory)
        if not points:
            return
        for point in points:
            subprocess.run(["umount", "-l", point], capture_output=True, check=False)
    left = mounts_under(directory)
    if left:
        raise HostError(f"mounts under {directory} survive unmounting: {', '.join(left[:5])}")
