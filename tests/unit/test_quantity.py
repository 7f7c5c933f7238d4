"""Quantities are read as Kubernetes reads them (resource.ParseQuantity): what it rejects is a QuantityError,
never another exception, and nothing is computed that Kubernetes would cap."""

from __future__ import annotations

import time
from decimal import Decimal

import pytest

from nodeset_controller.kube import QuantityError, parse_quantity, resource_list, resource_units
from nodeset_controller.kube._quantity import MAX_QUANTITY, QuantityRangeError


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("0", Decimal(0)),
        ("100m", Decimal("0.1")),
        ("1.5", Decimal("1.5")),
        ("1.", Decimal(1)),  # Kubernetes accepts a bare decimal point
        (".5", Decimal("0.5")),
        (".", Decimal(0)),  # and even this, the API server stores it as 0
        ("+1", Decimal(1)),
        ("16Gi", Decimal(16 * 2**30)),
        ("1.5Ki", Decimal(1536)),
        ("2k", Decimal(2000)),
        ("1E", Decimal(10**18)),  # exa, not an exponent
        ("1e3", Decimal(1000)),
        ("1E+3", Decimal(1000)),
        ("1e-3", Decimal("0.001")),
        ("0.0000000001", Decimal("1e-9")),  # rounded up to a billionth, as Kubernetes rounds
        ("1e-999999999", Decimal("1e-9")),
        ("000000000000000000000000000000012", Decimal(12)),
        (4, Decimal(4)),
    ],
)
def test_what_kubernetes_accepts_parses_to_its_exact_value(text: str | int, value: Decimal) -> None:
    assert parse_quantity(text) == value


@pytest.mark.parametrize(
    "text",
    [
        "1e1.5",  # matches the quantity pattern Kubernetes publishes (and the NodeClass CRD uses)
        "1e.5",
        "1E1.",
        "",
        "1e",
        "1 Gi",
        " 1",
        "1KB",
        "1K",
        "1ki",
        "1.2.3",
        "1e99999999999999999999",  # the exponent does not fit in 64 bits
        "--1",
        "Gi",  # no digit: Kubernetes reads it as 0, kube-node refuses it (see the module's docstring)
    ],
)
def test_what_kubernetes_rejects_is_a_quantity_error(text: str) -> None:
    with pytest.raises(QuantityError, match="not a Kubernetes quantity"):
        parse_quantity(text)


def test_beyond_what_kubernetes_holds_is_capped_or_with_strict_refused_without_being_computed() -> None:
    started = time.monotonic()
    for text in ("1e999999999", "9999999999999999999999999", "10E", "8Ei", "1e9999999999999999"):
        assert parse_quantity(text) == MAX_QUANTITY, text
        with pytest.raises(QuantityRangeError, match="more than Kubernetes can hold"):
            parse_quantity(text, strict=True)
    assert parse_quantity("-1e999999999") == -MAX_QUANTITY
    assert parse_quantity("9223372036854775807", strict=True) == MAX_QUANTITY
    assert parse_quantity("7Ei", strict=True) == 7 * 2**60
    assert time.monotonic() - started < 1.0  # not a number of a billion digits


def test_units_name_the_resource_of_a_bad_value() -> None:
    assert resource_units("cpu", "1e-999999999") == 1  # a non-zero request is at least a millicore
    assert resource_list({"cpu": "250m", "memory": "1Gi"}) == {"cpu": 250, "memory": 2**30}
    with pytest.raises(QuantityError) as caught:
        resource_list({"cpu": "4", "memory": "1e1.5"})
    assert caught.value.resource == "memory"
    assert caught.value.value == "1e1.5"
    assert str(caught.value).startswith("memory: '1e1.5' is not a Kubernetes quantity")
    with pytest.raises(QuantityRangeError) as range_error:
        resource_list({"cpu": "1e999999999"}, strict=True)
    assert range_error.value.resource == "cpu"


@pytest.mark.parametrize(
    ("text", "kubernetes"),
    [("1K", None), ("1 Gi", None), (".", Decimal(0)), ("1e999999999", MAX_QUANTITY)],
    ids=["1K", "1 Gi", ".", "1e999999999"],
)
def test_the_official_clients_parser_differs_from_kubernetes_where_the_docstring_says(
    text: str, kubernetes: Decimal | None
) -> None:
    """Why kube-node keeps its own parser (the one line in kube/_quantity.py's docstring): should the official
    client come to read these as Kubernetes does (None: rejects), it could replace it."""
    from kubernetes.utils import parse_quantity as official

    if kubernetes is None:
        with pytest.raises(QuantityError):
            parse_quantity(text)
    else:
        assert parse_quantity(text) == kubernetes
    try:
        theirs: Decimal | None = official(text)
    except ValueError:
        theirs = None
    assert theirs != kubernetes
