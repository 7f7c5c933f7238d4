"""The caps on removing Nodes: how many failed Nodes a NodeSet may remove at once, and whether the pods'
PodDisruptionBudgets allow moving them now.

Do no harm: :func:`remediation_budget` caps how many failed Nodes a set may remove at once
(``healthCheck.maxUnhealthy``). When more look failed than the cap, the fault is more likely in the observer
(the control plane, the cloud's API, a deleted NodeClass) than in the fleet, so nothing is removed. The one
exception is a Node whose machine was never made (its creation was refused): it has nothing to lose.

A drain honours PodDisruptionBudgets evicting pod by pod (see ``_drain``); a consolidation, which removes a
Node nobody asked to lose, starts only when :func:`disruptions_allowed` says every budget allows it at once.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from ...api import NodeSetSpec
from ...kube import KubeClient, NodeRecord, PodRecord, Resource
from .._scheduling import LabelSelector
from ._victims import Failure, failure_of, looks_unhealthy

PDBS = Resource("policy", "v1", "poddisruptionbudgets", namespaced=True)


def max_unhealthy(spec: NodeSetSpec, total: int) -> int:
    """``healthCheck.maxUnhealthy`` for a set of ``total`` Nodes: a count, or a percentage rounded up."""
    value = spec.health_check.max_unhealthy
    if isinstance(value, int):
        return value
    percent = int(value.rstrip("%"))
    return math.ceil(total * percent / 100)


@dataclass(frozen=True)
class RemediationBudget:
    """Whether a NodeSet may remove its failed Nodes now, and the condition that says so."""

    allowed: bool
    failed: int
    total: int
    limit: int

    @property
    def message(self) -> str:
        """The RemediationAllowed condition's message."""
        if self.allowed:
            return f"{self.failed} of {self.total} Nodes failed; up to {self.limit} may be removed or replaced at once"
        return (
            f"{self.failed} of {self.total} Nodes look failed or unhealthy, more than healthCheck.maxUnhealthy allows "
            f"({self.limit}): removing none of them, since a fault this wide is more likely in the control "
            "plane or the cloud's API than in the machines"
        )


def remediation_budget(spec: NodeSetSpec, failed: int, total: int) -> RemediationBudget:
    """How many of ``failed`` (out of ``total``) Nodes may be removed for failure: all, or none."""
    limit = max_unhealthy(spec, total)
    return RemediationBudget(allowed=failed <= limit, failed=failed, total=total, limit=limit)


def removable_failures(
    spec: NodeSetSpec, active: Sequence[NodeRecord], in_flight: int, now: float
) -> tuple[dict[str, Failure], RemediationBudget]:
    """The failed Nodes among ``active`` that may be removed now (by name), and the budget that decided it;
    ``in_flight`` replacements under way count as failed and as members."""
    failures = {n.name: f for n in active if (f := failure_of(n, now, spec)) is not None}
    # A Node whose creation was refused has no machine to lose, so it is outside the cap; every other
    # failure may be the observer's (a cloud API that lists nothing, a control plane that marks all Unknown).
    refused = {name for name, f in failures.items() if f.reason == "CreationRefused"}
    looking = [n for n in active if n.name not in refused and looks_unhealthy(n, now, spec)]
    budget = remediation_budget(spec, len(looking) + in_flight, len(active) + in_flight)
    if not budget.allowed:
        failures = {name: f for name, f in failures.items() if name in refused}
    return failures, budget


def disruptions_allowed(client: KubeClient, pods: Sequence[PodRecord]) -> bool:
    """Whether every PodDisruptionBudget that covers one of ``pods`` allows a disruption now."""
    for namespace in {p.namespace for p in pods}:
        budgets = client.list(PDBS, namespace)["items"]
        for budget in budgets:
            selector = LabelSelector.from_json(budget.get("spec", {}).get("selector"))
            covered = [p for p in pods if p.namespace == namespace and selector.matches(p.labels)]
            if covered and int((budget.get("status") or {}).get("disruptionsAllowed", 0)) < len(covered):
                return False
    return True
