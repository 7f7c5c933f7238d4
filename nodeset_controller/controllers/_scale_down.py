"""NodeSet scale-down: which Nodes go first, and which count as failed.

Victims are taken in this order, and within each group by the NodeSet's deletePolicy:

1. Nodes asked for by name: listed in the NodeSet's ``kube-node.io/delete-requested-nodes`` (the autoscaler
   provider's DeleteNodes), or annotated ``kube-node.io/delete-requested`` (by a person);
2. Nodes whose machine failed (see :func:`is_failed`);
3. Nodes that are not Ready;
4. the rest: Oldest (created first), Newest (created last) or Random.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from ..api import (
    ANNOTATION_DELETE_REQUESTED,
    ANNOTATION_MACHINE_ERROR_CLASS,
    ANNOTATION_MACHINE_PHASE,
    TAINT_STARTUP,
    DeletePolicy,
)
from ..kube import NodeRecord

#: Error classes after which a Node's machine will not come by retrying the same thing soon.
_PERMANENT_ERROR_CLASSES = ("OutOfResources", "InvalidConfiguration")


def is_ready(node: NodeRecord) -> bool:
    """Ready as a NodeSet counts it: the kubelet reports Ready and the startup taint is gone."""
    return node.ready is True and not node.has_taint(TAINT_STARTUP)


def is_failed(node: NodeRecord, now: float, registration_timeout: float) -> bool:
    """Whether the Node's machine failed: it crashed or vanished, its creation was refused for quota or bad
    configuration, or its kubelet has not reported Ready within the registration timeout."""
    if node.annotations.get(ANNOTATION_MACHINE_PHASE) == "Failed":
        return True
    if node.annotations.get(ANNOTATION_MACHINE_ERROR_CLASS) in _PERMANENT_ERROR_CLASSES:
        return True
    return node.ready is not True and now - node.created > registration_timeout


def choose_victims(
    nodes: Sequence[NodeRecord],
    count: int,
    policy: DeletePolicy,
    *,
    now: float,
    registration_timeout: float,
    requested: set[str] | frozenset[str] = frozenset(),
    rng: random.Random | None = None,
) -> list[NodeRecord]:
    """The ``count`` Nodes to remove first, in the documented order."""
    if count <= 0:
        return []
    rng = rng or random.Random()
    shuffled = list(nodes)
    rng.shuffle(shuffled)  # Random policy; also breaks ties fairly for the others

    def group(node: NodeRecord) -> int:
        if node.name in requested or ANNOTATION_DELETE_REQUESTED in node.annotations:
            return 0
        if is_failed(node, now, registration_timeout):
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
