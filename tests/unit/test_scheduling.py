"""The scheduler's judgement the pending-pod autoscaler relies on (controllers/_scheduling.py), without a
control plane: one pod/Node pair per predicate (node selector, each node affinity operator, taints against
tolerations, resources, hostname anti-affinity both ways), then packing pods onto a node one by one."""

from __future__ import annotations

from typing import Any

import pytest

from nodeset_controller.api import Taint
from nodeset_controller.controllers._scheduling import (
    LabelSelector,
    NodeShape,
    PendingPod,
    anti_affinity_of,
    bound_pod_entry,
    fits_now,
    resource_misfit,
    static_misfit,
)
from nodeset_controller.kube import PodRecord

ZONE = "topology.kubernetes.io/zone"


def pod(
    name: str = "web-1",
    *,
    namespace: str = "default",
    cpu: str | None = None,
    memory: str | None = None,
    labels: dict[str, str] | None = None,
    node_selector: dict[str, str] | None = None,
    affinity_terms: list[list[dict[str, Any]]] | None = None,
    tolerations: list[dict[str, Any]] | None = None,
    anti_affinity: list[dict[str, Any]] | None = None,
    extra_requests: dict[str, str] | None = None,
) -> PendingPod:
    """An unschedulable pod as the API server shows it, read as the autoscaler reads it."""
    requests = {k: v for k, v in {"cpu": cpu, "memory": memory, **(extra_requests or {})}.items() if v is not None}
    spec: dict[str, Any] = {"containers": [{"name": "app", "image": "app", "resources": {"requests": requests}}]}
    if node_selector:
        spec["nodeSelector"] = node_selector
    if tolerations:
        spec["tolerations"] = tolerations
    affinity: dict[str, Any] = {}
    if affinity_terms is not None:
        affinity["nodeAffinity"] = {
            "requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [{"matchExpressions": term} for term in affinity_terms]
            }
        }
    if anti_affinity:
        affinity["podAntiAffinity"] = {"requiredDuringSchedulingIgnoredDuringExecution": anti_affinity}
    if affinity:
        spec["affinity"] = affinity
    return PendingPod.from_json(
        {
            "metadata": {"name": name, "namespace": namespace, "uid": f"uid-{name}", "labels": labels or {}},
            "spec": spec,
            "status": {"conditions": [{"type": "PodScheduled", "status": "False", "reason": "Unschedulable"}]},
        }
    )


def expr(key: str, operator: str, *values: str) -> dict[str, Any]:
    return {"key": key, "operator": operator, "values": list(values)}


def hostname_anti(labels: dict[str, str], namespaces: list[str] | None = None) -> dict[str, Any]:
    term: dict[str, Any] = {"topologyKey": "kubernetes.io/hostname", "labelSelector": {"matchLabels": labels}}
    if namespaces is not None:
        term["namespaces"] = namespaces
    return term


def node(free: dict[str, int] | None = None, labels: dict[str, str] | None = None) -> NodeShape:
    return NodeShape(labels or {}, (), dict(free if free is not None else {"cpu": 4000, "memory": 2**33, "pods": 110}))


# -- the static predicates: node selector, node affinity, taints ------------------------------------------------


LABELS = {"kubernetes.io/arch": "amd64", ZONE: "eu-1a", "cores": "8", "gpu": "none"}
NO_SCHEDULE = Taint("dedicated", "NoSchedule", "db")
NO_EXECUTE = Taint("spot", "NoExecute")


