"""Quantities are read as Kubernetes reads them (resource.ParseQuantity): what it rejects is a QuantityError,
never another exception, and nothing is computed that Kubernetes would cap."""

from __future__ import annotations

import time
from decimal import Decimal

import pytest

from nodeset_controller.api import QuantityError, parse_quantity, resource_list, resource_units
from nodeset_controller.api._quantity import MAX_QUANTITY, QuantityRangeError


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


# -- edge quantities ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("suffix", "factor"),
    [
        ("n", Decimal("1e-9")),
        ("u", Decimal("1e-6")),
        ("m", Decimal("1e-3")),
        ("", Decimal(1)),
        ("k", Decimal(10**3)),
        ("M", Decimal(10**6)),
        ("G", Decimal(10**9)),
        ("T", Decimal(10**12)),
        ("P", Decimal(10**15)),
        ("E", Decimal(10**18)),
        ("Ki", Decimal(2**10)),
        ("Mi", Decimal(2**20)),
        ("Gi", Decimal(2**30)),
        ("Ti", Decimal(2**40)),
        ("Pi", Decimal(2**50)),
        ("Ei", Decimal(2**60)),
    ],
)
def test_every_suffix_scales_by_its_own_power(suffix: str, factor: Decimal) -> None:
    assert parse_quantity(f"3{suffix}") == 3 * factor
    assert parse_quantity(f"2.5{suffix}") == (Decimal("2.5") * factor if suffix != "n" else Decimal("3e-9"))


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("1e0", Decimal(1)),
        ("1E-0", Decimal(1)),
        ("5e+2", Decimal(500)),
        ("1.5e3", Decimal(1500)),
        ("123e-2", Decimal("1.23")),
        (".5e1", Decimal(5)),
        ("1e-9", Decimal("1e-9")),
        ("1e-10", Decimal("1e-9")),  # below a billionth: up to one
        ("15e-10", Decimal("2e-9")),  # rounded up, not to the nearest
        ("1e18", Decimal(10**18)),
        ("1e00000000000000000000003", Decimal(1000)),  # leading zeros do not count against 64 bits
    ],
)
def test_exponents(text: str, value: Decimal) -> None:
    assert parse_quantity(text) == value


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("-1", Decimal(-1)),
        ("-100m", Decimal("-0.1")),
        ("-1.5Gi", Decimal(-3 * 2**29)),
        ("-0", Decimal(0)),
        ("-0.0000000001", Decimal("-1e-9")),  # rounded away from zero, as Kubernetes rounds
        ("-1e999999999", -MAX_QUANTITY),
    ],
)
def test_negative_quantities_are_the_positive_ones_negated(text: str, value: Decimal) -> None:
    assert parse_quantity(text) == value


@pytest.mark.parametrize(
    ("text", "capped"),
    [
        ("9223372036854775807", False),  # 2^63-1, the most Kubernetes holds
        ("9223372036854775808", True),
        ("8Ei", True),  # exactly 2^63
        ("7.999999999999999999Ei", False),
        ("9.223372036854775807E", False),
        ("9.2233720368547758071E", True),  # a hair over
        ("1e19", True),
    ],
)
def test_at_most_2_to_the_63_less_1_is_held_and_more_capped_or_refused_if_strict(text: str, capped: bool) -> None:
    # Every form is capped (Kubernetes itself caps the binary-suffixed ones, 8Ei, and keeps larger decimal
    # ones exact), so that kube-node never computes a number of a billion digits.
    if capped:
        assert parse_quantity(text) == MAX_QUANTITY
        with pytest.raises(QuantityRangeError):
            parse_quantity(text, strict=True)
    else:
        assert parse_quantity(text, strict=True) == parse_quantity(text) <= MAX_QUANTITY


@pytest.mark.parametrize(
    ("resource", "text", "units"),
    [
        ("cpu", "1", 1000),
        ("cpu", "0.5", 500),
        ("cpu", "250m", 250),
        ("cpu", "1m", 1),
        ("cpu", "0.1m", 1),  # a fraction of a millicore is a whole one
        ("cpu", "1.0001", 1001),
        ("cpu", "100u", 1),
        ("cpu", "2k", 2_000_000),
        ("memory", "1.5", 2),  # bytes, rounded up
        ("memory", "100m", 1),
        ("memory", "1Ki", 1024),
        ("memory", "1k", 1000),
        ("memory", "1.5Gi", 3 * 2**29),
        ("pods", "110", 110),
        ("memory", "0", 0),
        ("cpu", "9223372036854775807", 9223372036854775807000),  # millicores of the largest: past int64, exact
    ],
)
def test_resource_units_count_cpu_in_millicores_and_the_rest_in_whole_units_rounding_up(
    resource: str, text: str, units: int
) -> None:
    assert resource_units(resource, text) == units


@pytest.mark.parametrize("value", [True, None, float("nan"), float("inf"), [1], {"cpu": 1}, b"1"])
def test_what_is_not_a_string_or_a_number_is_a_quantity_error(value: object) -> None:
    with pytest.raises(QuantityError) as caught:
        parse_quantity(value)  # type: ignore[arg-type]
    assert caught.value.value is value


def test_numbers_are_read_as_their_text() -> None:
    assert parse_quantity(4) == 4
    assert parse_quantity(1.5) == Decimal("1.5")
    assert parse_quantity(1e20) == MAX_QUANTITY  # "1e+20"
    assert parse_quantity(-2) == -2


@pytest.mark.parametrize(
    "text",
    ["1e3Gi", "1Gi3", "1mm", "1Kii", "1e+", "1e-", "1.5.e3", "1,5", "½", "1e3.0", "+-1", "Ki1", "\u0661"],
)
def test_more_that_kubernetes_rejects(text: str) -> None:
    with pytest.raises(QuantityError, match="not a Kubernetes quantity"):
        parse_quantity(text)
