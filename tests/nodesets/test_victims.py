"""Scale-down takes Nodes in the documented order: asked for by name, failed, unready, then by policy."""

from __future__ import annotations

import random

from nodeset_controller.api import (
    ANNOTATION_DELETE_REQUESTED,
    ANNOTATION_MACHINE_ERROR_CLASS,
    ANNOTATION_MACHINE_PHASE,
    TAINT_STARTUP,
)
from nodeset_controller.controllers import choose_victims, is_failed, is_ready
from nodeset_controller.kube import NodeRecord, Taint

NOW = 10_000.0


def node(
    name: str,
    created: float,
    *,
    ready: bool | None = True,
    annotations: dict[str, str] | None = None,
    taints: tuple[Taint, ...] = (),
) -> NodeRecord:
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
    )


def names(victims: list[NodeRecord]) -> list[str]:
    return [n.name for n in victims]


def test_victims_come_in_the_documented_order() -> None:
    nodes = [
        node("ready-old", 100),
        node("ready-new", 900),
        node("unready", 800, ready=False),
        node("failed", 700, annotations={ANNOTATION_MACHINE_PHASE: "Failed"}),
        node("requested", 950, annotations={ANNOTATION_DELETE_REQUESTED: "true"}),
    ]
    for policy in ("Oldest", "Newest", "Random"):
        victims = choose_victims(nodes, 3, policy, now=NOW, registration_timeout=1e9)  # type: ignore[arg-type]
        assert names(victims) == ["requested", "failed", "unready"], policy


def test_the_policy_orders_healthy_nodes() -> None:
    nodes = [node("b", 200), node("a", 100), node("c", 300)]
    assert names(choose_victims(nodes, 2, "Oldest", now=NOW, registration_timeout=1e9)) == ["a", "b"]
    assert names(choose_victims(nodes, 2, "Newest", now=NOW, registration_timeout=1e9)) == ["c", "b"]
    picks = {
        names(choose_victims(nodes, 1, "Random", now=NOW, registration_timeout=1e9, rng=random.Random(seed)))[0]
        for seed in range(30)
    }
    assert picks == {"a", "b", "c"}


def test_failed_means_crashed_refused_or_never_registered() -> None:
    assert is_failed(node("x", 0, annotations={ANNOTATION_MACHINE_PHASE: "Failed"}), NOW, 900)
    assert is_failed(
        node("x", NOW, ready=None, annotations={ANNOTATION_MACHINE_ERROR_CLASS: "OutOfResources"}), NOW, 900
    )
    assert not is_failed(
        node("x", NOW, ready=None, annotations={ANNOTATION_MACHINE_ERROR_CLASS: "Transient"}), NOW, 900
    )
    assert is_failed(node("x", NOW - 901, ready=None), NOW, 900)
    assert not is_failed(node("x", NOW - 899, ready=None), NOW, 900)
    assert not is_failed(node("x", NOW - 5000, ready=True), NOW, 900)


def test_ready_requires_the_startup_taint_gone() -> None:
    assert is_ready(node("x", 0))
    assert not is_ready(node("x", 0, taints=(Taint(TAINT_STARTUP, "NoSchedule"),)))
    assert not is_ready(node("x", 0, ready=None))