@pytest.mark.parametrize(
    ("pod_args", "taints", "why"),
    [
        # node selector
        ({"node_selector": {ZONE: "eu-1a"}}, (), None),
        ({"node_selector": {ZONE: "eu-1b"}}, (), f"node selector {ZONE}=eu-1b does not match"),
        ({"node_selector": {"disk": "ssd"}}, (), "node selector disk=ssd does not match"),  # label absent
        ({"node_selector": {ZONE: "eu-1a", "gpu": "a100"}}, (), "node selector gpu=a100 does not match"),
        # required node affinity, one operator each
        ({"affinity_terms": [[expr(ZONE, "In", "eu-1b", "eu-1a")]]}, (), None),
        ({"affinity_terms": [[expr(ZONE, "In", "eu-1b")]]}, (), "required node affinity does not match"),
        ({"affinity_terms": [[expr("disk", "In", "")]]}, (), "required node affinity does not match"),
        ({"affinity_terms": [[expr(ZONE, "NotIn", "eu-1b")]]}, (), None),
        ({"affinity_terms": [[expr(ZONE, "NotIn", "eu-1a")]]}, (), "required node affinity does not match"),
        ({"affinity_terms": [[expr("disk", "NotIn", "ssd")]]}, (), None),  # an absent label is not in any set
        ({"affinity_terms": [[expr("gpu", "Exists")]]}, (), None),
        ({"affinity_terms": [[expr("disk", "Exists")]]}, (), "required node affinity does not match"),
        ({"affinity_terms": [[expr("disk", "DoesNotExist")]]}, (), None),
        ({"affinity_terms": [[expr("gpu", "DoesNotExist")]]}, (), "required node affinity does not match"),
        ({"affinity_terms": [[expr("cores", "Gt", "7")]]}, (), None),
        ({"affinity_terms": [[expr("cores", "Gt", "8")]]}, (), "required node affinity does not match"),
        ({"affinity_terms": [[expr("cores", "Lt", "9")]]}, (), None),
        ({"affinity_terms": [[expr("cores", "Lt", "8")]]}, (), "required node affinity does not match"),
        ({"affinity_terms": [[expr("gpu", "Gt", "0")]]}, (), "required node affinity does not match"),  # not a number
        ({"affinity_terms": [[expr("disk", "Lt", "9")]]}, (), "required node affinity does not match"),  # absent
        ({"affinity_terms": [[expr(ZONE, "Near", "eu-1a")]]}, (), "required node affinity does not match"),
        # terms are ORed, the expressions of a term ANDed
        ({"affinity_terms": [[expr(ZONE, "In", "eu-1b")], [expr("gpu", "Exists")]]}, (), None),
        (
            {"affinity_terms": [[expr(ZONE, "In", "eu-1a"), expr("disk", "Exists")]]},
            (),
            "required node affinity does not match",
        ),
        # taints against tolerations
        ({}, (Taint("maintenance", "PreferNoSchedule"),), None),  # only a preference: the pod may go there
        ({}, (NO_SCHEDULE,), "taint dedicated=db:NoSchedule is not tolerated"),
        ({}, (NO_EXECUTE,), "taint spot=:NoExecute is not tolerated"),
        ({"tolerations": [{"key": "dedicated", "operator": "Equal", "value": "db"}]}, (NO_SCHEDULE,), None),
        ({"tolerations": [{"key": "dedicated", "value": "db"}]}, (NO_SCHEDULE,), None),  # Equal is the default
        (
            {"tolerations": [{"key": "dedicated", "operator": "Equal", "value": "web"}]},
            (NO_SCHEDULE,),
            "taint dedicated=db:NoSchedule is not tolerated",
        ),
        ({"tolerations": [{"key": "dedicated", "operator": "Exists"}]}, (NO_SCHEDULE,), None),
        (
            {"tolerations": [{"key": "dedicated", "operator": "Exists", "effect": "NoExecute"}]},
            (NO_SCHEDULE,),
            "taint dedicated=db:NoSchedule is not tolerated",
        ),
        ({"tolerations": [{"key": "spot", "operator": "Exists", "effect": "NoExecute"}]}, (NO_EXECUTE,), None),
        ({"tolerations": [{"key": "spot", "operator": "Equal"}]}, (NO_EXECUTE,), None),  # "" == no value
        ({"tolerations": [{"operator": "Exists"}]}, (NO_SCHEDULE, NO_EXECUTE), None),  # no key: every taint
        (
            {"tolerations": [{"operator": "Equal", "value": "db"}]},
            (NO_SCHEDULE,),
            "taint dedicated=db:NoSchedule is not tolerated",
        ),
        (
            {"tolerations": [{"key": "dedicated", "operator": "Exists"}]},
            (NO_SCHEDULE, NO_EXECUTE),
            "taint spot=:NoExecute is not tolerated",  # every taint needs its own toleration
        ),
        # the first reason is the one given
        (
            {"node_selector": {ZONE: "eu-1b"}, "affinity_terms": [[expr("disk", "Exists")]]},
            (NO_SCHEDULE,),
            f"node selector {ZONE}=eu-1b does not match",
        ),
        ({"affinity_terms": [[expr("disk", "Exists")]]}, (NO_SCHEDULE,), "required node affinity does not match"),
    ],
)
def test_static_misfit(pod_args: dict[str, Any], taints: tuple[Taint, ...], why: str | None) -> None:
    assert static_misfit(pod(**pod_args), LABELS, taints) == why


