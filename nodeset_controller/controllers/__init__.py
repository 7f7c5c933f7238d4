"""The controllers: NodeController (machines behind Nodes), and the Manager that runs them."""

from ._manager import Manager, ManagerSettings
from ._node_controller import FAILPOINT_ENV, NodeController, NodeControllerSettings, Phase
from ._nodeset_controller import NodeSetController, NodeSetControllerSettings
from ._removal import request_removal, requested_nodes
from ._scale_down import choose_victims, is_failed, is_ready

__all__ = [
    "FAILPOINT_ENV",
    "Manager",
    "ManagerSettings",
    "NodeController",
    "NodeControllerSettings",
    "NodeSetController",
    "NodeSetControllerSettings",
    "Phase",
    "choose_victims",
    "is_failed",
    "is_ready",
    "request_removal",
    "requested_nodes",
]
