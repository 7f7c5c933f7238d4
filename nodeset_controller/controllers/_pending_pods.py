"""kube-node's own autoscaler: NodeSets in ``autoscaling.mode: KubeNode`` scale from pending pods.

Each round (a short batching window after the scheduler marks pods unschedulable, so a burst is one
decision, and once a second besides):

1. **room first**: each pending pod is placed, largest first, on what is left of a Node already in such a
   NodeSet, Ready or still on its way (created, not Ready yet), and on the replicas asked for whose Nodes do
   not exist yet. What fits there orders nothing, so a burst never orders nodes twice.
2. **simulate new nodes**: for the rest, every candidate NodeSet (its NodeClass exists; not backing off after
   quota failures) packs the pods that could run on its Nodes (resources, node selector, required node
   affinity, tolerations, hostname anti-affinity) into new Nodes, first-fit decreasing; the expander picks
   the candidate (least waste by default, or priority, or price), whose pods are then taken, and the rest go
   round again. ``maxReplicas`` and the cluster-wide cap hold.
3. **act and explain**: ``replicas`` is raised through the NodeSetScaler (nodeset_controller.kube, the one
   writer of a NodeSet's size: the scale subresource, optimistic concurrency); pods that triggered it get an
   Event naming the NodeSet and its new size; a pod that fits no NodeSet gets one Event saying why, per
   NodeSet (once per pod and reason).
4. **scale down**: a Ready Node that has run only DaemonSet and mirror pods for ``unneeded_time`` is removed
   through the same path as the gRPC server's DeleteNodes (``NodeSetScaler.request_removal``: named, replicas
   lowered), never below minReplicas.

NodeSets in any other mode are never touched, so this autoscaler and the cluster-autoscaler never fight.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field

from .. import metrics
from ..api import (
    ANNOTATION_MACHINE_ERROR_CLASS,
    MODE_KUBE_NODE,
    NodeClass,
    NodeSet,
    QuantityError,
    Taint,
    condition_json,
    make_condition,
    node_allocatable_units,
    node_labels,
    node_taints,
    requested_nodes,
    resource_list,
)
from ..kube import (
    NODESETS,
    ApiError,
    EventRecorder,
    EventType,
    Informer,
    KubeClient,
    NodeRecord,
    NodeSetConflictError,
    NodeSetScaler,
    NotLeaderError,
    ObjectReference,
    PodRecord,
    nodeset_members,
)
from ._scheduling import (
    NodeShape,
    PendingPod,
    bound_pod_entry,
    fits_now,
    resource_misfit,
    static_misfit,
)
from .removal import disruptions_allowed, is_failed, is_ready, must_leave

log = logging.getLogger(__name__)

_CONTROLLER = "pending-pod-autoscaler"

#: The NodeSet condition this autoscaler owns: whether something holds its scale-up back.
LIMITED = "ScalingLimited"
#: The reason (of that condition and of a Warning Event) when the NodeSet's class has a capacity no Node could
#: have: that NodeSet is left alone, and every other one keeps scaling.
INVALID_NODECLASS = "InvalidNodeClass"
EXPANDERS = ("least-waste", "priority", "price")
#: least-waste treats options whose waste is this close to the least as equally good, and then prefers fewer Nodes.
WASTE_TOLERANCE = 0.5


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
class _Candidate:
    nodeset: NodeSet
    nodeclass: NodeClass
    capacity: dict[str, int]
    labels: dict[str, str]
    taints: tuple[Taint, ...]
    room: int  #: Nodes it may still add (maxReplicas, cluster cap)
    new_nodes: list[NodeShape] = field(default_factory=list)
    pods: list[PendingPod] = field(default_factory=list)


class PendingPodAutoscaler:
    """Raises and lowers KubeNode-mode NodeSets from pending pods and empty Nodes."""

    def __init__(  # noqa: PLR0917 - the caches it reads, each named
        self,
        client: KubeClient,
        pending: Informer[PendingPod],
        bound: Informer[PodRecord],
        nodes: Informer[NodeRecord],
        nodesets: Informer[NodeSet],
        nodeclasses: Informer[NodeClass],
        recorder: EventRecorder,
        *,
        settings: PendingPodAutoscalerSettings | None = None,
        scaler: NodeSetScaler | None = None,
    ) -> None:
        """``scaler`` writes the NodeSets' sizes (the process's one, shared with the NodeSetController and the
        provider; by default its own, over ``nodesets``)."""
        self._client = client
        self._scaler = scaler or NodeSetScaler(client, nodesets)
        self._pending = pending
        self._bound = bound
        self._nodes = nodes
        self._nodesets = nodesets
        self._nodeclasses = nodeclasses
        self._recorder = recorder
        self.settings = settings or PendingPodAutoscalerSettings()
        if self.settings.expander not in EXPANDERS:
            raise ValueError(f"unknown expander {self.settings.expander!r}; one of {', '.join(EXPANDERS)}")
        self._wake = threading.Event()
        self._explained: dict[str, str] = {}  # pod uid -> the explanation last given
        self._empty_since: dict[str, float] = {}
        self._underused_since: dict[str, float] = {}
        self._last_consolidation = 0.0
        self._consolidating: dict[str, float] = {}  # Node -> when its removal was asked for
        self._scaled_up_at: dict[str, float] = {}  # NodeSet -> when this autoscaler last raised it
        self._backoff_until: dict[str, float] = {}
        self._invalid: dict[str, str] = {}  # NodeSet -> why its NodeClass cannot be simulated (Warning sent)
        self.decisions: list[tuple[float, str, int, int]] = []  #: (time, NodeSet, from, to), for tests/benchmarks
        pending.add_handler(self._on_pending)

    def _on_pending(self, old: PendingPod | None, new: PendingPod | None) -> None:
        if new is not None and new.unschedulable:
            self._wake.set()

    def wake(self) -> None:
        """Run a round now (and notice a stop at once)."""
        self._wake.set()

    def start(self, stop: threading.Event) -> threading.Thread:
        """Run rounds until ``stop`` is set (call ``wake`` after setting it to stop at once)."""

        def loop() -> None:
            while not stop.is_set():
                if self._wake.wait(self.settings.interval):
                    stop.wait(self.settings.batch_window)  # let the rest of a burst arrive
                self._wake.clear()
                if stop.is_set():
                    break
                started, result = time.monotonic(), "success"
                try:
                    self.run_once()
                except NotLeaderError as error:  # the fence has said so; the process is about to stop
                    result = "conflict"
                    log.debug("pending-pod autoscaler round stopped: %s", error)
                except Exception:
                    result = "error"
                    log.exception("pending-pod autoscaler round failed")
                metrics.observe_reconcile(_CONTROLLER, result, time.monotonic() - started)

        thread = threading.Thread(target=loop, name="pending-pod-autoscaler", daemon=True)
        thread.start()
        return thread

    def run_once(self) -> None:
        """One round: scale up for pending pods, then scale down empty Nodes."""
        sets = [ns for ns in self._nodesets.list() if ns.spec.autoscaling.mode == MODE_KUBE_NODE]
        if not sets:
            return
        self.scale_up(sets)
        self.scale_down(sets, time.monotonic())
        self.consolidate(sets, time.monotonic())
        self._report_limits(sets, time.monotonic())

    # -- scale up ----------------------------------------------------------------------------------------

    def scale_up(self, sets: list[NodeSet]) -> dict[str, int]:
        """Order new Nodes for the pending pods that fit nowhere yet; returns {NodeSet: new replicas}."""
        pods = [p for p in self._pending.list() if p.unschedulable and p.owner_kind != "DaemonSet"]
        if not pods:
            return {}
        pods.sort(key=lambda p: (p.requests.get("cpu", 0), p.requests.get("memory", 0)), reverse=True)
        now = time.monotonic()
        total_nodes = sum(max(ns.spec.replicas, len(self._members(ns))) for ns in sets)
        cluster_room = (
            self.settings.max_total_nodes - total_nodes if self.settings.max_total_nodes is not None else 10**9
        )
        candidates: list[_Candidate] = []
        existing: list[tuple[_Candidate, NodeShape]] = []
        for nodeset in sets:
            nodeclass = self._nodeclasses.get(nodeset.spec.node_class_name)
            if nodeclass is None:
                continue
            candidate = self._candidate(nodeset, nodeclass, cluster_room)
            if candidate is None:
                continue
            backing_off = self._backing_off(nodeset, now)
            existing.extend((candidate, shape) for shape in self._room_in(candidate, ready_only=backing_off))
            if backing_off:
                candidate.room = 0
            candidates.append(candidate)

        unplaced: list[PendingPod] = []
        for pod in pods:  # 1. room on Nodes that exist or are on their way
            for candidate, shape in existing:
                if static_misfit(pod, shape.labels, candidate.taints) is None and fits_now(pod, shape):
                    shape.place(pod)
                    break
            else:
                unplaced.append(pod)

        chosen: list[_Candidate] = []
        while unplaced:  # 2. new Nodes, the expander's pick first
            options = [c for c in candidates if c.room > 0 and c not in chosen]
            for candidate in options:
                self._pack(candidate, unplaced)
            options = [c for c in options if c.new_nodes]
            if not options:
                break
            best = self._expand(options)
            chosen.append(best)
            cluster_room -= len(best.new_nodes)
            for candidate in candidates:
                if candidate is not best:
                    candidate.room = min(candidate.room, max(0, cluster_room))
            taken = {p.uid for p in best.pods}
            unplaced = [p for p in unplaced if p.uid not in taken]
            for candidate in options:
                if candidate is not best:
                    candidate.new_nodes, candidate.pods = [], []

        decided: dict[str, int] = {}
        for candidate in chosen:  # 3. act
            name = candidate.nodeset.metadata.name
            try:
                before, after = self._raise(name, len(candidate.new_nodes))
            except (ApiError, NodeSetConflictError) as error:
                log.warning("raising NodeSet %s: %s", name, error)
                continue
            if after <= before:
                continue
            decided[name] = after
            self._scaled_up_at[name] = time.monotonic()
            self.decisions.append((time.time(), name, before, after))
            self._event(
                candidate.nodeset,
                "Normal",
                "ScaledUp",
                f"{len(candidate.pods)} pending pods: replicas {before} -> {after}",
            )
            for pod in candidate.pods:
                self._pod_event(
                    pod, "Normal", "TriggeredScaleUp", f"pod triggered scale-up: NodeSet {name} {before} -> {after}"
                )
        for pod in unplaced:
            self._explain(pod, candidates)
        return decided

    def _candidate(self, nodeset: NodeSet, nodeclass: NodeClass, cluster_room: int) -> _Candidate | None:
        """The NodeSet as an option for new Nodes; None when its class's capacity cannot be read."""
        capacity = self._capacity(nodeset, nodeclass)
        if capacity is None:
            return None
        overhead = self._daemonset_overhead(nodeset)
        for name, value in overhead.items():
            capacity[name] = capacity.get(name, 0) - value
        maximum = nodeset.spec.max_replicas if nodeset.spec.max_replicas is not None else 10**9
        room = max(0, min(maximum - nodeset.spec.replicas, cluster_room))
        return _Candidate(
            nodeset,
            nodeclass,
            capacity,
            node_labels(nodeset, nodeclass, "new-node"),
            node_taints(nodeset, nodeclass),
            room,
        )

    def _capacity(self, nodeset: NodeSet, nodeclass: NodeClass) -> dict[str, int] | None:
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
            if self._invalid.get(name) != problem:
                self._invalid[name] = problem
                self._event(nodeset, "Warning", INVALID_NODECLASS, problem)
            return None
        self._invalid.pop(name, None)
        return capacity

    def _members(self, nodeset: NodeSet) -> list[NodeRecord]:
        requested = requested_nodes(nodeset)
        return [n for n in nodeset_members(self._nodes, nodeset) if not n.deleting and n.name not in requested]

    def _room_in(self, candidate: _Candidate, *, ready_only: bool) -> list[NodeShape]:
        """What is left on the set's Nodes (Ready or on their way) and on the replicas not yet created; with
        ``ready_only`` (the set is backing off after quota failures) only on Ready Nodes."""
        members = self._members(candidate.nodeset)
        shapes = []
        now = time.time()
        spec = candidate.nodeset.spec
        for node in members:
            if node.unschedulable or is_failed(node, now, spec) or (ready_only and not is_ready(node)):
                continue  # not coming: its machine failed
            free = dict(candidate.capacity) if not is_ready(node) else _units(node.allocatable, candidate.capacity)
            shapes.append(self._occupied(node, NodeShape(node.labels or candidate.labels, candidate.taints, free)))
        for _ in range(0 if ready_only else max(0, candidate.nodeset.spec.replicas - len(members))):
            shapes.append(NodeShape(candidate.labels, candidate.taints, dict(candidate.capacity)))
        return shapes

    def _occupied(self, node: NodeRecord, shape: NodeShape) -> NodeShape:
        """``shape`` less what the pods bound to ``node`` take, with those pods on it (for anti-affinity)."""
        for pod in self._bound.by_index("node", node.name):
            if not pod.finished:
                for name, value in pod.requests.items():
                    shape.free[name] = shape.free.get(name, 0) - value
                shape.pods.append(bound_pod_entry(pod))
        return shape

    def _pack(self, candidate: _Candidate, pods: list[PendingPod]) -> None:
        """First-fit decreasing of the pods that could run on this set's Nodes into new Nodes."""
        candidate.new_nodes, candidate.pods = [], []
        for pod in pods:
            if static_misfit(pod, candidate.labels, candidate.taints) is not None:
                continue
            if resource_misfit(pod, candidate.capacity) is not None:
                continue
            for shape in candidate.new_nodes:
                if fits_now(pod, shape):
                    shape.place(pod)
                    candidate.pods.append(pod)
                    break
            else:
                if len(candidate.new_nodes) >= candidate.room:
                    continue
                shape = NodeShape(candidate.labels, candidate.taints, dict(candidate.capacity))
                if not fits_now(pod, shape):
                    continue
                shape.place(pod)
                candidate.new_nodes.append(shape)
                candidate.pods.append(pod)

    def _expand(self, options: list[_Candidate]) -> _Candidate:
        """The expander's choice. least-waste: among the options within a tolerance of the least waste, the
        one with the fewest new Nodes (room left on a new Node is filled by the next pods first, so a strict
        least-waste over a part of a burst would order many small Nodes); priority; price per pod."""
        if self.settings.expander == "priority":
            return min(options, key=lambda c: (-c.nodeset.spec.autoscaling.priority, _waste(c)))
        if self.settings.expander == "price":

            def per_pod(c: _Candidate) -> float:
                price = c.nodeclass.spec.price_per_hour
                return (price if price is not None else float("inf")) * len(c.new_nodes) / len(c.pods)

            return min(options, key=lambda c: (per_pod(c), _waste(c)))
        least = min(_waste(c) for c in options)
        close = [c for c in options if _waste(c) <= least + WASTE_TOLERANCE]
        return min(close, key=lambda c: (len(c.new_nodes) / max(1, len(c.pods)), _waste(c)))

    def _raise(self, name: str, count: int) -> tuple[int, int]:
        """Raise replicas by ``count``, capped at maxReplicas as the fresh read says (never lowered)."""

        def raised(nodeset: NodeSet) -> int:
            replicas, maximum = nodeset.spec.replicas, nodeset.spec.max_replicas
            return max(replicas, replicas + count if maximum is None else min(replicas + count, maximum))

        resized = self._scaler.resize(name, raised)
        return resized.before, resized.after

    def _backing_off(self, nodeset: NodeSet, now: float) -> bool:
        name = nodeset.metadata.name
        quota = any(
            n.annotations.get(ANNOTATION_MACHINE_ERROR_CLASS) == "OutOfResources" for n in self._members(nodeset)
        )
        if quota and (name not in self._backoff_until or now >= self._backoff_until[name]):
            self._backoff_until[name] = now + self.settings.backoff
            self._event(
                nodeset,
                "Warning",
                "ScaleUpBackoff",
                f"machines of this NodeSet hit quota; trying other NodeSets for {self.settings.backoff:.0f} s",
            )
        return now < self._backoff_until.get(name, 0.0)

    def _daemonset_overhead(self, nodeset: NodeSet) -> dict[str, int]:
        """What DaemonSet pods take on one of the set's Nodes, as observed on a Ready one (0 before any)."""
        for node in nodeset_members(self._nodes, nodeset):
            if is_ready(node):
                overhead: dict[str, int] = {}
                for pod in self._bound.by_index("node", node.name):
                    if pod.owner_kind == "DaemonSet":
                        for name, value in pod.requests.items():
                            overhead[name] = overhead.get(name, 0) + value
                return overhead
        return {}

    def _explain(self, pod: PendingPod, candidates: list[_Candidate]) -> None:
        reasons = []
        for candidate in candidates:
            name = candidate.nodeset.metadata.name
            why = static_misfit(pod, candidate.labels, candidate.taints)
            why = why or resource_misfit(pod, candidate.capacity)
            if why is None and candidate.room <= 0:
                why = "at maxReplicas, the cluster cap, or backing off after quota failures"
            if why is not None:
                reasons.append(f"NodeSet {name}: {why}")
        offered = {c.nodeset.metadata.name for c in candidates}
        reasons.extend(f"NodeSet {name}: {problem}" for name, problem in self._invalid.items() if name not in offered)
        if not candidates and not reasons:
            reasons.append("no NodeSet has autoscaling.mode KubeNode and an existing NodeClass")
        if not reasons:
            return  # it fits somewhere: the scheduler will place it once the Nodes are Ready
        message = "pod fits no NodeSet: " + "; ".join(sorted(reasons))
        if self._explained.get(pod.uid) != message:
            self._explained[pod.uid] = message
            self._pod_event(pod, "Normal", "NotTriggerScaleUp", message)

    # -- scale down --------------------------------------------------------------------------------------

    def scale_down(self, sets: list[NodeSet], now: float) -> int:
        """Remove Nodes empty for ``unneeded_time`` (bounded per round, never below minReplicas)."""
        removed = 0
        seen: set[str] = set()
        for nodeset in sets:
            members = self._members(nodeset)
            allowed = (
                0 if self._recently_raised(nodeset, now) else max(0, nodeset.spec.replicas - nodeset.spec.min_replicas)
            )
            victims: list[str] = []
            for node in members:
                seen.add(node.name)
                busy = any(must_leave(p) for p in self._bound.by_index("node", node.name))
                if busy or not is_ready(node):
                    self._empty_since.pop(node.name, None)
                    continue
                since = self._empty_since.setdefault(node.name, now)
                if now - since >= self.settings.unneeded_time and len(victims) < allowed:
                    victims.append(node.name)
            victims = victims[: self.settings.max_removals_per_round - removed]
            if victims:
                count = self._scaler.request_removal(nodeset.metadata.name, victims)
                removed += count
                if count:
                    self._event(
                        nodeset,
                        "Normal",
                        "ScaledDown",
                        f"removing {count} Nodes empty for {self.settings.unneeded_time:.0f} s: {', '.join(victims)}",
                    )
        self._empty_since = {k: v for k, v in self._empty_since.items() if k in seen}
        return removed

    def consolidate(self, sets: list[NodeSet], now: float) -> str | None:
        """Remove one underused Node whose pods all fit on the set's other Nodes, if one has been underused for
        the unneeded time (at most one per consolidation interval). Its pods must be controller-owned, without
        local storage, and their PodDisruptionBudgets must allow a disruption now; the drain then moves them.
        Returns the Node chosen, if any."""
        # One at a time: not while an earlier one's Node is still there (the cache may not show its removal yet).
        self._consolidating = {
            name: at for name, at in self._consolidating.items() if self._nodes.get(name) is not None and now - at < 600
        }
        if self._consolidating:
            return None
        seen: set[str] = set()
        chosen: tuple[NodeSet, NodeRecord] | None = None
        for nodeset in sets:
            nodeclass = self._nodeclasses.get(nodeset.spec.node_class_name)
            if (
                nodeclass is None
                or nodeset.spec.replicas <= nodeset.spec.min_replicas
                or self._recently_raised(nodeset, now)
            ):
                continue
            candidate = self._candidate(nodeset, nodeclass, 10**9)
            if candidate is None:
                continue
            ready = [n for n in self._members(nodeset) if is_ready(n) and not n.unschedulable]
            for node in ready:
                seen.add(node.name)
                pods = [p for p in self._bound.by_index("node", node.name) if must_leave(p)]
                if not pods or not self._underused(node, candidate.capacity):
                    self._underused_since.pop(node.name, None)
                    continue
                since = self._underused_since.setdefault(node.name, now)
                if (
                    chosen is None
                    and now - since >= self.settings.unneeded_time
                    and self._movable(node, pods, ready, candidate)
                ):
                    chosen = (nodeset, node)
        self._underused_since = {k: v for k, v in self._underused_since.items() if k in seen}
        if chosen is None or now - self._last_consolidation < self.settings.consolidation_interval:
            return None
        nodeset, node = chosen
        if self._scaler.request_removal(nodeset.metadata.name, [node.name]):
            self._last_consolidation = now
            self._consolidating[node.name] = now
            self._underused_since.pop(node.name, None)
            self._event(
                nodeset,
                "Normal",
                "Consolidating",
                f"Node {node.name} is underused and its pods fit on the others: draining and removing it",
            )
            return node.name
        return None

    def _recently_raised(self, nodeset: NodeSet, now: float) -> bool:
        """Whether this autoscaler raised the NodeSet within the unneeded time: nothing is taken away then (the
        cluster-autoscaler's scale-down-delay-after-add), so a consolidation cannot chase its own scale-up."""
        return now - self._scaled_up_at.get(nodeset.metadata.name, float("-inf")) < self.settings.unneeded_time

    def _underused(self, node: NodeRecord, capacity: dict[str, int]) -> bool:
        allocatable = _units(node.allocatable, capacity)
        for resource in ("cpu", "memory"):
            total = allocatable.get(resource, 0)
            used = sum(p.requests.get(resource, 0) for p in self._bound.by_index("node", node.name))
            if total and used / total >= self.settings.utilization_threshold:
                return False
        return True

    def _movable(self, node: NodeRecord, pods: list[PodRecord], ready: list[NodeRecord], candidate: _Candidate) -> bool:
        if any(not p.owner_kind or p.local_storage for p in pods):
            return False  # a bare pod would not come back; local data would be lost
        others = []
        for other in ready:
            if other.name == node.name:
                continue
            free = _units(other.allocatable, candidate.capacity)
            others.append(self._occupied(other, NodeShape(other.labels, candidate.taints, free)))
        for pod in sorted(pods, key=lambda p: p.requests.get("cpu", 0), reverse=True):
            moving = PendingPod(
                pod.namespace, pod.name, pod.uid, pod.labels, pod.requests, {}, (), (), (), True, pod.owner_kind, ""
            )
            target = next((shape for shape in others if fits_now(moving, shape)), None)
            if target is None:
                return False
            target.place(moving)
        return disruptions_allowed(self._client, pods)

    # -- status ------------------------------------------------------------------------------------------

    def _report_limits(self, sets: list[NodeSet], now: float) -> None:
        """Keep each NodeSet's ScalingLimited condition true to what holds its scale-up back."""
        total = sum(max(ns.spec.replicas, len(self._members(ns))) for ns in sets)
        cap = self.settings.max_total_nodes
        for nodeset in sets:
            spec = nodeset.spec
            nodeclass = self._nodeclasses.get(spec.node_class_name)
            if nodeclass is None:
                values = ("True", "NodeClassNotFound", f"NodeClass {spec.node_class_name} does not exist")
            elif self._capacity(nodeset, nodeclass) is None:
                values = ("True", INVALID_NODECLASS, self._invalid[nodeset.metadata.name])
            elif spec.max_replicas is not None and spec.replicas >= spec.max_replicas:
                values = ("True", "AtMaxReplicas", f"replicas is at maxReplicas {spec.max_replicas}")
            elif now < self._backoff_until.get(nodeset.metadata.name, 0.0):
                values = ("True", "BackingOff", "machines hit quota recently; other NodeSets are tried first")
            elif cap is not None and total >= cap:
                values = ("True", "ClusterCapReached", f"the KubeNode NodeSets have {total} of {cap} Nodes")
            else:
                values = ("False", "NotLimited", "scale-up is not held back")
            old = next((c for c in (nodeset.status.conditions if nodeset.status else []) if c.type == LIMITED), None)
            if old is not None and (old.status, old.reason, old.message) == values:
                continue
            condition = make_condition(LIMITED, values, old, nodeset.metadata.generation)
            others = [
                condition_json(c) for c in (nodeset.status.conditions if nodeset.status else []) if c.type != LIMITED
            ]
            patch = {
                "metadata": {"resourceVersion": nodeset.metadata.resource_version},
                "status": {"conditions": [*others, condition_json(condition)]},
            }
            try:
                self._client.patch(NODESETS, nodeset.metadata.name, patch, subresource="status")
            except ApiError as error:
                if not (error.conflict or error.not_found):
                    raise  # a conflict: the next round writes it from the fresh NodeSet

    # -- events ------------------------------------------------------------------------------------------

    def _event(self, nodeset: NodeSet, type_: EventType, reason: str, message: str) -> None:
        self._recorder.event(ObjectReference.to(nodeset), type_, reason, message)

    def _pod_event(self, pod: PendingPod, type_: EventType, reason: str, message: str) -> None:
        self._recorder.event(ObjectReference("Pod", pod.name, pod.uid, namespace=pod.namespace), type_, reason, message)


def _units(values: dict[str, str], fallback: dict[str, int]) -> dict[str, int]:
    return resource_list(values) if values else dict(fallback)


def _waste(candidate: _Candidate) -> float:
    """Least waste: the share of the new Nodes' CPU and memory left unused."""
    total = 0.0
    for resource in ("cpu", "memory"):
        capacity = candidate.capacity.get(resource, 0) * len(candidate.new_nodes)
        if capacity > 0:
            total += sum(max(0, s.free.get(resource, 0)) for s in candidate.new_nodes) / capacity
    return total
