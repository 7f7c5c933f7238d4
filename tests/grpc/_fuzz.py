"""Fuzzed externalgrpc requests, each with the statuses the contract allows it (docs/cluster-autoscaler.md).

A ``Fuzzer`` draws requests for every RPC of the CloudProvider from random and adversarial values: empty and
huge strings, unknown, look-alike and non-ASCII ids, int32 limits, durations and timestamps at int64 limits,
NaN and infinite doubles, DeleteNodes with 10,000 nodes (duplicates of one, all unknown, or over the 4 MiB
message limit), nodes of another group and a foreign Node that only carries the group's label, random bytes in
the bytes fields, and hand-made wire encodings (invalid UTF-8 in a string field, truncated fields, garbage).
Each ``Case`` carries what a precise server may answer, computed from the request and the world it was drawn
for: the codes allowed, a word the error's message must contain (the field at fault), and for
NodeGroupForNode the groups the answer may name. What depends on state that the fuzzer's own accepted writes
change (a Node it deleted, a target it raised) allows each outcome the state could give, and no more.

Shared by tests/grpc/test_fuzz.py and bench/grpc_fuzz.py; ``make_world`` builds the objects both fuzz.
"""

from __future__ import annotations

import concurrent.futures
import math
import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import grpc
from google.protobuf import duration_pb2, timestamp_pb2
from google.protobuf.message import DecodeError, Message

from autoscaler_provider import DEFAULT_MAX_SIZE, SERVICE_NAME
from autoscaler_provider._proto import externalgrpc_pb2 as pb
from autoscaler_provider._proto import k8s_node_pb2
from nodeset_controller.api import LABEL_NODECLASS, LABEL_NODESET
from nodeset_controller.kube import NODECLASSES, NODES, NODESETS, KubeClient

Code = grpc.StatusCode

#: The server's limit on a request (gRPC's default receive limit); larger ones are refused before any handler.
MAX_REQUEST_BYTES = 4 * 1024 * 1024
INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1

#: Every RPC: its request and response types.
RPCS: dict[str, tuple[type[Message], type[Message]]] = {
    method.name: (getattr(pb, method.input_type.name), getattr(pb, method.output_type.name))
    for method in pb.DESCRIPTOR.services_by_name["CloudProvider"].methods
}

#: What every node-group RPC answers for an id that names no node group.
_EMPTY_ID = (frozenset({Code.INVALID_ARGUMENT}), "id")
_NOT_A_GROUP = (frozenset({Code.NOT_FOUND}), "node group")

# -- the world ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class World:
    """The NodeSets and Nodes the requests are drawn against.

    - ``fz``: ClusterAutoscaler, 2 simulated Nodes, maxReplicas 4, options (scaleDownUnneededTime 5m);
    - ``fz-paper``: ClusterAutoscaler, its NodeClass absent (targets only: no Node is ever made), no maximum;
    - ``fz-other``: ClusterAutoscaler, 1 Node, maxReplicas 1: the "node of another group";
    - ``fz-manual``: Manual mode, not a node group;
    - ``fz-foreign``: a Node labelled for ``fz`` that no NodeSet made (no ownerReference).
    """

    members: dict[str, tuple[pb.ExternalGrpcNode, ...]]  #: each group's Nodes when the world was made
    foreign: pb.ExternalGrpcNode
    priced: frozenset[str] = frozenset({"fz", "fz-other"})  #: groups whose NodeClass has a price
    max_sizes: dict[str, int] = field(default_factory=lambda: {"fz": 4, "fz-paper": DEFAULT_MAX_SIZE, "fz-other": 1})
    with_options: frozenset[str] = frozenset({"fz"})
    without_class: frozenset[str] = frozenset({"fz-paper"})
    not_groups: tuple[str, ...] = ("fz-manual",)

    @property
    def groups(self) -> tuple[str, ...]:
        return tuple(self.max_sizes)

    def group_of(self, provider_id: str) -> str | None:
        """The group a providerID was a member of when the world was made."""
        for group, nodes in self.members.items():
            if any(n.providerID == provider_id for n in nodes):
                return group
        return None


