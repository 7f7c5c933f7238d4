"""A real local Kubernetes control plane, for tests and for ``kube-node dev up``."""

from ._binaries import Binaries, BinariesNotFoundError, find_binaries
from ._controlplane import ADMIN_USER, ControlPlane
from ._processes import ControlPlaneError, pid_alive

__all__ = [
    "ADMIN_USER",
    "Binaries",
    "BinariesNotFoundError",
    "ControlPlane",
    "ControlPlaneError",
    "find_binaries",
    "pid_alive",
]
