"""kube-node's own autoscaler: NodeSets in ``autoscaling.mode: KubeNode`` scale from pending pods.

Each round (a short batching window after the scheduler marks pods unschedulable, so a burst is one
decision, and once a second besides), one module a step:

1. **room first** (``_scale_up``): each pending pod is placed, largest first, on what is left of a Node
   already in such a NodeSet, Ready or still on its way (created, not Ready yet), and on the replicas asked
   for whose Nodes do not exist yet. What fits there orders nothing, so a burst never orders nodes twice.
2. **simulate new nodes** (``_scale_up``, ``_scheduling``, ``_expanders``): for the rest, every candidate
   NodeSet (its NodeClass exists; not backing off after quota failures) packs the pods that could run on its
   Nodes (resources, node selector, required node affinity, tolerations, hostname anti-affinity) into new
   Nodes, first-fit decreasing; the expander picks the candidate (least waste by default, or priority, or
   price), whose pods are then taken, and the rest go round again. ``maxReplicas`` and the cluster-wide cap
   hold.
3. **act and explain** (``_scale_up``): ``replicas`` is raised through the NodeSetScaler
   (nodeset_controller.kube, the one writer of a NodeSet's size: the scale subresource, optimistic
   concurrency); pods that triggered it get an Event naming the NodeSet and its new size; a pod that fits no
   NodeSet gets one Event saying why, per NodeSet (once per pod and reason).
4. **scale down** (``_consolidation``): a Ready Node that has run only DaemonSet and mirror pods for
   ``unneeded_time`` is removed through the same path as the gRPC server's DeleteNodes
   (``NodeSetScaler.request_removal``: named, replicas lowered), never below minReplicas; so is an underused
   Node whose pods fit on the set's other Nodes (consolidation).
5. **status** (here): each NodeSet's ScalingLimited condition says what holds its scale-up back.

What the steps share (the settings, the view of a NodeSet and its Nodes) is ``_autoscaling``'s. NodeSets in
any other mode are never touched, so this autoscaler and the cluster-autoscaler never fight.
"""

from __future__ import annotations

import logging
import threading
import time

from .. import metrics
from ..api import MODE_KUBE_NODE, NodeClass, NodeSet, condition_json, make_condition
from ..kube import (
    NODESETS,
    ApiError,
    EventRecorder,
    Informer,
    KubeClient,
    NodeRecord,
    NodeSetScaler,
    NotLeaderError,
    PodRecord,
)
from ._autoscaling import INVALID_NODECLASS, NodeSetView, PendingPodAutoscalerSettings
from ._consolidation import ScaleDown
from ._expanders import EXPANDERS
from ._scale_up import ScaleUp
from ._scheduling import PendingPod

log = logging.getLogger(__name__)

_CONTROLLER = "pending-pod-autoscaler"

#: The NodeSet condition this autoscaler owns: whether something holds its scale-up back.
LIMITED = "ScalingLimited"


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
        scaler = scaler or NodeSetScaler(client, nodesets)
        self._nodesets = nodesets
        self._nodeclasses = nodeclasses
        self.settings = settings or PendingPodAutoscalerSettings()
        if self.settings.expander not in EXPANDERS:
            raise ValueError(f"unknown expander {self.settings.expander!r}; one of {', '.join(EXPANDERS)}")
        self._wake = threading.Event()
        self._view = NodeSetView(nodes, bound, recorder)
        self._scale_up = ScaleUp(pending, nodeclasses, self._view, scaler)
        self._scale_down = ScaleDown(client, nodes, nodeclasses, self._view, scaler, self._scale_up.scaled_up_at)
        pending.add_handler(self._on_pending)

    @property
    def decisions(self) -> list[tuple[float, str, int, int]]:
        """(time, NodeSet, from, to) of every raise, for tests and benchmarks."""
        return self._scale_up.decisions

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

    def scale_up(self, sets: list[NodeSet]) -> dict[str, int]:
        """Order new Nodes for the pending pods that fit nowhere yet; returns {NodeSet: new replicas}."""
        return self._scale_up.run(sets, self.settings)

    def scale_down(self, sets: list[NodeSet], now: float) -> int:
        """Remove Nodes empty for ``unneeded_time`` (bounded per round, never below minReplicas)."""
        return self._scale_down.remove_empty(sets, now, self.settings)

    def consolidate(self, sets: list[NodeSet], now: float) -> str | None:
        """Remove one underused Node whose pods all fit on the set's other Nodes (see ``_consolidation``);
        returns the Node chosen, if any."""
        return self._scale_down.consolidate(sets, now, self.settings)

    # -- status ------------------------------------------------------------------------------------------

    def _report_limits(self, sets: list[NodeSet], now: float) -> None:
        """Keep each NodeSet's ScalingLimited condition true to what holds its scale-up back."""
        total = self._view.total_nodes(sets)
        cap = self.settings.max_total_nodes
        for nodeset in sets:
            spec = nodeset.spec
            nodeclass = self._nodeclasses.get(spec.node_class_name)
            if nodeclass is None:
                values = ("True", "NodeClassNotFound", f"NodeClass {spec.node_class_name} does not exist")
            elif self._view.capacity(nodeset, nodeclass) is None:
                values = ("True", INVALID_NODECLASS, self._view.invalid[nodeset.metadata.name])
            elif spec.max_replicas is not None and spec.replicas >= spec.max_replicas:
                values = ("True", "AtMaxReplicas", f"replicas is at maxReplicas {spec.max_replicas}")
            elif now < self._scale_up.backoff_until.get(nodeset.metadata.name, 0.0):
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


__all__ = ["PendingPodAutoscaler", "PendingPodAutoscalerSettings"]
