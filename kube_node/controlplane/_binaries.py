"""Finding (and, from a source checkout, building) the real control-plane binaries."""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

#: hack/build-tools.sh, when kube-node runs from its source checkout.
BUILD_SCRIPT = Path(__file__).resolve().parents[2] / "hack" / "build-tools.sh"

_REQUIRED = ("etcd", "kube-apiserver", "kube-scheduler", "kube-controller-manager", "kubectl", "helm")


class BinariesNotFoundError(RuntimeError):
    """The control-plane binaries are not installed and cannot be built here."""


@dataclass(frozen=True)
class Binaries:
    """Paths to the control-plane binaries, all of one pinned version."""

    etcd: Path
    kube_apiserver: Path
    kube_scheduler: Path
    kube_controller_manager: Path
    kubectl: Path
    helm: Path
    cluster_autoscaler: Path | None = None
    kubelet: Path | None = None  #: built with ``with_kubelet`` (hack/build-tools.sh --with-kubelet)

    @property
    def path_dirs(self) -> list[str]:
        """The directories holding these binaries, for a PATH that prefers them over the system's."""
        dirs: list[str] = []
        for path in (self.kubectl, self.helm, self.etcd, self.kube_apiserver, self.cluster_autoscaler):
            if path is not None and str(path.parent) not in dirs:
                dirs.append(str(path.parent))
        return dirs


def find_binaries(*, build: bool = True, with_autoscaler: bool = False, with_kubelet: bool = False) -> Binaries:
    """Return the pinned binaries.

    ``KUBE_NODE_BIN_PATH`` (a PATH-style list of directories) wins when set. Otherwise, from a source
    checkout, ``hack/build-tools.sh`` reports the cache directories, building what is missing first
    (minutes, once) when ``build`` is true.
    """
    explicit = os.environ.get("KUBE_NODE_BIN_PATH")
    if explicit:
        dirs = [Path(d) for d in explicit.split(os.pathsep) if d]
    elif BUILD_SCRIPT.exists() and build:
        dirs = _run_build_script(with_autoscaler, with_kubelet)
    else:
        raise BinariesNotFoundError(
            "control-plane binaries not found: set KUBE_NODE_BIN_PATH to the directories holding etcd, "
            f"kube-apiserver, kubectl and helm, or run from a kube-node source checkout ({BUILD_SCRIPT})"
        )
    found: dict[str, Path] = {}
    for name in (*_REQUIRED, "cluster-autoscaler", "kubelet"):
        for directory in dirs:
            candidate = directory / name
            if candidate.is_file() and os.access(candidate, os.X_OK):
                found[name] = candidate
                break
    missing = [name for name in _REQUIRED if name not in found]
    if missing:
        raise BinariesNotFoundError(f"missing {', '.join(missing)} in {', '.join(map(str, dirs))}")
    return Binaries(
        etcd=found["etcd"],
        kube_apiserver=found["kube-apiserver"],
        kube_scheduler=found["kube-scheduler"],
        kube_controller_manager=found["kube-controller-manager"],
        kubectl=found["kubectl"],
        helm=found["helm"],
        cluster_autoscaler=found.get("cluster-autoscaler"),
        kubelet=found.get("kubelet"),
    )


def _run_build_script(with_autoscaler: bool, with_kubelet: bool) -> list[Path]:
    bash = shutil.which("bash") or "/bin/bash"
    args = [bash, str(BUILD_SCRIPT)] + (["--with-autoscaler"] if with_autoscaler else [])
    args += ["--with-kubelet"] if with_kubelet else []
    # Progress goes to our stderr as it happens; the directories come back on stdout.
    result = subprocess.run(args, stdout=subprocess.PIPE, text=True, check=False)
    if result.returncode != 0:
        raise BinariesNotFoundError(f"{BUILD_SCRIPT} failed with exit code {result.returncode}; see its output")
    return [Path(line[4:]) for line in result.stdout.splitlines() if line.startswith("bin:")]