FUZZ_CLASS = "fuzz"


def make_world(kube: KubeClient, wait: Callable[..., Any]) -> World:
    """Create the world's NodeClass, NodeSets and foreign Node; ``wait(check, timeout=, what=)`` polls until
    the simulated Nodes exist with their providerIDs."""
    kube.create(
        NODECLASSES,
        {
            "apiVersion": "kube-node.io/v1alpha1",
            "kind": "NodeClass",
            "metadata": {"name": FUZZ_CLASS},
            "spec": {
                "provider": "simulator",
                "capacity": {"cpu": "4", "memory": "16Gi", "pods": "110"},
                "pricePerHour": 0.25,
                "gpuType": "sim-gpu",
            },
        },
    )
    ca = {"mode": "ClusterAutoscaler"}

    def nodeset(name: str, replicas: int, nodeclass: str = FUZZ_CLASS, **spec: Any) -> None:
        body = {"nodeClassName": nodeclass, "replicas": replicas, "drain": {"timeoutSeconds": 0}, **spec}
        kube.create(
            NODESETS,
            {"apiVersion": "kube-node.io/v1alpha1", "kind": "NodeSet", "metadata": {"name": name}, "spec": body},
        )

    nodeset("fz", 2, maxReplicas=4, autoscaling=ca | {"options": {"scaleDownUnneededTime": "5m"}})
    nodeset("fz-paper", 3, nodeclass="absent", autoscaling=ca)
    nodeset("fz-other", 1, maxReplicas=1, autoscaling=ca)
    nodeset("fz-manual", 0)
    # A Node that names the class (so it gets a machine) and carries fz's label, but no NodeSet made it.
    kube.create(
        NODES, {"metadata": {"name": "fz-foreign", "labels": {LABEL_NODECLASS: FUZZ_CLASS, LABEL_NODESET: "fz"}}}
    )

    def members(group: str, count: int) -> list[dict[str, Any]] | None:
        items = kube.list(NODES, labelSelector=f"{LABEL_NODESET}={group}")["items"]
        owned = [n for n in items if n["metadata"].get("ownerReferences") and n["spec"].get("providerID")]
        return owned if len(owned) == count else None

    found = {
        group: wait(lambda g=group, c=count: members(g, c), timeout=60, what=f"{group}'s Nodes")
        for group, count in (("fz", 2), ("fz-other", 1))
    }
    found["fz-paper"] = []
    foreign = wait(lambda: (n := kube.get(NODES, "fz-foreign"))["spec"].get("providerID") and n, what="fz-foreign")
    return World(
        members={group: tuple(_grpc_node(n) for n in nodes) for group, nodes in found.items()},
        foreign=_grpc_node(foreign),
    )


def _grpc_node(node: dict[str, Any]) -> pb.ExternalGrpcNode:
    return pb.ExternalGrpcNode(
        providerID=node["spec"].get("providerID", ""),
        name=node["metadata"]["name"],
        labels=node["metadata"].get("labels", {}),
    )


# -- cases ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    """One request (already encoded) and what a precise server may answer to it."""

    rpc: str
    payload: bytes
    allowed: frozenset[grpc.StatusCode]
    what: str  #: a short description of the request, for failure messages
    mention: str = ""  #: a word the details of an error answer must contain
    answers: frozenset[str] | None = None  #: NodeGroupForNode: the group ids the answer may name ("" = none)


@dataclass(frozen=True)
class Outcome:
    code: grpc.StatusCode
    details: str
    response: Message | None
    seconds: float


