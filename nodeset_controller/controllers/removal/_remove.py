"""Removing one Node of a NodeSet: cordon it and mark it as leaving, drain it a step per reconcile, delete it.

The NodeSetController calls :meth:`NodeRemover.start` for each victim (ScaleDown or Replace) and
:meth:`NodeRemover.step` on each reconcile for the Nodes marked as leaving (``kube-node.io/drain-started``).
A drain that outlasts ``drain.timeoutSeconds`` ends with a DrainTimeout Event and the Node is deleted anyway;
a Node with no machine behind it, or a set with no drain configured, is deleted at once. The delete is bound
to the Node's uid and recorded as an expected deletion, so the set does not count the Node while its
deletion is on its way; the Node's finalizer then has the NodeController destroy the machine.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ...api import ANNOTATION_DRAIN_STARTED, ANNOTATION_REMOVAL_REASON, LABEL_NODESET, NodeSet, now_rfc3339, parse_time
from ...failpoints import MID_DRAIN, failpoint
from ...kube import (
    NODES,
    ApiError,
    EventRecorder,
    EventType,
    Informer,
    KubeClient,
    NodeRecord,
    ObjectReference,
    PodRecord,
)
from .._expectations import Expectations
from ._drain import Drainer
from ._victims import machine_gone


class NodeRemover:
    """Cordons, drains and deletes the Nodes a NodeSet gives up."""

    def __init__(
        self,
        client: KubeClient,
        pods: Informer[PodRecord],
        expectations: Expectations,
        recorder: EventRecorder,
        *,
        requeue: Callable[[str, float], None],
    ) -> None:
        """``expectations`` are the NodeSetController's (a deletion is expected until the cache shows it);
        ``requeue(set, delay)`` looks at a set again when its Node changed under a write."""
        self._client = client
        self._drainer = Drainer(client, pods)
        self._expectations = expectations
        self._recorder = recorder
        self._requeue = requeue
        self._blocked_reported: dict[str, str] = {}  # node -> last eviction refusal reported

    def start(self, nodeset: NodeSet, node: NodeRecord, reason: str, why: str) -> bool:
        """Start removing ``node`` for ``reason`` (ScaleDown or Replace): cordon it, mark it as leaving and
        drain it (the next steps are :meth:`step`'s), or, with no machine behind it or no drain configured,
        delete it at once. False if the Node changed meanwhile (it is looked at again)."""
        drain = nodeset.spec.drain.timeout_seconds > 0 and not machine_gone(node)
        if not drain and reason == "ScaleDown":
            self.delete(nodeset, node, why)  # nothing to drain: no cordon needed either
            return True
        patch: dict[str, Any] = {
            "metadata": {
                "resourceVersion": node.resource_version,
                "annotations": {ANNOTATION_DRAIN_STARTED: now_rfc3339(micro=True), ANNOTATION_REMOVAL_REASON: reason},
            },
            "spec": {"unschedulable": True},
        }
        try:
            self._client.patch(NODES, node.name, patch)
        except ApiError as error:
            if error.not_found or error.conflict:
                self._requeue(nodeset.metadata.name, 0.05)
                return False
            raise
        if drain:
            self._event(
                node,
                "Normal",
                "DrainStarted",
                f"NodeSet {nodeset.metadata.name}: {why}; cordoned; evicting pods "
                f"(timeout {nodeset.spec.drain.timeout_seconds} s)",
            )
        else:
            self.delete(nodeset, node, f"{why}; no machine runs behind it, so there is nothing to drain")
        return True

    def step(self, nodeset: NodeSet, node: NodeRecord, now: float) -> bool:
        """One drain step for a leaving Node; deletes it once drained or timed out, or at once when no machine
        runs behind it any more. True while it is draining."""
        reason = node.annotations.get(ANNOTATION_REMOVAL_REASON, "ScaleDown")
        what = "replacement of a failed Node" if reason == "Replace" else "scale-down"
        timeout = nodeset.spec.drain.timeout_seconds
        if timeout <= 0 or machine_gone(node):
            self.delete(nodeset, node, what)
            return False
        started = parse_time(node.annotations.get(ANNOTATION_DRAIN_STARTED)) or now
        step = self._drainer.step(node, nodeset.spec.drain.pod_grace_period_seconds)
        failpoint(MID_DRAIN)
        if step.done:
            self._event(node, "Normal", "Drained", "all pods evicted; deleting the Node")
            self.delete(nodeset, node, what)
            return False
        if now - started >= timeout:
            self._event(
                node,
                "Warning",
                "DrainTimeout",
                f"drain did not finish within {timeout} s ({len(step.remaining)} pods left: "
                f"{', '.join(sorted(step.remaining)[:5])}); deleting the Node anyway",
            )
            self.delete(nodeset, node, f"{what} after the drain timeout")
            return False
        if step.blocked:
            summary = "; ".join(f"{pod}: {why}" for pod, why in sorted(step.blocked.items())[:3])
            if self._blocked_reported.get(node.name) != summary:
                self._blocked_reported[node.name] = summary
                self._event(node, "Warning", "EvictionBlocked", summary)
        return True

    def delete(self, nodeset: NodeSet | None, node: NodeRecord, why: str) -> None:
        """Delete ``node`` (bound to its uid), expecting its deletion; with ``nodeset``, say so on it."""
        owner = node.labels.get(LABEL_NODESET, "")
        self._expectations.expect_deletion(owner, node.name)
        try:
            self._client.delete(NODES, node.name, preconditions={"uid": node.uid})
        except ApiError as error:
            if not (error.not_found or error.conflict):
                self._expectations.observed(owner, node.name, present=False)
                raise
        self._blocked_reported.pop(node.name, None)
        if nodeset is not None:
            self._recorder.event(
                ObjectReference.to(nodeset), "Normal", "SuccessfulDelete", f"deleted Node {node.name} ({why})"
            )

    def _event(self, node: NodeRecord, type_: EventType, reason: str, message: str) -> None:
        self._recorder.event(ObjectReference("Node", node.name, node.uid), type_, reason, message)
