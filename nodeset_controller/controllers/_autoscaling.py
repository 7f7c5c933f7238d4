"""What the pending-pod autoscaler's steps share: its settings, and its view of a KubeNode-mode NodeSet.

The view (:class:`NodeSetView`) answers, from the caches: which Nodes are a set's members (those not named
for removal), what one new Node of the set offers (:class:`Candidate`: the NodeClass's capacity less the
DaemonSet pods' share, the labels and taints it gets, how many the set may still add), and what is left on a
Node that exists. Scale-up (``_scale_up``), the expanders (``_expanders``) and scale-down and consolidation
(``_consolidation``) all read it; ``_pending_pods`` runs them in rounds.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..api import (
    NodeClass,
    NodeSet,
    QuantityError,
    Taint,
    node_allocatable_units,
    node_labels,
    node_taints,
    requested_nodes,
    resource_list,
)
from ..kube import EventRecorder, EventType, Informer, NodeRecord, ObjectReference, PodRecord, nodeset_members
from ._scheduling import NodeShape, PendingPod, bound_pod_entry
from .removal import is_ready

#: The reason (of the ScalingLimited condition and of a Warning Event) when the NodeSet's class has a capacity
#: no Node could have: that NodeSet is left alone, and every other one keeps scaling.
INVALID_NODECLASS = "InvalidNodeClass"


@dataclass(frozen=True)
class PendingPodAutoscalerSettings:
    """Tunables of the pending-pod autoscaler (flags of ``kube-node run``)."""

    batch_window: float = 0.1  #: wait this long after the first unschedulable pod, to take a burst at once
    interval: float = 1.0  #: how often to look again without a new event
    unneeded_time: float = 600.0  #: how long a Node must be empty before it is removed
    max_total_nodes: int | None = None  #: cap on the Nodes of all KubeNode-mode NodeSets together
    expander: str = "least-waste"
    backoff: float = 300.0  #: how long a NodeSet whose machines hit quota is skipped
    max_removals_per_round: int = 10
    utilization_threshold: float = 0.5  #: a Node using less of its CPU and memory than this may be consolidated
    consolidation_interval: float = 30.0  #: at most one consolidation per this many seconds


@dataclass
class Candidate:
    """A NodeSet as an option for new Nodes, and the new Nodes and pods a simulation gave it."""

    nodeset: NodeSet
    nodeclass: NodeClass
    capacity: dict[str, int]
    labels: dict[str, str]
    taints: tuple[Taint, ...]
    room: int  #: Nodes it may still add (maxReplicas, cluster cap)
    new_nodes: list[NodeShape] = field(default_factory=list)
    pods: list[PendingPod] = field(default_factory=list)


class NodeSetView:
    """The pending-pod autoscaler's reading of NodeSets, their Nodes and the pods bound there."""

    def __init__(self, nodes: Informer[NodeRecord], bound: Informer[PodRecord], recorder: EventRecorder) -> None:
        self._nodes = nodes
        self._bound = bound
        self._recorder = recorder
        self.invalid: dict[str, str] = {}  #: NodeSet -> why its NodeClass cannot be simulated (Warning sent)

    def candidate(self, nodeset: NodeSet, nodeclass: NodeClass, cluster_room: int) -> Candidate | None:
        """The NodeSet as an option for new Nodes; None when its class's capacity cannot be read."""
        capacity = self.capacity(nodeset, nodeclass)
        if capacity is None:
            return None
        overhead = self._daemonset_overhead(nodeset)
        for name, value in overhead.items():
            capacity[name] = capacity.get(name, 0) - value
        maximum = nodeset.spec.max_replicas if nodeset.spec.max_replicas is not None else 10**9
        room = max(0, min(maximum - nodeset.spec.replicas, cluster_room))
        return Candidate(
            nodeset,
            nodeclass,
            capacity,
            node_labels(nodeset, nodeclass, "new-node"),
            node_taints(nodeset, nodeclass),
            room,
        )

    def capacity(self, nodeset: NodeSet, nodeclass: NodeClass) -> dict[str, int] | None:
        """One new Node's capacity, or None when the class's capacity is not something a Node could have: a
        value Kubernetes refuses or caps (its schema checks the form only loosely). Then this NodeSet alone is
        skipped, with one Warning Event while the problem lasts and the ScalingLimited condition saying why."""
        name = nodeset.metadata.name
        try:
            capacity = node_allocatable_units(nodeclass, self._nodes.by_index("nodeclass", nodeclass.metadata.name))
        except QuantityError as error:
            problem = (
                f"NodeClass {nodeclass.metadata.name}: spec.capacity.{error}; this NodeSet is not scaled up "
                "until the NodeClass is fixed"
            )
            if self.invalid.get(name) != problem:
                self.invalid[name] = problem
                self.event(nodeset, "Warning", INVALID_NODECLASS, problem)
            return None
        self.invalid.pop(name, None)
        return capacity

    def members(self, nodeset: NodeSet) -> list[NodeRecord]:
        """The set's Nodes that are not being deleted and not named for removal."""
        requested = requested_nodes(nodeset)
        return [n for n in nodeset_members(self._nodes, nodeset) if not n.deleting and n.name not in requested]

    def total_nodes(self, sets: list[NodeSet]) -> int:
        """The Nodes of ``sets`` together: each set's replicas, or its members if it has more."""
        return sum(max(ns.spec.replicas, len(self.members(ns))) for ns in sets)

    def bound(self, node: NodeRecord) -> list[PodRecord]:
        """The pods bound to ``node``."""
        return self._bound.by_index("node", node.name)

    def occupied(self, node: NodeRecord, shape: NodeShape) -> NodeShape:
        """``shape`` less what the pods bound to ``node`` take, with those pods on it (for anti-affinity)."""
        for pod in self.bound(node):
            if not pod.finished:
                for name, value in pod.requests.items():
                    shape.free[name] = shape.free.get(name, 0) - value
                shape.pods.append(bound_pod_entry(pod))
        return shape

    def _daemonset_overhead(self, nodeset: NodeSet) -> dict[str, int]:
        """What DaemonSet pods take on one of the set's Nodes, as observed on a Ready one (0 before any)."""
        for node in nodeset_members(self._nodes, nodeset):
            if is_ready(node):
                overhead: dict[str, int] = {}
                for pod in self.bound(node):
                    if pod.owner_kind == "DaemonSet":
                        for name, value in pod.requests.items():
                            overhead[name] = overhead.get(name, 0) + value
                return overhead
        return {}

    def event(self, nodeset: NodeSet, type_: EventType, reason: str, message: str) -> None:
        """An Event on ``nodeset``."""
        self._recorder.event(ObjectReference.to(nodeset), type_, reason, message)

    def pod_event(self, pod: PendingPod, type_: EventType, reason: str, message: str) -> None:
        """An Event on ``pod``."""
        self._recorder.event(ObjectReference("Pod", pod.name, pod.uid, namespace=pod.namespace), type_, reason, message)


def units(values: dict[str, str], fallback: dict[str, int]) -> dict[str, int]:
    """A Node's allocatable in units (millicores, bytes), or ``fallback`` when it reports none yet."""
    return resource_list(values) if values else dict(fallback)
