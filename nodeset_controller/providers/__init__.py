"""Machine providers: the interface, the libcloud adapter and the simulator."""

from ._libcloud import LibcloudProvider, classify_error
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
from ._registry import ProviderRegistry
from ._simkubelet import LEASE_NAMESPACE, SimulatedKubelets, node_lease, ready_status
from ._simulator import SimulatorCloud, SimulatorProvider, SimulatorSettings
from ._userdata import UserDataError, render_user_data

__all__ = [
    "LEASE_NAMESPACE",
    "TAG_CLUSTER",
    "TAG_NODE",
    "TAG_NODECLASS",
    "ErrorClass",
    "LibcloudProvider",
    "Machine",
    "MachineProvider",
    "MachineSpec",
    "MachineState",
    "ProviderError",
    "ProviderRegistry",
    "QuotaExceededError",
    "SimulatedKubelets",
    "SimulatorCloud",
    "SimulatorProvider",
    "SimulatorSettings",
    "UserDataError",
    "classify_error",
    "machine_name",
    "node_lease",
    "ready_status",
    "render_user_data",
]
