"""What every Node of a NodeSet looks like: its labels and taints, from the NodeClass and the template.

One place for it, because three readers must agree: the NodeSetController that creates the Nodes, the
cluster-autoscaler provider's template Node, and the pending-pod autoscaler's simulation of a new Node.
"""

from __future__ import annotations

from ..api import LABEL_GPU, LABEL_NODECLASS, LABEL_NODESET, NodeClass, NodeSet
from ..kube import Taint, resource_list

DEFAULT_PODS = "110"


def node_labels(nodeset: NodeSet, nodeclass: NodeClass, name: str) -> dict[str, str]:
    """The labels of the Node ``name`` of ``nodeset``, later ones winning: the template's, the well-known ones a
    kubelet sets (os, arch, instance type, zone, region), the class's, then the hostname and kube-node's own.

    The class is written by administrators and the template by whoever may create NodeSets, so the template
    only adds labels: it cannot override the class's (a label that restricts which workloads land on the
    class's Nodes, say) nor misstate the machine (size, zone, region) to the scheduler.
    """
    spec = nodeclass.spec
    labels = dict(nodeset.spec.template.metadata.labels) if nodeset.spec.template else {}
    arch = str(spec.driver_options.get("arch", "amd64"))
    labels.update(
        {
            "kubernetes.io/os": "linux",
            "kubernetes.io/arch": arch,
            "beta.kubernetes.io/os": "linux",
            "beta.kubernetes.io/arch": arch,
        }
    )
    if spec.size:
        labels["node.kubernetes.io/instance-type"] = spec.size
    if spec.location:
        labels["topology.kubernetes.io/zone"] = spec.location
    if spec.region:
        labels["topology.kubernetes.io/region"] = spec.region
    labels.update(spec.labels)
    labels["kubernetes.io/hostname"] = name
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
    """The class's capacity in integer units (cpu in millicores), for bin-packing."""
    return resource_list(node_capacity(nodeclass))