def test_a_pod_without_required_node_affinity_terms_may_go_anywhere() -> None:
    # No nodeAffinity at all, and a nodeAffinity with no terms, both leave the pod free to go anywhere.
    assert static_misfit(pod(), {}, ()) is None
    assert static_misfit(pod(affinity_terms=[]), {}, ()) is None


# -- resources -----------------------------------------------------------------------------------------------------


CAPACITY = {"cpu": 2000, "memory": 2**33, "pods": 110}


@pytest.mark.parametrize(
    ("pod_args", "why"),
    [
        ({"cpu": "2", "memory": "8Gi"}, None),  # exactly the node
        ({"cpu": "2001m"}, "requests cpu 2001m but a node has 2000m"),
        ({"cpu": "1999m", "memory": "8589934593"}, f"requests memory {2**33 + 1} but a node has {2**33}"),
        ({"extra_requests": {"nvidia.com/gpu": "1"}}, "requests nvidia.com/gpu 1 but a node has 0"),
        ({"extra_requests": {"nvidia.com/gpu": "0"}}, None),  # asking for none of it fits anywhere
        ({}, None),  # no requests: only its pod slot
    ],
)
def test_resource_misfit(pod_args: dict[str, Any], why: str | None) -> None:
    assert resource_misfit(pod(**pod_args), CAPACITY) == why


def test_a_pod_needs_a_pod_slot_so_a_node_with_none_left_does_not_fit_it() -> None:
    assert pod().requests == {"pods": 1}
    assert resource_misfit(pod(), {"cpu": 2000}) == "requests pods 1 but a node has 0"
    assert not fits_now(pod(cpu="1m"), node({"cpu": 2000, "pods": 0}))


# -- anti-affinity, against the pods on the node ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("placed", "incoming", "fits"),
    [
        (pod("a", labels={"app": "web"}), pod("b", labels={"app": "web"}), True),  # no anti-affinity at all
        (
            pod("a", labels={"app": "web"}),
            pod("b", labels={"app": "web"}, anti_affinity=[hostname_anti({"app": "web"})]),
            False,  # the incoming pod refuses a node with a web pod
        ),
        (
            pod("a", labels={"app": "web"}, anti_affinity=[hostname_anti({"app": "cache"})]),
            pod("b", labels={"app": "cache"}),
            False,  # the placed pod refuses cache pods beside it
        ),
        (
            pod("a", labels={"app": "db"}),
            pod("b", labels={"app": "web"}, anti_affinity=[hostname_anti({"app": "web"})]),
            True,  # the selector does not match the placed pod
        ),
        (
            pod("a", namespace="other", labels={"app": "web"}),
            pod("b", labels={"app": "web"}, anti_affinity=[hostname_anti({"app": "web"})]),
            True,  # a term without namespaces means the pod's own
        ),
        (
            pod("a", namespace="other", labels={"app": "web"}),
            pod("b", labels={"app": "web"}, anti_affinity=[hostname_anti({"app": "web"}, ["default", "other"])]),
            False,
        ),
        (
            pod("a", labels={"app": "web"}),
            pod(
                "b",
                labels={"app": "web"},
                anti_affinity=[hostname_anti({"app": "web"}) | {"topologyKey": ZONE}],
            ),
            True,  # only the hostname topology is judged per node
        ),
    ],
)
def test_hostname_anti_affinity_is_judged_both_ways(placed: PendingPod, incoming: PendingPod, fits: bool) -> None:
    shape = node()
    assert fits_now(placed, shape)
    shape.place(placed)

    assert fits_now(incoming, shape) is fits


