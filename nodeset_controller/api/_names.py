"""The names that make up kube-node's public API: group, kinds, labels, annotations, finalizer, taint."""

from __future__ import annotations

from typing import Final

GROUP: Final = "kube-node.io"
VERSION: Final = "v1alpha1"
API_VERSION: Final = f"{GROUP}/{VERSION}"

NODECLASS_KIND: Final = "NodeClass"
NODECLASS_PLURAL: Final = "nodeclasses"
NODESET_KIND: Final = "NodeSet"
NODESET_PLURAL: Final = "nodesets"

#: Every Node kube-node manages carries this label, naming its NodeClass.
LABEL_NODECLASS: Final = f"{GROUP}/nodeclass"
#: NodeSet members also carry this label, naming their NodeSet; the NodeSet's selector is built on it.
LABEL_NODESET: Final = f"{GROUP}/nodeset"
#: Guarantees that deleting a Node destroys its machine first.
FINALIZER_MACHINE: Final = f"{GROUP}/machine"
#: On every NodeClass: kept while a Node labelled with the class or a NodeSet naming it remains, so that a
#: NodeClass deleted while in use stays (Terminating) until its Nodes can no longer need it.
FINALIZER_IN_USE: Final = f"{GROUP}/in-use"
#: Kept on a Node until its kubelet reports Ready. The cluster-autoscaler treats every key under
#: ``startup-taint.cluster-autoscaler.kubernetes.io/`` as transient (a Node carrying it counts as starting, and
#: the taint stays out of its templates), while an unknown taint on a Ready Node would be cached in them.
TAINT_STARTUP: Final = "startup-taint.cluster-autoscaler.kubernetes.io/kube-node"
#: Set by the autoscaler provider (or a person) to ask the NodeSetController to remove this Node first.
ANNOTATION_DELETE_REQUESTED: Final = f"{GROUP}/delete-requested"
#: On a NodeSet: the Nodes (comma-separated names) whose removal was asked for, together with the matching
#: decrease of replicas in the same write, so that a request is either wholly recorded or not at all.
ANNOTATION_DELETE_REQUESTED_NODES: Final = f"{GROUP}/delete-requested-nodes"
#: Label on the Nodes of NodeClasses with a gpuType, naming it; the cluster-autoscaler's GPU label.
LABEL_GPU: Final = f"{GROUP}/gpu-type"
#: When kube-node started removing a Node (RFC 3339); its presence means the Node is leaving its NodeSet.
ANNOTATION_DRAIN_STARTED: Final = f"{GROUP}/drain-started"
#: Why kube-node is removing a Node: ScaleDown (drained first) or Replace (its machine failed).
ANNOTATION_REMOVAL_REASON: Final = f"{GROUP}/removal-reason"
#: The provider's own id of the machine behind a Node.
ANNOTATION_MACHINE_ID: Final = f"{GROUP}/machine-id"
#: The machine's phase as kube-node last saw it (Pending, Creating, Running, Failed).
ANNOTATION_MACHINE_PHASE: Final = f"{GROUP}/machine-phase"
#: The last error creating or destroying the machine, if any.
ANNOTATION_MACHINE_ERROR: Final = f"{GROUP}/machine-error"
#: A stable short code for that error (QUOTA_EXCEEDED, STOCKOUT, IMAGE_NOT_FOUND, ...).
ANNOTATION_MACHINE_ERROR_CODE: Final = f"{GROUP}/machine-error-code"
#: How that error should be treated: OutOfResources (quota, stockout), InvalidConfiguration, Transient, Other.
ANNOTATION_MACHINE_ERROR_CLASS: Final = f"{GROUP}/machine-error-class"
#: When kube-node first recorded that error (RFC 3339): a failed instance is shown to the cluster-autoscaler
#: for a while from then, however long the failed call itself took.
ANNOTATION_MACHINE_ERROR_TIME: Final = f"{GROUP}/machine-error-time"

#: On each bootstrap token Secret kube-node mints (kube-system): the uid of the Node whose machine it joins.
LABEL_BOOTSTRAP_TOKEN_NODE_UID: Final = f"{GROUP}/node-uid"
#: On each such Secret: that Node's name (a name may be too long for a label value).
ANNOTATION_BOOTSTRAP_TOKEN_NODE: Final = f"{GROUP}/node"
#: On a Node: the names of the bootstrap token Secrets minted for its machine (``bootstrap-token-<id>``, the
#: token's public half), written before each Secret is made and cleared once they are deleted.
ANNOTATION_BOOTSTRAP_TOKENS: Final = f"{GROUP}/bootstrap-tokens"

#: The scheme of the providerIDs kube-node gives its Nodes: ``kube-node://<class>/<node>``.
PROVIDER_ID_SCHEME: Final = "kube-node://"


def provider_id(nodeclass: str, node: str) -> str:
    """Return the providerID kube-node gives a Node, computable before any machine exists."""
    return f"{PROVIDER_ID_SCHEME}{nodeclass}/{node}"


def nodeset_selector(nodeset: str) -> str:
    """Return the label selector of a NodeSet's Nodes, as its status and the scale subresource report it."""
    return f"{LABEL_NODESET}={nodeset}"
