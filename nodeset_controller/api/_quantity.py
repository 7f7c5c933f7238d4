"""Kubernetes resource quantities ("100m", "1.5", "16Gi", "1e3") as integers kube-node can add up.

CPU is counted in millicores, everything else in whole units (bytes for memory and storage), rounding up as
the scheduler does, so a sum of requests is never under-counted.

The syntax is Kubernetes' own (``resource.ParseQuantity``): an optional sign, digits with an optional
decimal point (``1``, ``1.5``, ``1.``, ``.5``, even ``.`` for 0), then one of the binary suffixes Ki..Ei,
the decimal suffixes n u m k M G T P E, or an exponent ``e``/``E`` with an optional sign and an integer
that fits in 64 bits. Anything else (``1e1.5``, ``1 Gi``, ``1KB``) is a :class:`QuantityError`, as
Kubernetes rejects it; so is a quantity without a digit (``Gi``, ``e3``), which Kubernetes reads as 0 but no
object kube-node reads holds (the API server writes quantities back canonical; the CRDs' pattern wants a
digit). A loose schema pattern (the NodeClass CRD's is the one Kubernetes publishes for quantities, which
allows a fractional exponent) lets malformed values into objects, so every reader must expect the error.

Not kubernetes.utils.parse_quantity: it takes ``1K`` and ``1 Gi`` (Kubernetes rejects both), rejects ``.``, never caps.

Kubernetes caps quantities at 2^63-1 (its ``maxAllowed``); values past that are capped here too, without
computing them (``1e999999999`` would otherwise be a number of a billion digits). Where a value comes from
kube-node's own configuration rather than from an object the API server checked, ``strict=True`` refuses
it instead (:class:`QuantityRangeError`): a NodeClass claiming more than 2^63-1 of anything is a mistake
that would make every new Node look infinitely big.
"""

from __future__ import annotations

import decimal
import math
import re
from collections.abc import Mapping
from decimal import Decimal

_BINARY = {"Ki": 10, "Mi": 20, "Gi": 30, "Ti": 40, "Pi": 50, "Ei": 60}  # powers of two
_DECIMAL = {"n": -9, "u": -6, "m": -3, "": 0, "k": 3, "M": 6, "G": 9, "T": 12, "P": 15, "E": 18}  # powers of ten
_PATTERN = re.compile(r"([+-]?)([0-9]*)(?:\.([0-9]*))?(Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE]|[eE][+-]?[0-9]+)?")
_INT64 = 2**63 - 1
#: The largest quantity Kubernetes holds (resource.maxAllowed); larger ones are capped, or refused if strict.
MAX_QUANTITY = Decimal(_INT64)
_NANO = Decimal("1e-9")

#: Resources counted in thousandths.
MILLI_RESOURCES = frozenset({"cpu"})


class QuantityError(ValueError):
    """Not a Kubernetes quantity. ``value`` is what was given; ``resource`` the resource it was for, if known."""

    def __init__(self, message: str, *, value: object, resource: str | None = None) -> None:
        super().__init__(message)
        self.value = value
        self.resource = resource


class QuantityRangeError(QuantityError):
    """A well-formed quantity larger than Kubernetes can hold (2^63-1), refused with ``strict=True``."""


def parse_quantity(value: str | int | float, *, strict: bool = False) -> Decimal:
    """The exact value of a quantity (rounded up to a billionth, as Kubernetes rounds); beyond 2^63-1 capped,
    or with ``strict`` a :class:`QuantityRangeError`. A malformed one is a :class:`QuantityError`."""
    text = _text(value)
    match = _PATTERN.fullmatch(text)
    if match is None or not (match.group(2) or match.group(3) is not None):  # "." is 0 to Kubernetes
        raise QuantityError(
            f"{text!r} is not a Kubernetes quantity (a number such as 2, 1.5 or .5, optionally followed by Ki, "
            "Mi, Gi, Ti, Pi, Ei, n, u, m, k, M, G, T, P, E or an integer exponent such as e3)",
            value=value,
        )
    sign, integer, fraction, suffix = match.group(1), match.group(2), match.group(3) or "", match.group(4) or ""
    significant = (integer + fraction).lstrip("0")
    if not significant:
        return Decimal(0)
    power_of_two = _BINARY.get(suffix, 0)
    if len(suffix) > 1 and suffix[0] in "eE" and suffix not in _BINARY:
        exponent_digits = suffix[1:].lstrip("+-").lstrip("0")
        exponent = int(suffix[1:]) if len(exponent_digits) <= 19 else 2**64
        if not -(2**63) <= exponent <= _INT64:
            raise QuantityError(
                f"{text!r} is not a Kubernetes quantity: its exponent does not fit in 64 bits", value=value
            )
    else:
        exponent = _DECIMAL.get(suffix, 0)
    exponent -= len(fraction)
    # The value, significant * 10**exponent * 2**power_of_two, is below 10**magnitude: bounded before it is computed.
    magnitude = len(significant) + exponent + (len(str(2**power_of_two)) if power_of_two else 0)
    with decimal.localcontext() as context:
        context.prec = len(significant) + 80  # exact for every value that gets that far
        if magnitude > 20:
            amount = MAX_QUANTITY + 1
        elif magnitude < -9:
            amount = _NANO
        else:
            amount = Decimal(f"{significant}E{exponent}") * (2**power_of_two)
        if amount > MAX_QUANTITY:
            if strict:
                raise QuantityRangeError(
                    f"{text!r} is more than Kubernetes can hold (at most {_INT64}, about 9.2E)", value=value
                )
            amount = MAX_QUANTITY
        elif amount != amount.quantize(_NANO, rounding=decimal.ROUND_UP):
            amount = amount.quantize(_NANO, rounding=decimal.ROUND_UP)  # Kubernetes rounds up to a billionth
        return -amount if sign == "-" else amount


def resource_units(resource: str, value: str | int | float, *, strict: bool = False) -> int:
    """The quantity as an integer: millicores for cpu, whole units otherwise, rounded up."""
    try:
        amount = parse_quantity(value, strict=strict)
    except QuantityError as error:
        raise type(error)(f"{resource}: {error}", value=value, resource=resource) from None
    if resource in MILLI_RESOURCES:
        with decimal.localcontext() as context:
            context.prec = len(amount.as_tuple().digits) + 4  # exact: the default 28 digits would round it
            amount *= 1000
    return math.ceil(amount)


def resource_list(values: Mapping[str, str | int | float], *, strict: bool = False) -> dict[str, int]:
    """A ResourceList as integers (see :func:`resource_units`); a bad value's error names its resource."""
    return {name: resource_units(name, value, strict=strict) for name, value in values.items()}


def _text(value: str | int | float) -> str:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise QuantityError(f"{value!r} is not a Kubernetes quantity", value=value)
    if isinstance(value, float) and not math.isfinite(value):
        raise QuantityError(f"{value!r} is not a Kubernetes quantity", value=value)
    return value if isinstance(value, str) else str(value)
