"""Status conditions (metav1.Condition), as every kube-node controller writes them."""

from __future__ import annotations

from typing import Literal, cast

from ._time import now_rfc3339
from ._types import Condition


def condition_json(condition: Condition) -> dict[str, object]:
    """A condition as the API server takes it."""
    entry: dict[str, object] = {
        "type": condition.type,
        "status": condition.status,
        "reason": condition.reason,
        "message": condition.message,
        "lastTransitionTime": condition.last_transition_time,
    }
    if condition.observed_generation is not None:
        entry["observedGeneration"] = condition.observed_generation
    return entry


def make_condition(kind: str, values: tuple[str, str, str], old: Condition | None, generation: int | None) -> Condition:
    """A condition of ``kind`` with (status, reason, message), keeping ``old``'s transition time if the status
    did not change."""
    status, reason, message = values
    changed = old is None or old.status != status
    return Condition(
        type=kind,
        status=cast(Literal["True", "False", "Unknown"], status),
        reason=reason,
        message=message,
        last_transition_time=now_rfc3339() if changed or old is None else old.last_transition_time,
        observed_generation=generation,
    )
