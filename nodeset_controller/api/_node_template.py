"""What every Node of a NodeSet looks like: its labels, taints and resources, from the NodeClass, the template
and the Nodes of the class that have registered.

One place for it, because its readers must agree: the NodeSetController that creates the Nodes, the
gRPC server's template Node (for the cluster-autoscaler), the pending-pod autoscaler's simulation of a new Node, and the
NodeClassController that says on the NodeClass whether its Nodes are what it declares.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Protocol

from ._names import LABEL_GPU, LABEL_NODECLASS, LABEL_NODESET
from ._quantity import QuantityError, parse_quantity, resource_list
from ._types import NodeClass, NodeSet, Taint

DEFAULT_PODS = "110"
#: A reported capacity within this share of the declared one counts as matching (real machines report a
#: little less memory than their size's nominal figure).
CAPACITY_TOLERANCE = 0.1


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
    """The class's taints, then the template's (kube-node's startup taint is not among them).

    A Node may have one taint per key and effect. Each CRD refuses a list with two; across the two lists,
    the class's wins (as its labels do) and the template's of the same key and effect is left out.
    """
    template = nodeset.spec.template.spec.taints if nodeset.spec.template else []
    taints: dict[tuple[str, str], Taint] = {}
    for taint in [*nodeclass.spec.taints, *template]:
        taints.setdefault((taint.key, taint.effect), Taint(taint.key, taint.effect, taint.value or None))
    return tuple(taints.values())


class RegisteredNode(Protocol):
    """What :func:`node_resources` reads of a registered Node (kube-node's cached NodeRecord has it)."""

    @property
    def name(self) -> str: ...
    @property
    def labels(self) -> Mapping[str, str]: ...
    @property
    def ready(self) -> bool | None: ...
    @property
    def deleting(self) -> bool: ...
    @property
    def created(self) -> float: ...
    @property
    def capacity(self) -> Mapping[str, str]: ...
    @property
    def allocatable(self) -> Mapping[str, str]: ...


def node_capacity(nodeclass: NodeClass) -> dict[str, str]:
    """The class's declared capacity as strings, with the default pod count."""
    return {"pods": DEFAULT_PODS, **{k: str(v) for k, v in nodeclass.spec.capacity.items()}}


@dataclass(frozen=True)
class NodeResources:
    """What a new Node of a class will have: capacity and allocatable, as ResourceLists of strings."""

    capacity: dict[str, str]
    allocatable: dict[str, str]
    #: the registered Node whose figures these are, or None when they are the class's declaration
    reported_by: str | None = None
    #: the declared resources that Node does not report (kept from the declaration)
    unreported: frozenset[str] = frozenset()


def node_resources(nodeclass: NodeClass, nodes: Iterable[RegisteredNode]) -> NodeResources:
    """What a new Node of ``nodeclass`` will have. Until a Node of the class has registered, the class's
    declared capacity (as capacity and allocatable); once one is Ready and reports allocatable, what it
    reports, as the cluster-autoscaler does with the real Nodes of a node group: the newest such Node (the
    one most likely made from the class's current spec), with the declaration kept only for resources it
    does not report (an extended resource whose device plugin has not registered yet). ``nodes`` may hold
    Nodes of other classes; they are skipped."""
    declared = node_capacity(nodeclass)
    name = nodeclass.metadata.name
    registered = [
        n
        for n in nodes
        if n.labels.get(LABEL_NODECLASS) == name and n.ready is True and not n.deleting and n.allocatable
    ]
    if not registered:
        return NodeResources(dict(declared), dict(declared))
    newest = max(registered, key=lambda n: (n.created, n.name))
    capacity = newest.capacity or newest.allocatable
    return NodeResources(
        {**declared, **capacity},
        {**declared, **newest.allocatable},
        reported_by=newest.name,
        unreported=frozenset(declared) - set(capacity),
    )


def node_allocatable_units(nodeclass: NodeClass, nodes: Iterable[RegisteredNode]) -> dict[str, int]:
    """What a new Node of the class can hold, in integer units (cpu in millicores), for bin-packing: see
    :func:`node_resources`. The class's schema checks only the form loosely, so a value Kubernetes would
    reject or cap is a QuantityError naming the resource."""
    return resource_list(node_resources(nodeclass, nodes).allocatable, strict=True)


def capacity_differences(nodeclass: NodeClass, resources: NodeResources) -> list[tuple[str, str, str | None]]:
    """The declared resources that the registered Node behind ``resources`` reports differently (beyond
    :data:`CAPACITY_TOLERANCE`), as (resource, declared, reported or None when it reports none), sorted by
    resource; empty when they agree or no Node has registered."""
    if resources.reported_by is None:
        return []
    differences: list[tuple[str, str, str | None]] = []
    for resource, declared in sorted(node_capacity(nodeclass).items()):
        if resource in resources.unreported:
            differences.append((resource, declared, None))
            continue
        reported = resources.capacity[resource]
        try:
            want, got = parse_quantity(declared), parse_quantity(reported)
        except QuantityError:
            if declared != reported:
                differences.append((resource, declared, reported))
            continue
        if abs(got - want) > abs(want) * Decimal(str(CAPACITY_TOLERANCE)):
            differences.append((resource, declared, reported))
    return differences
