"""Why a Node goes, and in which order: which Nodes count as failed, and which of a NodeSet's go first.

Victims are taken in this order, and within each group by the NodeSet's deletePolicy:

1. Nodes asked for by name: listed in the NodeSet's ``kube-node.io/delete-requested-nodes`` (the autoscaler
   gRPC server's DeleteNodes, the pending-pod autoscaler's empty and underused Nodes, failed instances given
   back), or annotated ``kube-node.io/delete-requested`` (by a person);
2. Nodes that failed (see :func:`failure_of`);
3. Nodes that are not Ready;
4. the rest: Oldest (created first), Newest (created last) or Random.

Do no harm: a Node counts as failed only for a reason kube-node can show on it, never for a moment of
NotReady or for an error reading the cloud; how many failed Nodes a set may remove at once is ``_budget``'s.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

from ...api import (
    ANNOTATION_DELETE_REQUESTED,
    ANNOTATION_MACHINE_ERROR,
    ANNOTATION_MACHINE_ERROR_CLASS,
    ANNOTATION_MACHINE_ERROR_CODE,
    ANNOTATION_MACHINE_ERROR_TIME,
    ANNOTATION_MACHINE_ID,
    ANNOTATION_MACHINE_PHASE,
    TAINT_STARTUP,
    DeletePolicy,
    NodeSetSpec,
    parse_time,
)
from ...kube import NodeRecord

#: Error classes after which a machine will not come by retrying the same create soon.
_REFUSED_CLASSES = ("OutOfResources", "InvalidConfiguration")
#: Error codes that describe kube-node's view of the machine (a missing NodeClass, a failed read of the
#: cloud), not the machine: they never make a Node failed.
_OBSERVER_CODES = ("NODE_CLASS_NOT_FOUND", "MACHINE_UNKNOWN", "MACHINE_DESTROY_BLOCKED", "MACHINE_DESTROY_FAILED")


@dataclass(frozen=True)
class Failure:
    """Why a Node counts as failed, as its Events and conditions say it."""

    reason: str  #: MachineFailed, MachineVanished, CreationRefused, NotRegistered or Unhealthy
    message: str
    #: When the Node began to count as failed (epoch seconds): the error recorded, the registration timeout or
    #: the unhealthy condition's timeout run out.
    since: float = 0.0


def _error_time(node: NodeRecord) -> float:
    """When kube-node recorded the Node's machine error (its creation time for errors recorded before the
    time was)."""
    return parse_time(node.annotations.get(ANNOTATION_MACHINE_ERROR_TIME)) or node.created


def is_ready(node: NodeRecord) -> bool:
    """Ready as a NodeSet counts it: the kubelet reports Ready and the startup taint is gone."""
    return node.ready is True and not node.has_taint(TAINT_STARTUP)


def machine_gone(node: NodeRecord) -> bool:
    """Whether the Node has no machine to drain: the provider says it failed or vanished, or none was ever
    recorded and no kubelet reports from it (a Ready Node's machine runs, recorded or not)."""
    if node.annotations.get(ANNOTATION_MACHINE_PHASE) == "Failed":
        return True
    return ANNOTATION_MACHINE_ID not in node.annotations and node.ready is not True


def failure_of(node: NodeRecord, now: float, spec: NodeSetSpec) -> Failure | None:
    """Why the Node counts as failed, or None. Only for reasons kube-node can show:

    - its machine failed or vanished (the provider said so);
    - its creation was refused (quota, bad configuration) and no machine is recorded;
    - it never became Ready (it still carries the startup taint) within ``registrationTimeoutSeconds``;
    - it was Ready, and one of ``healthCheck.unhealthyConditions`` has held for its timeout, measured from
      the condition's last transition.
    """
    annotations = node.annotations
    if annotations.get(ANNOTATION_MACHINE_PHASE) == "Failed":
        error = annotations.get(ANNOTATION_MACHINE_ERROR, "its machine failed")
        if annotations.get(ANNOTATION_MACHINE_ERROR_CODE) == "MACHINE_NOT_FOUND":
            return Failure("MachineVanished", error, _error_time(node))
        return Failure("MachineFailed", error, _error_time(node))
    if (
        ANNOTATION_MACHINE_ID not in annotations
        and annotations.get(ANNOTATION_MACHINE_ERROR_CLASS) in _REFUSED_CLASSES
        and annotations.get(ANNOTATION_MACHINE_ERROR_CODE) not in _OBSERVER_CODES
    ):
        error = annotations.get(ANNOTATION_MACHINE_ERROR, "its machine was refused")
        return Failure("CreationRefused", error, _error_time(node))
    if node.has_taint(TAINT_STARTUP):  # never Ready yet: only the registration timeout applies
        timeout = spec.replacement.registration_timeout_seconds
        if node.ready is not True and now - node.created > timeout:
            return Failure(
                "NotRegistered", f"it did not become Ready within {timeout} s of its creation", node.created + timeout
            )
        return None
    for condition in spec.health_check.unhealthy_conditions:
        for kind, status, since in node.conditions:
            if kind != condition.type or status != condition.status:
                continue
            began = since if since is not None else node.created
            held = now - began
            if held >= condition.timeout_seconds:
                return Failure(
                    "Unhealthy",
                    f"its condition {kind} has been {status} for {held:.0f} s "
                    f"(healthCheck timeout {condition.timeout_seconds} s)",
                    began + condition.timeout_seconds,
                )
    return None


def looks_unhealthy(node: NodeRecord, now: float, spec: NodeSetSpec) -> bool:
    """Whether the Node failed or is on its way: one of the unhealthy conditions holds, however briefly. The
    cap counts these, so that Nodes going dark together (a partition, a control plane that marks them all
    Unknown) hold each other back even though their timeouts run out one after another."""
    if failure_of(node, now, spec) is not None:
        return True
    if node.has_taint(TAINT_STARTUP):
        return False
    return any(
        kind == condition.type and status == condition.status
        for condition in spec.health_check.unhealthy_conditions
        for kind, status, _ in node.conditions
    )


def is_failed(node: NodeRecord, now: float, spec: NodeSetSpec) -> bool:
    """Whether :func:`failure_of` finds a reason."""
    return failure_of(node, now, spec) is not None


def choose_victims(
    nodes: Sequence[NodeRecord],
    count: int,
    spec: NodeSetSpec,
    *,
    now: float,
    requested: set[str] | frozenset[str] = frozenset(),
    rng: random.Random | None = None,
) -> list[NodeRecord]:
    """The ``count`` Nodes to remove first, in the documented order."""
    if count <= 0:
        return []
    rng = rng or random.Random()
    shuffled = list(nodes)
    rng.shuffle(shuffled)  # Random policy; also breaks ties fairly for the others
    policy: DeletePolicy = spec.delete_policy

    def group(node: NodeRecord) -> int:
        if node.name in requested or ANNOTATION_DELETE_REQUESTED in node.annotations:
            return 0
        if is_failed(node, now, spec):
            return 1
        if not is_ready(node):
            return 2
        return 3

    def by_policy(node: NodeRecord) -> float:
        if policy == "Oldest":
            return node.created
        if policy == "Newest":
            return -node.created
        return 0.0  # Random: the shuffle decides

    ordered = sorted(shuffled, key=lambda n: (group(n), by_policy(n)))
    return ordered[:count]
