"""The expanders: which of the NodeSets that could take the pending pods gets the new Nodes.

``least-waste`` (the default): among the options within :data:`WASTE_TOLERANCE` of the least waste (the share
of the new Nodes' CPU and memory left unused), the one with the fewest new Nodes per pod; ``priority``: the
highest ``spec.autoscaling.priority``; ``price``: the least ``pricePerHour`` per pod placed (a NodeClass
without a price comes last). Ties go to the least waste.
"""

from __future__ import annotations

from ._autoscaling import Candidate

EXPANDERS = ("least-waste", "priority", "price")
#: least-waste treats options whose waste is this close to the least as equally good, and then prefers fewer Nodes.
WASTE_TOLERANCE = 0.5


def expand(expander: str, options: list[Candidate]) -> Candidate:
    """The expander's choice. least-waste: among the options within a tolerance of the least waste, the
    one with the fewest new Nodes (room left on a new Node is filled by the next pods first, so a strict
    least-waste over a part of a burst would order many small Nodes); priority; price per pod."""
    if expander == "priority":
        return min(options, key=lambda c: (-c.nodeset.spec.autoscaling.priority, waste(c)))
    if expander == "price":

        def per_pod(c: Candidate) -> float:
            price = c.nodeclass.spec.price_per_hour
            return (price if price is not None else float("inf")) * len(c.new_nodes) / len(c.pods)

        return min(options, key=lambda c: (per_pod(c), waste(c)))
    least = min(waste(c) for c in options)
    close = [c for c in options if waste(c) <= least + WASTE_TOLERANCE]
    return min(close, key=lambda c: (len(c.new_nodes) / max(1, len(c.pods)), waste(c)))


def waste(candidate: Candidate) -> float:
    """Least waste: the share of the new Nodes' CPU and memory left unused."""
    total = 0.0
    for resource in ("cpu", "memory"):
        capacity = candidate.capacity.get(resource, 0) * len(candidate.new_nodes)
        if capacity > 0:
            total += sum(max(0, s.free.get(resource, 0)) for s in candidate.new_nodes) / capacity
    return total