def check(case: Case, outcome: Outcome) -> str | None:
    """What is wrong with the answer, or None."""
    if outcome.code not in case.allowed:
        allowed = ", ".join(sorted(c.name for c in case.allowed))
        return f"{case.rpc} {case.what}: {outcome.code.name} ({outcome.details[:300]!r}), allowed {allowed}"
    if outcome.code != Code.OK and case.mention and case.mention not in outcome.details:
        return f"{case.rpc} {case.what}: {outcome.code.name} {outcome.details[:300]!r} does not name {case.mention!r}"
    if outcome.code == Code.OK and case.answers is not None:
        assert isinstance(outcome.response, pb.NodeGroupForNodeResponse)
        group = outcome.response.nodeGroup.id
        if group not in case.answers:
            return f"{case.rpc} {case.what}: answered group {group!r}, expected one of {sorted(case.answers)}"
    if outcome.code == Code.OK and isinstance(outcome.response, pb.NodeGroupTemplateNodeInfoResponse):
        node = k8s_node_pb2.Node.FromString(outcome.response.nodeBytes)
        if not node.metadata.name or outcome.response.old_nodeInfo != outcome.response.nodeBytes:
            return f"{case.rpc} {case.what}: OK with an incomplete template"
    return None


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else f"{text[:50]}...({len(text)} chars)"


