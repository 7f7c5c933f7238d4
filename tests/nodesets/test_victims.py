"""Scale-down takes Nodes in the documented order: asked for by name, failed, unready, then by policy; a
Node counts as failed only for a reason it can show, and a set removes failed Nodes only within its cap."""

from __future__ import annotations

import random

import pytest

from nodeset_controller.api import (
    ANNOTATION_DELETE_REQUESTED,
    ANNOTATION_MACHINE_ERROR,
    ANNOTATION_MACHINE_ERROR_CLASS,
    ANNOTATION_MACHINE_ERROR_CODE,
    ANNOTATION_MACHINE_ID,
    ANNOTATION_MACHINE_PHASE,
    TAINT_STARTUP,
    HealthCheckSettings,
    NodeSetSpec,
    ReplacementSettings,
    Taint,
    UnhealthyCondition,
)
from nodeset_controller.controllers import (
    choose_victims,
    failure_of,
    is_failed,
    is_ready,
    machine_gone,
    remediation_budget,
)
from nodeset_controller.kube import NodeRecord

NOW = 10_000.0
STARTUP = (Taint(TAINT_STARTUP, "NoSchedule"),)


def spec(policy: str = "Random", registration_timeout: int = 900, **health: object) -> NodeSetSpec:
    return NodeSetSpec(
        node_class_name="c",
        delete_policy=policy,  # type: ignore[arg-type]
        replacement=ReplacementSettings(registration_timeout_seconds=registration_timeout),
        health_check=HealthCheckSettings(**health),  # type: ignore[arg-type]
    )


def node(
    name: str,
    created: float,
    *,
    ready: bool | None = True,
    annotations: dict[str, str] | None = None,
    taints: tuple[Taint, ...] = (),
    conditions: tuple[tuple[str, str, float | None], ...] | None = None,
) -> NodeRecord:
    if conditions is None:
        conditions = (("Ready", {True: "True", False: "False", None: "Unknown"}[ready], created),)
    return NodeRecord(
        name=name,
        uid=name,
        resource_version="1",
        created=created,
        deleting=False,
        labels={},
        annotations=annotations or {},
        finalizers=(),
        provider_id="",
        taints=taints,
        unschedulable=False,
        ready=ready,
        ready_changed=None,
        conditions=conditions,
    )


def names(victims: list[NodeRecord]) -> list[str]:
    return [n.name for n in victims]


def test_victims_come_in_the_documented_order() -> None:
    nodes = [
        node("ready-old", 100),
        node("ready-new", 900),
        node("unready", 800, ready=False, conditions=(("Ready", "False", NOW - 5),)),  # only just
        node("failed", 700, annotations={ANNOTATION_MACHINE_PHASE: "Failed"}),
        node("requested", 950, annotations={ANNOTATION_DELETE_REQUESTED: "true"}),
    ]
    for policy in ("Oldest", "Newest", "Random"):
        victims = choose_victims(nodes, 3, spec(policy, registration_timeout=10**9), now=NOW)
        assert names(victims) == ["requested", "failed", "unready"], policy


def test_the_policy_orders_healthy_nodes() -> None:
    nodes = [node("b", 200), node("a", 100), node("c", 300)]
    assert names(choose_victims(nodes, 2, spec("Oldest"), now=NOW)) == ["a", "b"]
    assert names(choose_victims(nodes, 2, spec("Newest"), now=NOW)) == ["c", "b"]
    picks = {names(choose_victims(nodes, 1, spec(), now=NOW, rng=random.Random(seed)))[0] for seed in range(30)}
    assert picks == {"a", "b", "c"}


def test_failed_means_crashed_vanished_refused_never_registered_or_unhealthy_for_its_timeout() -> None:
    failed = {ANNOTATION_MACHINE_ID: "m", ANNOTATION_MACHINE_PHASE: "Failed", ANNOTATION_MACHINE_ERROR: "crashed"}
    assert failure_of(node("x", 0, ready=None, annotations=failed), NOW, spec()).reason == "MachineFailed"  # type: ignore[union-attr]
    vanished = {**failed, ANNOTATION_MACHINE_ERROR_CODE: "MACHINE_NOT_FOUND"}
    assert failure_of(node("x", 0, ready=None, annotations=vanished), NOW, spec()).reason == "MachineVanished"  # type: ignore[union-attr]
    refused = {ANNOTATION_MACHINE_ERROR_CLASS: "OutOfResources", ANNOTATION_MACHINE_ERROR_CODE: "QUOTA_EXCEEDED"}
    assert is_failed(node("x", NOW, ready=None, taints=STARTUP, annotations=refused), NOW, spec())
    transient = {ANNOTATION_MACHINE_ERROR_CLASS: "Transient"}
    assert not is_failed(node("x", NOW, ready=None, taints=STARTUP, annotations=transient), NOW, spec())
    # Never Ready (the startup taint is still there) within the registration timeout:
    assert is_failed(node("x", NOW - 901, ready=None, taints=STARTUP), NOW, spec())
    assert not is_failed(node("x", NOW - 899, ready=None, taints=STARTUP), NOW, spec())
    assert not is_failed(node("x", NOW - 5000, ready=True), NOW, spec())


