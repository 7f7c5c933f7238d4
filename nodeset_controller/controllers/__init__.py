"""The controllers: NodeController (machines behind Nodes), NodeSetController, NodeClassController (in-use
protection and status of NodeClasses), the pending-pod autoscaler, and the Manager that runs them."""

from ._manager import Manager, ManagerSettings
from ._membership import is_foreign, is_member, nodeset_members
from ._node_controller import NodeController, NodeControllerSettings, Phase
from ._node_template import (
    NodeResources,
    capacity_differences,
    node_allocatable_units,
    node_capacity,
    node_labels,
    node_resources,
    node_taints,
)
from ._nodeclass_controller import NodeClassController, NodeClassControllerSettings
from ._nodeset_controller import NodeSetController, NodeSetControllerSettings
from ._pending_pods import PendingPodAutoscaler, PendingPodAutoscalerSettings
from ._removal import RemovalConflictError, RemovalOfGoneNodesError, request_removal, requested_nodes
from ._scale_down import Failure, choose_victims, failure_of, is_failed, is_ready, machine_gone, remediation_budget

__all__ = [
    "Failure",
    "Manager",
    "ManagerSettings",
    "NodeClassController",
    "NodeClassControllerSettings",
    "NodeController",
    "NodeControllerSettings",
    "NodeResources",
    "NodeSetController",
    "NodeSetControllerSettings",
    "PendingPodAutoscaler",
    "PendingPodAutoscalerSettings",
    "Phase",
    "RemovalConflictError",
    "RemovalOfGoneNodesError",
    "capacity_differences",
    "choose_victims",
    "failure_of",
    "is_failed",
    "is_foreign",
    "is_member",
    "is_ready",
    "machine_gone",
    "node_allocatable_units",
    "node_capacity",
    "node_labels",
    "node_resources",
    "node_taints",
    "nodeset_members",
    "remediation_budget",
    "request_removal",
    "requested_nodes",
]