class Fuzzer:
    """Draws ``Case``s for ``world`` from ``rng``."""

    def __init__(self, world: World, rng: random.Random) -> None:
        self.world = world
        self.rng = rng
        self._makers: dict[str, Callable[[], Case]] = {
            "NodeGroups": lambda: self._plain("NodeGroups", Code.OK),
            "NodeGroupForNode": self._node_group_for_node,
            "PricingNodePrice": self._pricing_node_price,
            "PricingPodPrice": self._pricing_pod_price,
            "GPULabel": lambda: self._plain("GPULabel", Code.OK),
            "GetAvailableGPUTypes": lambda: self._plain("GetAvailableGPUTypes", Code.OK),
            "Cleanup": lambda: self._plain("Cleanup", Code.OK),
            "Refresh": lambda: self._plain("Refresh", Code.OK),
            "NodeGroupTargetSize": lambda: self._by_id("NodeGroupTargetSize", frozenset({Code.OK})),
            "NodeGroupIncreaseSize": self._increase_size,
            "NodeGroupDeleteNodes": self._delete_nodes,
            "NodeGroupDecreaseTargetSize": self._decrease_target_size,
            "NodeGroupNodes": lambda: self._by_id("NodeGroupNodes", frozenset({Code.OK})),
            "NodeGroupTemplateNodeInfo": self._template_node_info,
            "NodeGroupGetOptions": self._get_options,
        }
        assert set(self._makers) == set(RPCS), "a maker for every RPC"

    def case(self) -> Case:
        """One case: usually a well-formed message of a random RPC, sometimes a malformed encoding."""
        if self.rng.random() < 0.05:
            return self._malformed()
        return self._makers[self.rng.choice(sorted(self._makers))]()

    def cases(self, count: int) -> Iterable[Case]:
        for _ in range(count):
            yield self.case()

    # -- values ------------------------------------------------------------------------------------------

    def string(self, *known: str, huge: bool = True) -> str:
        r = self.rng.random()
        if known and r < 0.35:
            return self.rng.choice(known)
        if r < 0.45:
            return ""
        if r < 0.6:
            return self.rng.choice(
                [
                    "fz ",
                    " fz",
                    "FZ",
                    "fz/scale",
                    "../fz",
                    "fz?watch=1",
                    "%66z",
                    "fz\x00",
                    "f\u200bz",
                    "fz\n",
                    "\uff46\uff5a",
                    "\u202efz",
                    "é" * 64,
                    "\U0001f600" * 100,
                    "kube-node://fuzz/",
                    "*",
                    "fz,fz-other",
                ]
            )
        if r < 0.97 or not huge:
            alphabet = "abcdefghijklmnopqrstuvwxyz0123456789-./:,%_ \t\u00e9\u4e2d\U0001f600"
            return "".join(self.rng.choice(alphabet) for _ in range(self.rng.randint(1, 40)))
        return self.rng.choice(["x" * 254, "y" * 20_000, "z" * 1_000_000, "\U0001f600" * 50_000])

    def int32(self) -> int:
        r = self.rng.random()
        if r < 0.3:
            return self.rng.choice([0, 1, -1, 2, -2, INT32_MAX, INT32_MIN, INT32_MAX - 1, INT32_MIN + 1, 1000, 1001])
        if r < 0.7:
            return self.rng.randint(-5, 5)
        return self.rng.randint(INT32_MIN, INT32_MAX)

    def int64(self) -> int:
        r = self.rng.random()
        if r < 0.4:
            return self.rng.choice([0, 1, -1, INT64_MAX, INT64_MIN, 10**9, 315_576_000_000, -315_576_000_000, 2**62])
        return self.rng.randint(INT64_MIN, INT64_MAX)

    def double(self) -> float:
        return self.rng.choice([0.0, -0.0, 0.5, 1.0, -1.0, 1e308, -1e308, 5e-324, math.nan, math.inf, -math.inf])

    def group_id(self) -> str:
        return self.string(*self.world.groups, *self.world.not_groups)

    def node(self, *, huge: bool = True) -> pb.ExternalGrpcNode:
        """A node as the client sends it: a member (by providerID, whatever its name), the foreign Node, the
        client's fake node for an instance, or made up; with ``huge`` sometimes with 10,000 labels."""
        r = self.rng.random()
        members = [n for nodes in self.world.members.values() for n in nodes]
        if r < 0.4 and members:
            node = pb.ExternalGrpcNode()
            node.CopyFrom(self.rng.choice(members))
            if self.rng.random() < 0.2:
                node.name = self.string(huge=huge)  # resolved by providerID: the name does not matter
            return node
        if r < 0.5:
            node = pb.ExternalGrpcNode()
            node.CopyFrom(self.world.foreign)
            return node
        if r < 0.6 and members:  # the client's fake node for an unregistered instance
            pid = self.rng.choice(members).providerID
            return pb.ExternalGrpcNode(
                providerID=pid, name=pid, annotations={"k8s.io/cluster-autoscaler/fake-node-reason": "x"}
            )
        node = pb.ExternalGrpcNode(
            providerID=self.string("kube-node://fuzz/nope", "aws:///i-1", huge=huge), name=self.string(huge=huge)
        )
        for _ in range(self.rng.choice([0, 0, 1, 3])):
            node.labels[self.string(LABEL_NODESET, huge=huge)] = self.string(
                *self.world.groups, *self.world.not_groups, huge=huge
            )
        if huge and self.rng.random() < 0.01:
            node.labels.update({f"k{i}": "v" * 10 for i in range(10_000)})
        return node

    def timestamp(self) -> timestamp_pb2.Timestamp:
        if self.rng.random() < 0.5:
            return timestamp_pb2.Timestamp(
                seconds=self.rng.randint(0, 2_000_000_000), nanos=self.rng.randint(0, 10**9 - 1)
            )
        return timestamp_pb2.Timestamp(seconds=self.int64(), nanos=self.int32())

    def duration(self) -> duration_pb2.Duration:
        if self.rng.random() < 0.5:
            return duration_pb2.Duration(seconds=self.rng.randint(0, 3600))
        return duration_pb2.Duration(seconds=self.int64(), nanos=self.int32())

    def bytes_(self) -> bytes:
        r = self.rng.random()
        if r < 0.2:
            return b""
        if r < 0.3:
            return b"\xff\xfe\xfd" * self.rng.randint(1, 1000)  # not UTF-8, not a Pod
        if r < 0.32:
            return self.rng.randbytes(1_000_000)
        return self.rng.randbytes(self.rng.randint(1, 200))

    # -- expectations ------------------------------------------------------------------------------------

    def _id_rule(self, group_id: str) -> tuple[frozenset[grpc.StatusCode], str] | None:
        """What any node-group RPC answers for an id that is not a node group; None for a node group."""
        if not group_id:
            return _EMPTY_ID
        if group_id not in self.world.groups:
            return _NOT_A_GROUP
        return None

    def _finish(
        self,
        rpc: str,
        request: Message,
        allowed: Iterable[grpc.StatusCode],
        what: str,
        mention: str = "",
        answers: frozenset[str] | None = None,
    ) -> Case:
        payload = request.SerializeToString()
        if len(payload) > MAX_REQUEST_BYTES:
            return Case(rpc, payload, frozenset({Code.RESOURCE_EXHAUSTED}), f"{what} ({len(payload)} bytes)")
        assert frozenset(allowed) <= ALLOWED[rpc], f"{rpc}: the fuzzer expects more than the contract allows"
        return Case(rpc, payload, frozenset(allowed), what, mention, answers)

    def _plain(self, rpc: str, code: grpc.StatusCode) -> Case:
        request = RPCS[rpc][0]()
        return self._finish(rpc, request, {code}, "()")

    def _by_id(self, rpc: str, group_codes: frozenset[grpc.StatusCode], mention: str = "") -> Case:
        group_id = self.group_id()
        request = RPCS[rpc][0](id=group_id)
        rule = self._id_rule(group_id)
        if rule is not None:
            return self._finish(rpc, request, rule[0], f"id={_short(group_id)}", rule[1])
        return self._finish(rpc, request, group_codes, f"id={_short(group_id)}", mention)

    def _node_group_for_node(self) -> Case:
        node = self.node()
        group = self.world.group_of(node.providerID)
        # Never an error; a member answers its group (or nothing, once a Node the fuzzer deleted is gone).
        answers = frozenset({"", group}) if group else frozenset({""})
        return self._finish(
            "NodeGroupForNode",
            pb.NodeGroupForNodeRequest(node=node),
            {Code.OK},
            f"node={_short(node.name)}/{_short(node.providerID)}",
            answers=answers,
        )

    def _pricing_node_price(self) -> Case:
        node = self.node()
        start, end = self.timestamp(), self.timestamp()
        if self.rng.random() < 0.5:
            start, end = sorted((start, end), key=lambda t: t.seconds + t.nanos / 1e9)
        request = pb.PricingNodePriceRequest(node=node, startTimestamp=start, endTimestamp=end)
        # By providerID (a member, until the fuzzer deletes it), else by the label of a template node.
        label = node.labels.get(LABEL_NODESET, "")
        by_label = label if label in self.world.groups else ""
        member_of = self.world.group_of(node.providerID)
        groups = {member_of, by_label} if member_of else {by_label}
        backwards = end.seconds + end.nanos / 1e9 < start.seconds + start.nanos / 1e9
        allowed: set[grpc.StatusCode] = set()
        for group in groups:
            if not group:
                allowed.add(Code.NOT_FOUND)
            elif group not in self.world.priced:
                allowed.add(Code.UNIMPLEMENTED)
            else:
                allowed.add(Code.INVALID_ARGUMENT if backwards else Code.OK)
        mention = "endTimestamp" if allowed == {Code.INVALID_ARGUMENT} else ""
        return self._finish(
            "PricingNodePrice", request, allowed, f"node={_short(node.providerID)} label={_short(label)}", mention
        )

    def _pricing_pod_price(self) -> Case:
        request = pb.PricingPodPriceRequest(
            pod_bytes=self.bytes_(),
            old_pod=self.bytes_(),
            startTimestamp=self.timestamp(),
            endTimestamp=self.timestamp(),
        )
        return self._finish("PricingPodPrice", request, {Code.UNIMPLEMENTED}, f"pod_bytes={len(request.pod_bytes)}B")

    def _delta_for(self, group_id: str) -> int:
        if group_id in self.world.groups and self.rng.random() < 0.4:
            return self.rng.choice([1, 2, -1, -2])  # plausible: some are accepted
        return self.int32()

    def _increase_size(self) -> Case:
        group_id = self.group_id()
        delta = self._delta_for(group_id)
        request = pb.NodeGroupIncreaseSizeRequest(id=group_id, delta=delta)
        what = f"id={_short(group_id)} delta={delta}"
        rule = self._id_rule(group_id)
        if rule is not None:
            return self._finish("NodeGroupIncreaseSize", request, rule[0], what, rule[1])
        if delta <= 0:
            return self._finish("NodeGroupIncreaseSize", request, {Code.INVALID_ARGUMENT}, what, "delta")
        if delta > self.world.max_sizes[group_id]:
            return self._finish("NodeGroupIncreaseSize", request, {Code.OUT_OF_RANGE}, what, "maxSize")
        return self._finish("NodeGroupIncreaseSize", request, {Code.OK, Code.OUT_OF_RANGE}, what, "maxSize")

    def _decrease_target_size(self) -> Case:
        group_id = self.group_id()
        delta = self._delta_for(group_id)
        request = pb.NodeGroupDecreaseTargetSizeRequest(id=group_id, delta=delta)
        what = f"id={_short(group_id)} delta={delta}"
        rule = self._id_rule(group_id)
        if rule is not None:
            return self._finish("NodeGroupDecreaseTargetSize", request, rule[0], what, rule[1])
        if delta >= 0:
            return self._finish("NodeGroupDecreaseTargetSize", request, {Code.INVALID_ARGUMENT}, what, "delta")
        if -delta > self.world.max_sizes[group_id]:
            return self._finish("NodeGroupDecreaseTargetSize", request, {Code.FAILED_PRECONDITION}, what)
        return self._finish("NodeGroupDecreaseTargetSize", request, {Code.OK, Code.FAILED_PRECONDITION}, what)

    def _delete_nodes(self) -> Case:
        group_id = self.group_id()
        r = self.rng.random()
        if r < 0.1:
            nodes: list[pb.ExternalGrpcNode] = []
        elif r < 0.12:
            nodes = [self.node(huge=False)] * 10_000  # one node, 10,000 times
        elif r < 0.14:
            nodes = [pb.ExternalGrpcNode(providerID=f"kube-node://fuzz/n{i}", name=f"n{i}") for i in range(10_000)]
        elif r < 0.15:
            nodes = [pb.ExternalGrpcNode(providerID="p" * 300, name=f"{i:0500d}") for i in range(10_000)]
        else:
            nodes = [self.node(huge=False) for _ in range(self.rng.choice([1, 1, 1, 2, 3, 50]))]
        request = pb.NodeGroupDeleteNodesRequest(id=group_id, nodes=nodes)
        what = f"id={_short(group_id)} nodes={len(nodes)} first={_short(nodes[0].providerID) if nodes else None}"
        rule = self._id_rule(group_id)
        if rule is not None:
            return self._finish("NodeGroupDeleteNodes", request, rule[0], what, rule[1])
        if not nodes:
            return self._finish("NodeGroupDeleteNodes", request, {Code.INVALID_ARGUMENT}, what, "nodes")
        if any(self.world.group_of(n.providerID) != group_id for n in nodes):
            return self._finish("NodeGroupDeleteNodes", request, {Code.INVALID_ARGUMENT}, what, "does not belong")
        # Members when the world was made: gone by now if an earlier case deleted them.
        return self._finish("NodeGroupDeleteNodes", request, {Code.OK, Code.INVALID_ARGUMENT}, what, "does not belong")

    def _template_node_info(self) -> Case:
        group_id = self.group_id()
        request = pb.NodeGroupTemplateNodeInfoRequest(id=group_id)
        rule = self._id_rule(group_id)
        if rule is not None:
            return self._finish("NodeGroupTemplateNodeInfo", request, rule[0], f"id={_short(group_id)}", rule[1])
        if group_id in self.world.without_class:
            return self._finish("NodeGroupTemplateNodeInfo", request, {Code.FAILED_PRECONDITION}, group_id, "NodeClass")
        return self._finish("NodeGroupTemplateNodeInfo", request, {Code.OK}, group_id)

    def _get_options(self) -> Case:
        group_id = self.group_id()
        defaults = pb.NodeGroupAutoscalingOptions()
        if self.rng.random() < 0.8:
            defaults.scaleDownUtilizationThreshold = self.double()
            defaults.scaleDownGpuUtilizationThreshold = self.double()
            defaults.zeroOrMaxNodeScaling = self.rng.random() < 0.5
            defaults.ignoreDaemonSetsUtilization = self.rng.random() < 0.5
            for current, legacy in _DURATIONS:
                if self.rng.random() < 0.7:
                    getattr(defaults, current).CopyFrom(self.duration())
                if self.rng.random() < 0.5:
                    getattr(defaults, legacy).duration = self.int64()
        request = pb.NodeGroupAutoscalingOptionsRequest(id=group_id, defaults=defaults)
        what = f"id={_short(group_id)} defaults={_short(str(defaults).replace(chr(10), ' '))}"
        rule = self._id_rule(group_id)
        if rule is not None:
            return self._finish("NodeGroupGetOptions", request, rule[0], what, rule[1])
        if group_id not in self.world.with_options:
            return self._finish("NodeGroupGetOptions", request, {Code.OK}, what)
        # fz overrides scaleDownUnneededTime; the other two durations echo the defaults, which must fit the
        # legacy field's int64 nanoseconds.
        for current, legacy in _DURATIONS[1:]:
            if not INT64_MIN <= _nanos(getattr(defaults, current), getattr(defaults, legacy)) <= INT64_MAX:
                return self._finish(
                    "NodeGroupGetOptions", request, {Code.INVALID_ARGUMENT}, what, f"defaults.{current}"
                )
        return self._finish("NodeGroupGetOptions", request, {Code.OK}, what)

    def _malformed(self) -> Case:
        """A payload that is not a valid encoding of the RPC's request (or, by chance, is: then as parsed)."""
        rpc = self.rng.choice(sorted(RPCS))
        kind = self.rng.choice(["utf8", "truncated", "garbage", "trailing", "nested-utf8"])
        if kind == "utf8":  # a string field (id, or the node's providerID) holding bytes that are not UTF-8
            payload = _field(
                2 if rpc in ("NodeGroupIncreaseSize", "NodeGroupDecreaseTargetSize", "NodeGroupDeleteNodes") else 1,
                b"\xff\xfe\xc0\xaf",
            )
        elif kind == "nested-utf8":  # a label key in a node that is not UTF-8
            label = _field(1, b"\xc3\x28") + _field(2, b"v")
            payload = _field(1, _field(3, label))
        elif kind == "truncated":
            payload = bytes([0x0A, 0x40]) + b"short"
        elif kind == "trailing":
            payload = RPCS[rpc][0]().SerializeToString() + b"\x0a\xff\xff\xff\xff\x0f"
        else:
            payload = self.rng.randbytes(self.rng.randint(1, 64))
        try:
            RPCS[rpc][0].FromString(payload)
        except DecodeError:
            return Case(
                rpc, payload, frozenset({Code.INVALID_ARGUMENT}), f"malformed {kind} {payload[:16]!r}", "request"
            )
        # It parsed after all (unknown fields are skipped): as a well-formed request, it may get any of the
        # answers a well-formed request of this RPC may get.
        return Case(rpc, payload, ALLOWED[rpc], f"{kind} that parses: {payload[:16]!r}")


