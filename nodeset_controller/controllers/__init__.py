"""The controllers of kube-node and what they share, one module each:

- ``_manager``: the Manager, which wires one process's caches, machine providers and controllers;
- ``_node_controller``: the NodeController: a Node naming a NodeClass gets a machine, and loses it before it goes;
- ``_orphans``: orphan collection: machines no Node owns, and a Node's second machine, are destroyed;
- ``_join``: what a machine joins with: its own bootstrap token, the API server and its CA;
- ``_serving_csrs``: approving kubelet serving certificates whose names and addresses are the machine's;
- ``_nodeset_controller``: the NodeSetController: a NodeSet keeps ``replicas`` Nodes of its NodeClass;
- ``removal``: removing a Node, from why it goes to its machine destroyed (its docstring walks the path):
  ``_victims`` (which Nodes go, which count as failed), ``_budget`` (maxUnhealthy, PodDisruptionBudgets),
  ``_drain`` (evicting a Node's pods), ``_remove`` (cordon, drain, delete);
- ``_nodeclass_controller``: the NodeClassController: in-use protection and status of NodeClasses;
- ``_pending_pods``: the pending-pod autoscaler: NodeSets in ``KubeNode`` mode grow from unschedulable pods, a
  round at a time, one module a step: ``_scale_up`` (room first, simulate, raise, explain), ``_expanders``
  (which NodeSet gets the new Nodes), ``_consolidation`` (empty and underused Nodes go), ``_autoscaling``
  (what they share: the settings, the view of a NodeSet);
- ``_scheduling``: the scheduler's predicates and the bin-packing that the pending-pod autoscaler simulates;
- ``_expectations``: writes a controller has made that its cache has not shown it yet.
"""

from ._expanders import EXPANDERS
from ._join import BOOTSTRAP_GROUP
from ._manager import Manager, ManagerSettings
from ._node_controller import NodeController, NodeControllerSettings, Phase
from ._nodeclass_controller import NodeClassController, NodeClassControllerSettings
from ._nodeset_controller import NodeSetController, NodeSetControllerSettings
from ._pending_pods import PendingPodAutoscaler, PendingPodAutoscalerSettings
from .removal import Failure, choose_victims, failure_of, is_failed, is_ready, machine_gone, remediation_budget

__all__ = [
    "BOOTSTRAP_GROUP",
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
