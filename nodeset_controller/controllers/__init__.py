"""The controllers: NodeController (machines behind Nodes), NodeSetController, NodeClassController (in-use
protection and status of NodeClasses), the pending-pod autoscaler, and the Manager that runs them."""

from ._manager import Manager, ManagerSettings
from ._node_controller import NodeController, NodeControllerSettings, Phase
from ._nodeclass_controller import NodeClassController, NodeClassControllerSettings
from ._nodeset_controller import NodeSetController, NodeSetControllerSettings
from ._pending_pods import PendingPodAutoscaler, PendingPodAutoscalerSettings
from ._removal import RemovalConflictError, RemovalOfGoneNodesError, request_removal
from ._scale_down import Failure, choose_victims, failure_of, is_failed, is_ready, machine_gone, remediation_budget

__all__ = [
    "Failure",
    "Manager",
    "ManagerSettings",
    "NodeClassController",
    "NodeClassControllerSettings",
    "NodeController",
    "NodeControllerSettings",
    "NodeSetController",
    "NodeSetControllerSettings",
    "PendingPodAutoscaler",
    "PendingPodAutoscalerSettings",
    "Phase",
    "RemovalConflictError",
    "RemovalOfGoneNodesError",
    "choose_victims",
    "failure_of",
    "is_failed",
    "is_ready",
    "machine_gone",
    "remediation_budget",
    "request_removal",
]