def test_label_selectors_match_labels_and_expressions_together() -> None:
    selector = LabelSelector.from_json(
        {"matchLabels": {"app": "web"}, "matchExpressions": [expr("tier", "In", "front", "edge")]}
    )

    assert selector.matches({"app": "web", "tier": "edge"})
    assert not selector.matches({"app": "web", "tier": "back"})
    assert not selector.matches({"app": "api", "tier": "edge"})
    assert not selector.matches({"tier": "edge"})
    assert LabelSelector.from_json(None).matches({"anything": "at all"})  # the empty selector selects all


def test_a_bound_pods_anti_affinity_keeps_pods_off_its_node() -> None:
    bound = PodRecord(
        namespace="default",
        name="cache-0",
        uid="u",
        node="n1",
        phase="Running",
        deleting=False,
        owner_kind="StatefulSet",
        mirror=False,
        containers=(("cache", "cache"),),
        labels={"app": "cache"},
        anti_affinity=(hostname_anti({"app": "cache"}), hostname_anti({"app": "web"}) | {"topologyKey": ZONE}),
    )
    shape = node()
    shape.pods.append(bound_pod_entry(bound))

    assert [term.selector.match_labels for term in shape.pods[0][2]] == [(("app", "cache"),)]  # hostname only
    assert not fits_now(pod("cache-1", labels={"app": "cache"}), shape)
    assert fits_now(pod("web-1", labels={"app": "web"}), shape)  # the zone term is not this node's to judge
    assert anti_affinity_of([hostname_anti({"app": "x"})], "ns")[0].namespaces == frozenset({"ns"})


# -- packing pods onto a node one by one -----------------------------------------------------------------------------


def _pack(shape: NodeShape, pods: list[PendingPod]) -> int:
    """Place pods while they fit; how many did."""
    placed = 0
    for candidate in pods:
        if not fits_now(candidate, shape):
            break
        shape.place(candidate)
        placed += 1
    return placed


def test_an_exact_fit_fits_and_leaves_nothing() -> None:
    shape = node({"cpu": 1000, "memory": 2**30, "pods": 2})

    assert fits_now(pod(cpu="1", memory="1Gi"), shape)
    shape.place(pod(cpu="1", memory="1Gi"))

    assert shape.free == {"cpu": 0, "memory": 0, "pods": 1}
    assert not fits_now(pod("tiny", cpu="1m"), shape)
    assert not fits_now(pod("tinier", memory="1"), shape)
    assert fits_now(pod("nothing"), shape)  # asks only for a pod slot, and one is left


@pytest.mark.parametrize(
    ("cpu", "memory", "fits"),
    [
        ("999m", "1Gi", True),
        ("1000m", "1Gi", True),
        ("1001m", "1Gi", False),
        ("1", "1073741823", True),
        ("1", "1073741825", False),
        ("1000001u", "1Gi", False),  # a millionth of a core over, which is a whole millicore
    ],
)
def test_off_by_one(cpu: str, memory: str, fits: bool) -> None:
    assert fits_now(pod(cpu=cpu, memory=memory), node({"cpu": 1000, "memory": 2**30, "pods": 110})) is fits


def test_many_small_pods_fill_a_node_to_the_last_millicore() -> None:
    shape = node({"cpu": 1000, "memory": 2**33, "pods": 500})
    pods = [pod(f"p{i}", cpu="10m", memory="1Mi") for i in range(150)]

    assert _pack(shape, pods) == 100
    assert shape.free == {"cpu": 0, "memory": 2**33 - 100 * 2**20, "pods": 400}
    assert len(shape.pods) == 100


def test_many_small_pods_stop_at_the_nodes_pod_slots() -> None:
    shape = node({"cpu": 64000, "memory": 2**38, "pods": 110})

    assert _pack(shape, [pod(f"p{i}", cpu="1m") for i in range(200)]) == 110
    assert shape.free["pods"] == 0 and shape.free["cpu"] == 64000 - 110