_DURATIONS = (
    ("scaleDownUnneededDuration", "old_scaleDownUnneededTime"),
    ("scaleDownUnreadyDuration", "old_scaleDownUnreadyTime"),
    ("MaxNodeProvisionDuration", "old_MaxNodeProvisionTime"),
)

_GROUP_ERRORS = frozenset({Code.INVALID_ARGUMENT, Code.NOT_FOUND})  # an empty id; an id that names no node group
#: The codes each RPC may answer a well-formed request under 4 MiB (docs/cluster-autoscaler.md): the node-group
#: RPCs INVALID_ARGUMENT for an empty id or a bad field, NOT_FOUND for an id that is no node group; IncreaseSize
#: OUT_OF_RANGE past maxSize; DecreaseTargetSize FAILED_PRECONDITION where it would remove existing Nodes;
#: TemplateNodeInfo FAILED_PRECONDITION without its NodeClass; the pricing RPCs UNIMPLEMENTED without a price;
#: NodeGroupForNode never an error. Whatever the RPC, a request that does not decode is INVALID_ARGUMENT and
#: one over 4 MiB RESOURCE_EXHAUSTED (gRPC's own limit). Never INTERNAL or UNKNOWN. Each case narrows this down.
ALLOWED: dict[str, frozenset[grpc.StatusCode]] = {
    "NodeGroups": frozenset({Code.OK}),
    "NodeGroupForNode": frozenset({Code.OK}),
    "PricingNodePrice": frozenset({Code.OK, Code.NOT_FOUND, Code.UNIMPLEMENTED, Code.INVALID_ARGUMENT}),
    "PricingPodPrice": frozenset({Code.UNIMPLEMENTED}),
    "GPULabel": frozenset({Code.OK}),
    "GetAvailableGPUTypes": frozenset({Code.OK}),
    "Cleanup": frozenset({Code.OK}),
    "Refresh": frozenset({Code.OK}),
    "NodeGroupTargetSize": _GROUP_ERRORS | {Code.OK},
    "NodeGroupIncreaseSize": _GROUP_ERRORS | {Code.OK, Code.OUT_OF_RANGE},
    "NodeGroupDeleteNodes": _GROUP_ERRORS | {Code.OK},
    "NodeGroupDecreaseTargetSize": _GROUP_ERRORS | {Code.OK, Code.FAILED_PRECONDITION},
    "NodeGroupNodes": _GROUP_ERRORS | {Code.OK},
    "NodeGroupTemplateNodeInfo": _GROUP_ERRORS | {Code.OK, Code.FAILED_PRECONDITION},
    "NodeGroupGetOptions": _GROUP_ERRORS | {Code.OK},
}


