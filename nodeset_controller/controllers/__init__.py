"""The controllers of kube-node and what they share, one module each:

- ``_manager``: the Manager, which wires one process's caches, machine providers and controllers;
- ``_node_controller``: the NodeController: a Node naming a NodeClass gets a machine, and loses it before it goes;
- ``_nodeset_controller``: the NodeSetController: a NodeSet keeps ``replicas`` Nodes of its NodeClass;
- ``_nodeclass_controller``: the NodeClassController: in-use protection and status of NodeClasses;
- ``_pending_pods``: the pending-pod autoscaler: NodeSets in ``KubeNode`` mode grow from unschedulable pods;
- ``_scheduling``: the scheduler's predicates and the bin-packing that the pending-pod autoscaler simulates;
- ``_scale_down``: which Nodes of a NodeSet go first, which count as failed, how many may be replaced;
- ``_drain``: cordoning a Node and evicting its pods through the Eviction API before it is removed;
- ``_expectations``: writes a controller has made that its cache has not shown it yet.
"""

from ._expanders import EXPANDERS
from ._manager import Manager, ManagerSettings
from ._node_controller import NodeController, NodeControllerSettings, Phase
from ._nodeclass_controller import NodeClassController, NodeClassControllerSettings
from ._nodeset_controller import NodeSetController, NodeSetControllerSettings
from ._pending_pods import PendingPodAutoscaler, PendingPodAutoscalerSettings
from .removal import Failure, choose_victims, failure_of, is_failed, is_ready, machine_gone, remediation_budget

__all__ = [
    "EXPANDERS",
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
    "choose_victims",
    "failure_of",
    "is_failed",
    "is_ready",
    "machine_gone",
    "remediation_budget",
]