def test_pods_of_mixed_sizes_pack_until_the_first_that_does_not_fit() -> None:
    shape = node({"cpu": 4000, "memory": 2**34, "pods": 110})
    sizes = ["1500m", "1500m", "750m", "250m", "1m"]  # 4000m exactly, then one more

    placed = _pack(shape, [pod(f"p{i}", cpu=cpu) for i, cpu in enumerate(sizes)])

    assert placed == 4
    assert shape.free["cpu"] == 0


def test_placing_a_pod_that_asks_for_what_the_node_does_not_list_drives_it_negative() -> None:
    # place() accounts without checking: a caller that placed without fits_now sees the overdraft.
    shape = node({"cpu": 1000, "pods": 10})
    shape.place(pod(extra_requests={"example.com/widget": "2"}))

    assert shape.free["example.com/widget"] == -2
    assert not fits_now(pod("again", extra_requests={"example.com/widget": "1"}), shape)


# -- reading a pending pod -------------------------------------------------------------------------------------------


def test_a_pending_pod_is_read_from_the_api_servers_json() -> None:
    obj = {
        "metadata": {
            "name": "web-1",
            "namespace": "shop",
            "uid": "u-1",
            "labels": {"app": "web"},
            "creationTimestamp": "2024-05-01T10:00:00Z",
            "ownerReferences": [
                {"kind": "Deployment", "controller": False},
                {"kind": "ReplicaSet", "controller": True},
            ],
        },
        "spec": {
            "containers": [
                {"name": "a", "resources": {"requests": {"cpu": "250m", "memory": "64Mi"}}},
                {"name": "b", "resources": {"requests": {"cpu": "250m"}}},
            ],
            "initContainers": [{"name": "init", "resources": {"requests": {"cpu": "1", "memory": "16Mi"}}}],
            "overhead": {"cpu": "10m"},
            "nodeSelector": {"disk": "ssd"},
            "tolerations": [{"key": "spot", "operator": "Exists"}],
            "affinity": {
                "nodeAffinity": {
                    "requiredDuringSchedulingIgnoredDuringExecution": {
                        "nodeSelectorTerms": [{"matchExpressions": [expr(ZONE, "In", "eu-1a")]}]
                    }
                },
                "podAntiAffinity": {
                    "requiredDuringSchedulingIgnoredDuringExecution": [
                        hostname_anti({"app": "web"}),
                        hostname_anti({"app": "web"}) | {"topologyKey": ZONE},
                    ]
                },
            },
        },
        "status": {"conditions": [{"type": "PodScheduled", "status": "False", "reason": "Unschedulable"}]},
    }

    read = PendingPod.from_json(obj)

    assert read.key == "shop/web-1"
    assert read.unschedulable
    assert read.owner_kind == "ReplicaSet"  # the controller, not the first owner
    assert read.requests == {"cpu": 1010, "memory": 64 * 2**20, "pods": 1}  # the init container's cpu, + overhead
    assert read.node_selector == {"disk": "ssd"}
    assert read.affinity_terms == (((ZONE, "In", ("eu-1a",)),),)
    assert [a.namespaces for a in read.anti_affinity] == [frozenset({"shop"})]  # the hostname term only
    assert read.tolerations == ({"key": "spot", "operator": "Exists"},)


@pytest.mark.parametrize(
    ("change", "unschedulable"),
    [
        ({}, True),
        ({"status": {"conditions": [{"type": "PodScheduled", "status": "False", "reason": "SchedulingGated"}]}}, False),
        ({"status": {"conditions": [{"type": "PodScheduled", "status": "True"}]}}, False),
        ({"status": {}}, False),
        ({"metadata": {"name": "p", "deletionTimestamp": "2024-05-01T10:00:00Z"}}, False),  # on its way out
        ({"spec": {"nodeName": "n1", "containers": []}}, False),  # bound already, the condition not yet updated
    ],
)
def test_only_a_pod_the_scheduler_found_no_node_for_is_unschedulable(
    change: dict[str, Any], unschedulable: bool
) -> None:
    obj: dict[str, Any] = {
        "metadata": {"name": "p"},
        "spec": {"containers": []},
        "status": {"conditions": [{"type": "PodScheduled", "status": "False", "reason": "Unschedulable"}]},
    }
    obj.update(change)

    assert PendingPod.from_json(obj).unschedulable is unschedulable