def _nanos(current: duration_pb2.Duration, legacy: pb.LegacyDuration) -> int:
    if current.seconds or current.nanos:
        return int(current.seconds) * 1_000_000_000 + int(current.nanos)
    return int(legacy.duration)


def _field(number: int, data: bytes) -> bytes:
    """A length-delimited field (wire type 2) as raw bytes."""
    return _varint(number << 3 | 2) + _varint(len(data)) + data


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


# -- running -------------------------------------------------------------------------------------------------


class Caller:
    """Sends encoded requests over ``channel`` and reports the status (never raises for a status)."""

    def __init__(self, channel: grpc.Channel, timeout: float = 20.0) -> None:
        self.timeout = timeout
        self._calls = {
            rpc: channel.unary_unary(
                f"/{SERVICE_NAME}/{rpc}", request_serializer=None, response_deserializer=response.FromString
            )
            for rpc, (_, response) in RPCS.items()
        }

    def call(self, case: Case) -> Outcome:
        started = time.monotonic()
        try:
            response = self._calls[case.rpc](case.payload, timeout=self.timeout)
        except grpc.RpcError as error:
            return Outcome(error.code(), error.details() or "", None, time.monotonic() - started)  # type: ignore[attr-defined]
        return Outcome(Code.OK, "", response, time.monotonic() - started)


