"""Scale-up: new Nodes for the pending pods that fit nowhere yet (steps 1 to 3 of a round, see ``_pending_pods``).

1. **room first**: each pending pod is placed, largest first, on what is left of a Node already in a
   KubeNode-mode NodeSet, Ready or still on its way, and on the replicas asked for whose Nodes do not exist
   yet; what fits there orders nothing, so a burst never orders Nodes twice.
2. **simulate new Nodes**: for the rest, every candidate NodeSet packs the pods that could run on its Nodes
   into new Nodes (``_scheduling.pack``); the expander (``_expanders``) picks the candidate, whose pods are
   then taken, and the rest go round again. ``maxReplicas`` and the cluster-wide cap hold.
3. **act and explain**: ``replicas`` is raised through the NodeSetScaler; the pods that triggered it get an
   Event; a pod that fits no NodeSet gets one Event saying why, per NodeSet.

A NodeSet whose machines hit quota is backed off (only its Ready Nodes' room counts) for ``backoff`` seconds.
"""

from __future__ import annotations

import logging
import time

from ..api import ANNOTATION_MACHINE_ERROR_CLASS, NodeClass, NodeSet
from ..kube import ApiError, Informer, NodeSetConflictError, NodeSetScaler
from ._autoscaling import Candidate, NodeSetView, PendingPodAutoscalerSettings, units
from ._expanders import expand
from ._scheduling import NodeShape, PendingPod, fits_now, pack, resource_misfit, static_misfit
from .removal import is_failed, is_ready

log = logging.getLogger(__name__)


class ScaleUp:
    """Raises KubeNode-mode NodeSets for the pending pods, and explains the pods it cannot place."""

    def __init__(
        self,
        pending: Informer[PendingPod],
        nodeclasses: Informer[NodeClass],
        view: NodeSetView,
        scaler: NodeSetScaler,
    ) -> None:
        self._pending = pending
        self._nodeclasses = nodeclasses
        self._view = view
        self._scaler = scaler
        self._explained: dict[str, str] = {}  # pod uid -> the explanation last given
        self.scaled_up_at: dict[str, float] = {}  #: NodeSet -> when it was last raised (monotonic)
        self.backoff_until: dict[str, float] = {}  #: NodeSet -> until when it is backed off (monotonic)
        self.decisions: list[tuple[float, str, int, int]] = []  #: (time, NodeSet, from, to), for tests/benchmarks

    def run(self, sets: list[NodeSet], settings: PendingPodAutoscalerSettings) -> dict[str, int]:
        """Order new Nodes for the pending pods that fit nowhere yet; returns {NodeSet: new replicas}."""
        pods = [p for p in self._pending.list() if p.unschedulable and p.owner_kind != "DaemonSet"]
        if not pods:
            return {}
        pods.sort(key=lambda p: (p.requests.get("cpu", 0), p.requests.get("memory", 0)), reverse=True)
        now = time.monotonic()
        total_nodes = self._view.total_nodes(sets)
        cluster_room = settings.max_total_nodes - total_nodes if settings.max_total_nodes is not None else 10**9
        candidates: list[Candidate] = []
        existing: list[tuple[Candidate, NodeShape]] = []
        for nodeset in sets:
            nodeclass = self._nodeclasses.get(nodeset.spec.node_class_name)
            if nodeclass is None:
                continue
            candidate = self._view.candidate(nodeset, nodeclass, cluster_room)
            if candidate is None:
                continue
            backing_off = self._backing_off(nodeset, now, settings.backoff)
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

        chosen: list[Candidate] = []
        while unplaced:  # 2. new Nodes, the expander's pick first
            options = [c for c in candidates if c.room > 0 and c not in chosen]
            for candidate in options:
                candidate.new_nodes, candidate.pods = pack(
                    unplaced, candidate.labels, candidate.taints, candidate.capacity, candidate.room
                )
            options = [c for c in options if c.new_nodes]
            if not options:
                break
            best = expand(settings.expander, options)
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
            self.scaled_up_at[name] = time.monotonic()
            self.decisions.append((time.time(), name, before, after))
            self._view.event(
                candidate.nodeset,
                "Normal",
                "ScaledUp",
                f"{len(candidate.pods)} pending pods: replicas {before} -> {after}",
            )
            for pod in candidate.pods:
                self._view.pod_event(
                    pod, "Normal", "TriggeredScaleUp", f"pod triggered scale-up: NodeSet {name} {before} -> {after}"
                )
        for pod in unplaced:
            self._explain(pod, candidates)
        return decided

    def _room_in(self, candidate: Candidate, *, ready_only: bool) -> list[NodeShape]:
        """What is left on the set's Nodes (Ready or on their way) and on the replicas not yet created; with
        ``ready_only`` (the set is backing off after quota failures) only on Ready Nodes."""
        members = self._view.members(candidate.nodeset)
        shapes = []
        now = time.time()
        spec = candidate.nodeset.spec
        for node in members:
            if node.unschedulable or is_failed(node, now, spec) or (ready_only and not is_ready(node)):
                continue  # not coming: its machine failed
            free = dict(candidate.capacity) if not is_ready(node) else units(node.allocatable, candidate.capacity)
            shapes.append(self._view.occupied(node, NodeShape(node.labels or candidate.labels, candidate.taints, free)))
        for _ in range(0 if ready_only else max(0, candidate.nodeset.spec.replicas - len(members))):
            shapes.append(NodeShape(candidate.labels, candidate.taints, dict(candidate.capacity)))
        return shapes

    def _raise(self, name: str, count: int) -> tuple[int, int]:
        """Raise replicas by ``count``, capped at maxReplicas as the fresh read says (never lowered)."""

        def raised(nodeset: NodeSet) -> int:
            replicas, maximum = nodeset.spec.replicas, nodeset.spec.max_replicas
            return max(replicas, replicas + count if maximum is None else min(replicas + count, maximum))

        resized = self._scaler.resize(name, raised)
        return resized.before, resized.after

    def _backing_off(self, nodeset: NodeSet, now: float, backoff: float) -> bool:
        name = nodeset.metadata.name
        quota = any(
            n.annotations.get(ANNOTATION_MACHINE_ERROR_CLASS) == "OutOfResources" for n in self._view.members(nodeset)
        )
        if quota and (name not in self.backoff_until or now >= self.backoff_until[name]):
            self.backoff_until[name] = now + backoff
            self._view.event(
                nodeset,
                "Warning",
                "ScaleUpBackoff",
                f"machines of this NodeSet hit quota; trying other NodeSets for {backoff:.0f} s",
            )
        return now < self.backoff_until.get(name, 0.0)

    def _explain(self, pod: PendingPod, candidates: list[Candidate]) -> None:
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
        reasons.extend(
            f"NodeSet {name}: {problem}" for name, problem in self._view.invalid.items() if name not in offered
        )
        if not candidates and not reasons:
            reasons.append("no NodeSet has autoscaling.mode KubeNode and an existing NodeClass")
        if not reasons:
            return  # it fits somewhere: the scheduler will place it once the Nodes are Ready
        message = "pod fits no NodeSet: " + "; ".join(sorted(reasons))
        if self._explained.get(pod.uid) != message:
            self._explained[pod.uid] = message
            self._view.pod_event(pod, "Normal", "NotTriggerScaleUp", message)