@pytest.mark.parametrize("status", ["False", "Unknown"])
def test_a_node_that_was_ready_fails_only_once_not_ready_held_for_the_health_check_timeout(status: str) -> None:
    # Created long ago, Ready long ago: the registration timeout is long past. Only the transition counts.
    just_now = node("x", 0, ready=None, conditions=(("Ready", status, NOW - 2),))
    assert failure_of(just_now, NOW, spec()) is None
    almost = node("x", 0, ready=None, conditions=(("Ready", status, NOW - 299),))
    assert failure_of(almost, NOW, spec()) is None
    held = node("x", 0, ready=None, conditions=(("Ready", status, NOW - 301),))
    failure = failure_of(held, NOW, spec())
    assert failure is not None and failure.reason == "Unhealthy"
    assert f"Ready has been {status} for 301 s" in failure.message


def test_any_condition_type_can_be_a_health_check() -> None:
    pressure = (UnhealthyCondition("MemoryPressure", "True", 60),)
    sick = node("x", 0, conditions=(("Ready", "True", 0), ("MemoryPressure", "True", NOW - 61)))
    assert failure_of(sick, NOW, spec(unhealthy_conditions=list(pressure))) is not None
    assert failure_of(sick, NOW, spec()) is None  # not one of the default conditions


def test_errors_reading_the_cloud_or_a_missing_nodeclass_never_make_a_running_machine_failed() -> None:
    for code, error_class in (
        ("NODE_CLASS_NOT_FOUND", "InvalidConfiguration"),
        ("MACHINE_UNKNOWN", "InvalidConfiguration"),
        ("MACHINE_UNKNOWN", "OutOfResources"),
    ):
        annotations = {
            ANNOTATION_MACHINE_ID: "i-1",
            ANNOTATION_MACHINE_PHASE: "Running",
            ANNOTATION_MACHINE_ERROR_CLASS: error_class,
            ANNOTATION_MACHINE_ERROR_CODE: code,
        }
        assert failure_of(node("x", 0, annotations=annotations), NOW, spec()) is None, code
        # Not even without a recorded machine: the fault is the observer's.
        del annotations[ANNOTATION_MACHINE_ID]
        if code == "NODE_CLASS_NOT_FOUND":
            assert failure_of(node("x", NOW, ready=None, taints=STARTUP, annotations=annotations), NOW, spec()) is None
    # A creation refusal counts only while no machine is recorded.
    refused = {ANNOTATION_MACHINE_ERROR_CLASS: "OutOfResources", ANNOTATION_MACHINE_ERROR_CODE: "QUOTA_EXCEEDED"}
    assert failure_of(node("x", 0, annotations={**refused, ANNOTATION_MACHINE_ID: "i-1"}), NOW, spec()) is None


def test_only_a_machine_that_is_gone_skips_the_drain() -> None:
    assert machine_gone(node("x", 0, ready=None, annotations={ANNOTATION_MACHINE_PHASE: "Failed"}))
    assert machine_gone(node("x", 0, ready=None, taints=STARTUP))  # never had a machine
    assert not machine_gone(node("x", 0, ready=None, annotations={ANNOTATION_MACHINE_ID: "m"}))  # NotReady, alive
    assert not machine_gone(node("x", 0, ready=True))  # Ready: a kubelet runs, recorded or not


@pytest.mark.parametrize(
    ("max_unhealthy", "failed", "total", "allowed"),
    [
        ("40%", 2, 5, True),
        ("40%", 3, 5, False),
        ("40%", 1, 1, True),  # rounded up: a set of one can be remediated
        ("40%", 2, 2, False),
        ("100%", 9, 9, True),
        ("0%", 1, 10, False),
        (3, 3, 4, True),
        (3, 4, 4, False),
    ],
)
def test_failed_nodes_are_removed_only_within_max_unhealthy(
    max_unhealthy: int | str, failed: int, total: int, allowed: bool
) -> None:
    budget = remediation_budget(spec(max_unhealthy=max_unhealthy), failed, total)
    assert budget.allowed is allowed
    assert f"{failed} of {total} Nodes" in budget.message


def test_ready_requires_the_startup_taint_gone() -> None:
    assert is_ready(node("x", 0))
    assert not is_ready(node("x", 0, taints=(Taint(TAINT_STARTUP, "NoSchedule"),)))
    assert not is_ready(node("x", 0, ready=None))
