"""Machine providers: the interface, the libcloud adapter, the simulator, local kubelets and an in-memory provider."""

from ._images import BUSYBOX_IMAGE, PAUSE_IMAGE, build_images
from ._local import LocalMachines, LocalProvider, LocalSettings
from ._local_host import HostError, install_runtime, is_root
from ._machine import (
    TAG_CLUSTER,
    TAG_NODE,
    TAG_NODECLASS,
    ErrorClass,
    Machine,
    MachineProvider,
    MachineSpec,
    MachineState,
    ProviderError,
    QuotaExceededError,
    machine_name,
)
from ._memory import MemoryCloud, MemoryProvider
from ._registry import ProviderRegistry
from ._simkubelet import LEASE_NAMESPACE, SimulatedKubelets, node_lease, ready_status
from ._simulator import SimulatorCloud, SimulatorProvider, SimulatorSettings
from ._userdata import JOIN_VARIABLES, UserDataError, render_user_data, user_data_variables
from .libcloud import LibcloudProvider, classify_error

__all__ = [
    "BUSYBOX_IMAGE",
    "JOIN_VARIABLES",
    "LEASE_NAMESPACE",
    "PAUSE_IMAGE",
    "TAG_CLUSTER",
    "TAG_NODE",
    "TAG_NODECLASS",
    "ErrorClass",
    "HostError",
    "LibcloudProvider",
    "LocalMachines",
    "LocalProvider",
    "LocalSettings",
    "Machine",
    "MachineProvider",
    "MachineSpec",
    "MachineState",
    "MemoryCloud",
    "MemoryProvider",
    "ProviderError",
    "ProviderRegistry",
    "QuotaExceededError",
    "SimulatedKubelets",
    "SimulatorCloud",
    "SimulatorProvider",
    "SimulatorSettings",
    "UserDataError",
    "build_images",
    "classify_error",
    "install_runtime",
    "is_root",
    "machine_name",
    "node_lease",
    "ready_status",
    "render_user_data",
    "user_data_variables",
]
