"""Template Nodes for NodeGroupTemplateNodeInfo: what a new Node of a NodeSet will look like once Ready.

The cluster-autoscaler uses the template to decide whether pending pods would fit a new Node of the group
(scale from zero, and after deletions). It must be a full Node: capacity and allocatable including pods (what
a registered Node of the class reports once one is Ready, the NodeClass's declaration until then: see
``node_resources``), a Ready condition, the well-known labels (os, arch, hostname, instance type, zone,
region), the NodeSet's and NodeClass's labels and taints. kube-node's own startup taint is left out: it is gone
once a Node is Ready.
The bytes are the protobuf encoding of core/v1 Node (see proto/k8s_node.proto).
"""

from __future__ import annotations

import time
from collections.abc import Iterable

from nodeset_controller.api import NodeClass, NodeSet, node_labels, node_resources, node_taints
from nodeset_controller.kube import NodeRecord

from ._proto import k8s_node_pb2

KUBELET_VERSION = "v1.36.3"


def template_node(nodeset: NodeSet, nodeclass: NodeClass, nodes: Iterable[NodeRecord]) -> k8s_node_pb2.Node:
    """The template Node of ``nodeset`` as a protobuf message; ``nodes``: the Nodes of its class."""
    name = f"template-{nodeset.metadata.name}"
    node = k8s_node_pb2.Node()
    node.metadata.name = name
    node.metadata.uid = f"template-{nodeset.metadata.uid or nodeset.metadata.name}"
    now = int(time.time())
    node.metadata.creationTimestamp.seconds = now
    node.metadata.labels.update(node_labels(nodeset, nodeclass, name))
    for taint in node_taints(nodeset, nodeclass):
        entry = node.spec.taints.add()
        entry.key = taint.key
        entry.effect = taint.effect
        if taint.value:
            entry.value = taint.value
    resources = node_resources(nodeclass, nodes)
    for key, value in resources.capacity.items():
        node.status.capacity[key].string = value
    for key, value in resources.allocatable.items():
        node.status.allocatable[key].string = value
    node.status.phase = "Running"
    ready = node.status.conditions.add()
    ready.type = "Ready"
    ready.status = "True"
    ready.reason = "KubeletReady"
    ready.message = "template node of a kube-node NodeSet"
    ready.lastHeartbeatTime.seconds = now
    ready.lastTransitionTime.seconds = now
    info = node.status.nodeInfo
    info.operatingSystem = "linux"
    info.architecture = str(nodeclass.spec.driver_options.get("arch", "amd64"))
    info.kubeletVersion = KUBELET_VERSION
    return node
