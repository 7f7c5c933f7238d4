"""What every Node of a NodeSet looks like: its labels and taints, from the NodeClass and the template.

One place for it, because three readers must agree: the NodeSetController that creates the Nodes, the
cluster-autoscaler provider's template Node, and the pending-pod autoscaler's simulation of a new Node.
"""

from __future__ import annotations

from ..api import LABEL_GPU, LABEL_NODECLASS, LABEL_NODESET, NodeClass, NodeSet
from ..kube import Taint, resource_list

DEFAULT_PODS = "110"


def node_labels(nodeset: NodeSet, nodeclass: NodeClass, name: str) -> dict[str, str]:
    """The labels of the Node ``name`` of ``nodeset``: the well-known ones a kubelet sets (os, arch, hostname,
    instance type, zone, region), the class's, the template's, then kube-node's own."""
    spec = nodeclass.spec
    arch = str(spec.driver_options.get("arch", "amd64"))
    labels = {
        "kubernetes.io/os": "linux",
        "kubernetes.io/arch": arch,
        "kubernetes.io/hostname": name,
        "beta.kubernetes.io/os": "linux",
        "beta.kubernetes.io/arch": arch,
    }
    if spec.size:
        labels["node.kubernetes.io/instance-type"] = spec.size
    if spec.location:
        labels["topology.kubernetes.io/zone"] = spec.location
    if spec.region:
        labels["topology.kubernetes.io/region"] = spec.region
    labels.update(spec.labels)
    if nodeset.spec.template:
        labels.update(nodeset.spec.template.metadata.labels)
    labels[LABEL_NODESET] = nodeset.metadata.name
    labels[LABEL_NODECLASS] = nodeclass.metadata.name
    if spec.gpu_type:
        labels[LABEL_GPU] = spec.gpu_type
    return labels


def node_taints(nodeset: NodeSet, nodeclass: NodeClass) -> tuple[Taint, ...]:
    """The class's taints, then the template's (kube-node's startup taint is not among them)."""
    template = nodeset.spec.template.spec.taints if nodeset.spec.template else []
    return tuple(Taint(t.key, t.effect, t.value or "") for t in [*nodeclass.spec.taints, *template])


def node_capacity(nodeclass: NodeClass) -> dict[str, str]:
    """The class's capacity as strings, with the default pod count."""
    return {"pods": DEFAULT_PODS, **{k: str(v) for k, v in nodeclass.spec.capacity.items()}}


def node_allocatable_units(nodeclass: NodeClass) -> dict[str, int]:
    """The class's capacity in integer units (cpu in millicores), for bin-packing. Its schema checks only the
    form loosely, so a value Kubernetes would reject or cap is a QuantityError naming the resource."""
    return resource_list(node_capacity(nodeclass), strict=True)
