"""The controllers: NodeController (machines behind Nodes), and the Manager that runs them."""

from ._manager import Manager, ManagerSettings
from ._node_controller import FAILPOINT_ENV, NodeController, NodeControllerSettings, Phase

__all__ = ["FAILPOINT_ENV", "Manager", "ManagerSettings", "NodeController", "NodeControllerSettings", "Phase"]
