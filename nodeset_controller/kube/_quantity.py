"""Kubernetes resource quantities ("100m", "1.5", "16Gi", "1e3") as integers kube-node can add up.

CPU is counted in millicores, everything else in whole units (bytes for memory and storage), rounding up as
the scheduler does, so a sum of requests is never under-counted.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from decimal import Context, Decimal, InvalidOperation, localcontext

_BINARY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
_DECIMAL = {
    "n": Decimal("1e-9"),
    "u": Decimal("1e-6"),
    "m": Decimal("1e-3"),
    "": Decimal(1),
    "k": Decimal(10**3),
    "M": Decimal(10**6),
    "G": Decimal(10**9),
    "T": Decimal(10**12),
    "P": Decimal(10**15),
    "E": Decimal(10**18),
}
_PATTERN = re.compile(r"^([+-]?[0-9.]+)([eE][+-]?[0-9]+|Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE])?$")

#: Resources counted in thousandths.
MILLI_RESOURCES = frozenset({"cpu"})

#: Exact arithmetic for every quantity the NodeClass schema takes (at most 64 characters, so 64 digits,
#: times 2**60 and 1000): the default 28 digits would round 1.0000000000000000000000000001 down to 1, and
#: the ceiling would then under-count it.
_EXACT = Context(prec=128)


class QuantityError(ValueError):
    """Not a Kubernetes quantity."""


def parse_quantity(value: str | int | float) -> Decimal:
    """The exact value of a quantity."""
    if isinstance(value, int | float):
        return Decimal(str(value))
    match = _PATTERN.match(value.strip())
    if not match:
        raise QuantityError(f"not a quantity: {value!r}")
    number, suffix = match.group(1), match.group(2) or ""
    try:
        base = Decimal(number)
    except InvalidOperation:
        raise QuantityError(f"not a quantity: {value!r}") from None
    with localcontext(_EXACT):
        if suffix in _BINARY:
            return base * _BINARY[suffix]
        if suffix[:1] in ("e", "E"):
            return base.scaleb(int(suffix[1:]))
        return base * _DECIMAL[suffix]


def resource_units(resource: str, value: str | int | float) -> int:
    """The quantity as an integer: millicores for cpu, whole units otherwise, rounded up."""
    amount = parse_quantity(value)
    with localcontext(_EXACT):
        if resource in MILLI_RESOURCES:
            amount *= 1000
        return math.ceil(amount)


def resource_list(values: Mapping[str, str | int | float]) -> dict[str, int]:
    """A ResourceList as integers (see :func:`resource_units`)."""
    return {name: resource_units(name, value) for name, value in values.items()}