def send(caller: Caller, fuzzer: Fuzzer, count: int, threads: int) -> tuple[Counter[tuple[str, str]], list[str]]:
    """Send ``count`` cases, ``threads`` at a time. The cases are drawn in this thread, in order, so a seed
    always gives the same requests, and only a few are alive at once (the memory measured is the server's,
    not a queue of 1 MB requests). Returns the (rpc, code) histogram and the problems found."""
    codes: Counter[tuple[str, str]] = Counter()
    problems: list[str] = []
    lock = threading.Lock()
    slots = threading.BoundedSemaphore(threads * 2)

    def one(case: Case) -> None:
        try:
            outcome = caller.call(case)
            problem = check(case, outcome)
        except Exception as error:  # reported as a problem, not lost in a future
            outcome, problem = None, f"{case.rpc} {case.what}: the fuzzer failed: {error!r}"
        finally:
            slots.release()
        with lock:
            codes[case.rpc, outcome.code.name if outcome else "FUZZER-ERROR"] += 1
            if problem:
                problems.append(problem)

    # No list of futures: 10,000 of them hold megabytes the measurement would count.
    with concurrent.futures.ThreadPoolExecutor(threads, thread_name_prefix="fuzz") as pool:
        for case in fuzzer.cases(count):
            slots.acquire()
            pool.submit(one, case)
    return codes, problems


def rss_kib(pid: int | str = "self") -> int:
    """The resident set of a process (VmRSS), in KiB."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for process {pid}")


def histogram(results: Iterable[tuple[Case, Outcome]]) -> Counter[tuple[str, str]]:
    return Counter((case.rpc, outcome.code.name) for case, outcome in results)
