"""Scale-down and consolidation: the Nodes the pending-pod autoscaler finds unneeded (step 4 of a round).

- **empty**: a Ready Node that has run only DaemonSet and mirror pods for ``unneeded_time`` goes, never below
  minReplicas and at most ``max_removals_per_round`` a round;
- **underused**: a Ready Node using less than ``utilization_threshold`` of its CPU and memory for
  ``unneeded_time``, whose pods are all controller-owned, without local storage, fit on the set's other
  Nodes and may be disrupted now (their PodDisruptionBudgets, ``removal.disruptions_allowed``), goes, one at
  a time and at most one per ``consolidation_interval``.

Nothing goes from a NodeSet raised within ``unneeded_time``. Both name the Node through
``NodeSetScaler.request_removal`` (named, replicas lowered), the path of the gRPC server's DeleteNodes; the
NodeSetController then drains and deletes it (the ``removal`` package).
"""

from __future__ import annotations

from collections.abc import Mapping

from ..api import NodeClass, NodeSet
from ..kube import Informer, KubeClient, NodeRecord, NodeSetScaler, PodRecord
from ._autoscaling import Candidate, NodeSetView, PendingPodAutoscalerSettings, units
from ._scheduling import NodeShape, PendingPod, fits_now
from .removal import disruptions_allowed, is_ready, must_leave


class ScaleDown:
    """Removes the empty and the underused Nodes of KubeNode-mode NodeSets."""

    def __init__(  # noqa: PLR0917 - what it reads and writes, each named
        self,
        client: KubeClient,
        nodes: Informer[NodeRecord],
        nodeclasses: Informer[NodeClass],
        view: NodeSetView,
        scaler: NodeSetScaler,
        raised_at: Mapping[str, float],
    ) -> None:
        """``raised_at`` says when the scale-up last raised each NodeSet (monotonic)."""
        self._client = client
        self._nodes = nodes
        self._nodeclasses = nodeclasses
        self._view = view
        self._scaler = scaler
        self._raised_at = raised_at
        self._empty_since: dict[str, float] = {}
        self._underused_since: dict[str, float] = {}
        self._last_consolidation = 0.0
        self._consolidating: dict[str, float] = {}  # Node -> when its removal was asked for

    def remove_empty(self, sets: list[NodeSet], now: float, settings: PendingPodAutoscalerSettings) -> int:
        """Remove Nodes empty for ``unneeded_time`` (bounded per round, never below minReplicas)."""
        removed = 0
        seen: set[str] = set()
        for nodeset in sets:
            members = self._view.members(nodeset)
            allowed = (
                0
                if self._recently_raised(nodeset, now, settings.unneeded_time)
                else max(0, nodeset.spec.replicas - nodeset.spec.min_replicas)
            )
            victims: list[str] = []
            for node in members:
                seen.add(node.name)
                busy = any(must_leave(p) for p in self._view.bound(node))
                if busy or not is_ready(node):
                    self._empty_since.pop(node.name, None)
                    continue
                since = self._empty_since.setdefault(node.name, now)
                if now - since >= settings.unneeded_time and len(victims) < allowed:
                    victims.append(node.name)
            victims = victims[: settings.max_removals_per_round - removed]
            if victims:
                count = self._scaler.request_removal(nodeset.metadata.name, victims)
                removed += count
                if count:
                    self._view.event(
                        nodeset,
                        "Normal",
                        "ScaledDown",
                        f"removing {count} Nodes empty for {settings.unneeded_time:.0f} s: {', '.join(victims)}",
                    )
        self._empty_since = {k: v for k, v in self._empty_since.items() if k in seen}
        return removed

    def consolidate(self, sets: list[NodeSet], now: float, settings: PendingPodAutoscalerSettings) -> str | None:
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
                or self._recently_raised(nodeset, now, settings.unneeded_time)
            ):
                continue
            candidate = self._view.candidate(nodeset, nodeclass, 10**9)
            if candidate is None:
                continue
            ready = [n for n in self._view.members(nodeset) if is_ready(n) and not n.unschedulable]
            for node in ready:
                seen.add(node.name)
                pods = [p for p in self._view.bound(node) if must_leave(p)]
                if not pods or not self._underused(node, candidate.capacity, settings.utilization_threshold):
                    self._underused_since.pop(node.name, None)
                    continue
                since = self._underused_since.setdefault(node.name, now)
                if (
                    chosen is None
                    and now - since >= settings.unneeded_time
                    and self._movable(node, pods, ready, candidate)
                ):
                    chosen = (nodeset, node)
        self._underused_since = {k: v for k, v in self._underused_since.items() if k in seen}
        if chosen is None or now - self._last_consolidation < settings.consolidation_interval:
            return None
        nodeset, node = chosen
        if self._scaler.request_removal(nodeset.metadata.name, [node.name]):
            self._last_consolidation = now
            self._consolidating[node.name] = now
            self._underused_since.pop(node.name, None)
            self._view.event(
                nodeset,
                "Normal",
                "Consolidating",
                f"Node {node.name} is underused and its pods fit on the others: draining and removing it",
            )
            return node.name
        return None

    def _recently_raised(self, nodeset: NodeSet, now: float, unneeded_time: float) -> bool:
        """Whether this autoscaler raised the NodeSet within the unneeded time: nothing is taken away then (the
        cluster-autoscaler's scale-down-delay-after-add), so a consolidation cannot chase its own scale-up."""
        return now - self._raised_at.get(nodeset.metadata.name, float("-inf")) < unneeded_time

    def _underused(self, node: NodeRecord, capacity: dict[str, int], threshold: float) -> bool:
        allocatable = units(node.allocatable, capacity)
        for resource in ("cpu", "memory"):
            total = allocatable.get(resource, 0)
            used = sum(p.requests.get(resource, 0) for p in self._view.bound(node))
            if total and used / total >= threshold:
                return False
        return True

    def _movable(self, node: NodeRecord, pods: list[PodRecord], ready: list[NodeRecord], candidate: Candidate) -> bool:
        if any(not p.owner_kind or p.local_storage for p in pods):
            return False  # a bare pod would not come back; local data would be lost
        others = []
        for other in ready:
            if other.name == node.name:
                continue
            free = units(other.allocatable, candidate.capacity)
            others.append(self._view.occupied(other, NodeShape(other.labels, candidate.taints, free)))
        for pod in sorted(pods, key=lambda p: p.requests.get("cpu", 0), reverse=True):
            moving = PendingPod(
                pod.namespace, pod.name, pod.uid, pod.labels, pod.requests, {}, (), (), (), True, pod.owner_kind, ""
            )
            target = next((shape for shape in others if fits_now(moving, shape)), None)
            if target is None:
                return False
            target.place(moving)
        return disruptions_allowed(self._client, pods)
