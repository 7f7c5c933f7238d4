"""Removing a Node, from why it goes to its machine destroyed, one step a module:

1. **why it goes** (``_victims``): a NodeSet has more Nodes than ``replicas`` (:func:`choose_victims` orders
   them: named, failed, not Ready, then by deletePolicy); a Node failed (:func:`failure_of`), to be replaced
   (Manual mode) or given back after ``failed_instance_ttl`` (autoscaled modes); or a Node was asked for by
   name. Named removals all go through ``kube.NodeSetScaler.request_removal`` (the one writer of a NodeSet's
   size: names the Nodes, lowers replicas): the gRPC server's DeleteNodes, the failed instances given back,
   and the pending-pod autoscaler's empty and underused Nodes (``controllers._consolidation``).
2. **budget** (``_budget``): failed Nodes are removed only within ``healthCheck.maxUnhealthy``
   (:func:`removable_failures`), replacements only within ``replacement.maxInFlight`` and a growing pause
   (the NodeSetController's); a consolidation only when the pods' PodDisruptionBudgets allow it
   (:func:`disruptions_allowed`).
3. **cordon**, 4. **drain**, 5. **delete** (``_remove``, with ``_drain``'s steps): :class:`NodeRemover`
   cordons the Node and marks it as leaving, evicts its pods through the Eviction API a step per reconcile
   (:class:`Drainer`; PodDisruptionBudgets honoured, DaemonSet and mirror pods left), and deletes it once
   drained, at the drain timeout, or at once when no machine runs behind it.
6. **machine destroyed**: the deleted Node's finalizer has the NodeController (``controllers._node_controller``)
   destroy its machine, then let the Node go.

The NodeSetController (``controllers._nodeset_controller``) runs steps 1 to 5 for each NodeSet it reconciles.
"""

from ._budget import RemediationBudget, disruptions_allowed, max_unhealthy, remediation_budget, removable_failures
from ._drain import Drainer, DrainStep, must_leave
from ._remove import NodeRemover
from ._victims import Failure, choose_victims, failure_of, is_failed, is_ready, looks_unhealthy, machine_gone

__all__ = [
    "DrainStep",
    "Drainer",
    "Failure",
    "NodeRemover",
    "RemediationBudget",
    "choose_victims",
    "disruptions_allowed",
    "failure_of",
    "is_failed",
    "is_ready",
    "looks_unhealthy",
    "machine_gone",
    "max_unhealthy",
    "must_leave",
    "remediation_budget",
    "removable_failures",
]
