"""Races: IncreaseSize, DeleteNodes and a person's `kubectl scale`, all at once against one NodeSet.

100 operations, in a seeded order, released together: 50 IncreaseSize (+1 or +2, against maxReplicas 30), 35
DeleteNodes of one or two of the set's first 6 Nodes (overlapping, so most are repeats or name Nodes gone by
then; every tenth also names a Node of another group), and 15 runs of the real kubectl scale to 3..12. A
kubectl scale sets an absolute value, so it is neither done first nor made a barrier: it is accounted by the
value it replaced, which only the order of the writes tells.

The accounting is exact because it is read from the API server, not inferred. A watch on the NodeSet sees
every write to it, in etcd order. Each write that changes ``spec.replicas`` is attributed:

- a write that adds names to ``kube-node.io/delete-requested-nodes`` is a DeleteNodes; it must lower
  replicas by exactly the number of names it adds (to no less than 0) in the same write;
- a write whose resourceVersion the gRPC server's client got back from a PUT of the scale subresource (the
  provider here is served with a client that notes them) is an IncreaseSize: it must be a rise;
- any other change of replicas is a kubectl scale: its value must be one kubectl was asked for (the
  controllers never write spec.replicas of a NodeSet in ClusterAutoscaler mode without failed machines,
  and the simulator here fails none). managedFields would name kubectl too, but not always: now and then
  the API server leaves the entry of a scale-subresource write without f:replicas.

Then: the rises are exactly the deltas of the IncreaseSize calls that answered OK (no lost update, no
increase applied for a call that failed, none applied twice); the names recorded are exactly those of the
DeleteNodes calls that answered OK, each recorded once (a repeat or a retry counts nothing), and none of a
call that failed; so final replicas == start + the accepted increases - the DeleteNodes' decreases + each
kubectl scale's change from the value it replaced. No answer is INTERNAL or UNKNOWN.

Nodes: once the NodeSet has settled, every Node that a DeleteNodes recorded is gone, and every other Node
that went was taken by a kubectl scale-down: at most sum(max(0, replicas before - S)) over kubectl's writes
of S, since a Node nobody named is removed only while the Nodes counted exceed replicas, and only a lower
replicas that nobody named Nodes for (kubectl's) can make them exceed it. Without such a scale-down, no
Node that nobody named may go.

The two tests after it are what it found, each made deterministic.
"""

from __future__ import annotations

import concurrent.futures
import itertools
import random
import threading
from collections import Counter
from dataclasses import dataclass
from typing import Any

import grpc
import pytest

from autoscaler_provider import CloudProviderService, ProviderServer
from autoscaler_provider._proto import externalgrpc_pb2 as pb
from autoscaler_provider._proto import externalgrpc_pb2_grpc as pb_grpc
from nodeset_controller.api import ANNOTATION_DELETE_REQUESTED_NODES, LABEL_NODESET
from nodeset_controller.controllers import Manager
from nodeset_controller.kube import NODECLASSES, NODES, NODESETS, KubeClient, NodeRecord
from tests.conftest import Kubectl, Provider, eventually, nodeset_manifest, simulator_nodeclass

pytestmark = pytest.mark.controlplane

SEED = 20261203
START = 6
MAX = 30
INCREASES, DELETES, SCALES = 50, 35, 15
NEVER = {grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN}


@dataclass(frozen=True)
class State:
    """The NodeSet as one watch event shows it."""

    version: int
    replicas: int
    requested: frozenset[str]

    @classmethod
    def of(cls, nodeset: dict[str, Any]) -> State:
        meta = nodeset["metadata"]
        value = (meta.get("annotations") or {}).get(ANNOTATION_DELETE_REQUESTED_NODES, "")
        return cls(int(meta["resourceVersion"]), nodeset["spec"]["replicas"], frozenset(filter(None, value.split(","))))


class _NotingClient(KubeClient):
    """The gRPC server's client, noting the resourceVersion of every scale-subresource write it makes."""

    def __init__(self, configuration: Any) -> None:
        super().__init__(configuration)
        self.scale_writes: set[int] = set()
        self._notes = threading.Lock()

    def replace(
        self, resource: Any, name: str, body: Any, namespace: str | None = None, subresource: str | None = None
    ) -> Any:
        written = super().replace(resource, name, body, namespace, subresource)
        if resource == NODESETS and subresource == "scale":
            with self._notes:
                self.scale_writes.add(int(written["metadata"]["resourceVersion"]))
        return written


class Recorder:
    """Every event of a watch, from ``version`` on, in a thread."""

    def __init__(self, kube: KubeClient, resource: Any, version: str, **params: Any) -> None:
        self.events: list[dict[str, Any]] = []
        self.error: BaseException | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(kube, resource, version, params), daemon=True)
        self._thread.start()

    def _run(self, kube: KubeClient, resource: Any, version: str, params: dict[str, Any]) -> None:
        try:
            for event in kube.watch(resource, resource_version=version, timeout_seconds=300, **params):
                if event["type"] != "BOOKMARK":
                    self.events.append(event)
                if self._stop.is_set():
                    return
        except BaseException as error:  # reported by the test
            self.error = error

    def seen(self, version: int) -> bool:
        assert self.error is None, self.error
        return any(int(e["object"]["metadata"]["resourceVersion"]) >= version for e in self.events)

    def stop(self) -> None:
        self._stop.set()


def members(kube: KubeClient, name: str) -> list[dict[str, Any]]:
    return [
        n
        for n in kube.list(NODES, labelSelector=f"{LABEL_NODESET}={name}")["items"]
        if n["metadata"].get("ownerReferences")
    ]


def grpc_node(node: dict[str, Any]) -> pb.ExternalGrpcNode:
    return pb.ExternalGrpcNode(providerID=node["spec"]["providerID"], name=node["metadata"]["name"])


@pytest.mark.slow
def test_concurrent_increases_deletions_and_kubectl_scales_lose_and_invent_nothing(
    kube: KubeClient, manager: Manager, control_plane: Any, kubectl: Kubectl
) -> None:
    rng = random.Random(SEED)
    client = _NotingClient(KubeClient.from_kubeconfig(control_plane.kubeconfig).configuration)
    server = ProviderServer(
        CloudProviderService(client, manager.nodesets, manager.nodes, manager.nodeclasses), "127.0.0.1:0", tls=None
    )
    server.start()
    stub = pb_grpc.CloudProviderStub(grpc.insecure_channel(f"127.0.0.1:{server.port}"))
    try:
        _race(kube, kubectl, stub, client, rng)
    finally:
        server.stop(0)


def _race(
    kube: KubeClient, kubectl: Kubectl, stub: pb_grpc.CloudProviderStub, client: _NotingClient, rng: random.Random
) -> None:
    kube.create(NODECLASSES, simulator_nodeclass())
    spec = {"maxReplicas": MAX, "drain": {"timeoutSeconds": 0}, "autoscaling": {"mode": "ClusterAutoscaler"}}
    kube.create(NODESETS, nodeset_manifest("race", START, **spec))
    kube.create(NODESETS, nodeset_manifest("other", 1, autoscaling={"mode": "ClusterAutoscaler"}))
    initial = eventually(
        lambda: len(m := [n for n in members(kube, "race") if n["spec"].get("providerID")]) == START and m,
        timeout=60,
        what="the NodeSet's first Nodes",
    )
    other = eventually(lambda: [n for n in members(kube, "other") if n["spec"].get("providerID")], what="other's Node")
    eventually(lambda: len(stub.NodeGroupNodes(pb.NodeGroupNodesRequest(id="race")).instances) == START)

    start = kube.get(NODESETS, "race")
    node_list = kube.list(NODES, labelSelector=f"{LABEL_NODESET}=race")
    nodeset_watch = Recorder(kube, NODESETS, start["metadata"]["resourceVersion"], fieldSelector="metadata.name=race")
    node_watch = Recorder(kube, NODES, node_list["metadata"]["resourceVersion"], labelSelector=f"{LABEL_NODESET}=race")
    ever = {n["metadata"]["name"] for n in node_list["items"] if n["metadata"].get("ownerReferences")}

    # The operations, in a seeded order, all released at once.
    ops: list[tuple[str, Any]] = [("increase", rng.choice([1, 1, 2])) for _ in range(INCREASES)]
    for i in range(DELETES):
        names = rng.sample(initial, rng.choice([1, 1, 2]))
        nodes = [grpc_node(n) for n in names] + ([grpc_node(other[0])] if i % 10 == 9 else [])
        ops.append(("delete", nodes))
    ops += [("scale", rng.randint(3, 12)) for _ in range(SCALES)]
    rng.shuffle(ops)
    go = threading.Barrier(len(ops))

    def run(op: tuple[str, Any]) -> tuple[str, Any, Any]:
        kind, argument = op
        go.wait()
        if kind == "scale":
            result = kubectl.run("scale", "nodeset/race", f"--replicas={argument}", check=False)
            return kind, argument, result.returncode
        try:
            if kind == "increase":
                stub.NodeGroupIncreaseSize(pb.NodeGroupIncreaseSizeRequest(id="race", delta=argument), timeout=60)
            else:
                stub.NodeGroupDeleteNodes(pb.NodeGroupDeleteNodesRequest(id="race", nodes=argument), timeout=60)
        except grpc.RpcError as error:
            return kind, argument, error.code()
        return kind, argument, grpc.StatusCode.OK

    with concurrent.futures.ThreadPoolExecutor(len(ops)) as pool:
        results = list(pool.map(run, ops))

    codes = Counter((kind, str(code)) for kind, _, code in results)
    print(f"seed {SEED}: {sorted(codes.items())}")
    assert not [r for r in results if r[2] in NEVER], results
    assert all(code == 0 for kind, _, code in results if kind == "scale"), results
    ok_deltas = sorted(d for kind, d, code in results if kind == "increase" and code == grpc.StatusCode.OK)
    ok_names = {
        n.name for kind, nodes, code in results if kind == "delete" and code == grpc.StatusCode.OK for n in nodes
    }
    failed_names = {
        n.name for kind, nodes, code in results if kind == "delete" and code != grpc.StatusCode.OK for n in nodes
    }
    targets = {s for kind, s, _ in results if kind == "scale"}
    assert {code for kind, _, code in results if kind == "increase"} <= {
        grpc.StatusCode.OK,
        grpc.StatusCode.OUT_OF_RANGE,
    }
    assert {code for kind, _, code in results if kind == "delete"} <= {
        grpc.StatusCode.OK,
        grpc.StatusCode.INVALID_ARGUMENT,
    }
    assert ok_deltas and ok_names, "the race accepted nothing of some kind: it tested nothing"

    final = kube.get(NODESETS, "race")
    eventually(lambda: nodeset_watch.seen(int(final["metadata"]["resourceVersion"])), what="the watch caught up")
    history = [State.of(start)] + [State.of(e["object"]) for e in nodeset_watch.events if e["type"] == "MODIFIED"]
    history = [s for s in history if s.version <= int(final["metadata"]["resourceVersion"])]

    rises: list[int] = []
    recorded: Counter[str] = Counter()
    changes = {"increase": 0, "delete": 0, "scale": 0}
    scaled_down = 0
    for before, after in itertools.pairwise(history):
        added = after.requested - before.requested
        change = after.replicas - before.replicas
        if added:
            assert after.replicas == max(0, before.replicas - len(added)), (before, after)
            recorded.update(added)
            changes["delete"] += change
        elif after.version in client.scale_writes:
            assert change > 0, (before, after)
            rises.append(change)
            changes["increase"] += change
        elif change:
            assert after.replicas in targets, (before, after)
            changes["scale"] += change
            scaled_down += max(0, -change)
        assert after.replicas <= MAX
    assert len(rises) == len(client.scale_writes), "every scale write of the gRPC server is in the history"
    assert sorted(rises) == ok_deltas, "each accepted IncreaseSize wrote its delta once, and nothing else rose"
    assert set(recorded) == ok_names, "exactly the names of accepted DeleteNodes were recorded"
    assert not [n for n, times in recorded.items() if times > 1], f"recorded twice: {recorded}"
    assert not (set(recorded) & failed_names - ok_names)
    assert final["spec"]["replicas"] == START + changes["increase"] + changes["delete"] + changes["scale"], changes
    assert changes["increase"] == sum(ok_deltas)
    assert changes["delete"] >= -len(recorded)

    # The Nodes follow: the named ones go, and no more unnamed ones than kubectl's scale-downs took.
    def settled() -> list[str] | None:
        nodeset = kube.get(NODESETS, "race")
        nodes = members(kube, "race")
        requested = (nodeset["metadata"].get("annotations") or {}).get(ANNOTATION_DELETE_REQUESTED_NODES)
        live = [n["metadata"]["name"] for n in nodes if not n["metadata"].get("deletionTimestamp")]
        if requested or len(live) != len(nodes) or len(live) != nodeset["spec"]["replicas"]:
            last[:] = [
                f"replicas {nodeset['spec']['replicas']}, requested {requested!r}, {len(live)} live of {len(nodes)}"
            ]
            return None
        return live

    last: list[str] = []
    try:
        remaining = set(eventually(settled, timeout=120, what="the NodeSet settled"))
    except AssertionError as error:
        raise AssertionError(f"{error}: {last}") from None
    assert kube.get(NODESETS, "race")["spec"]["replicas"] == final["spec"]["replicas"], "nothing wrote replicas since"
    nodeset_watch.stop()
    node_watch.stop()
    assert node_watch.error is None, node_watch.error
    ever |= {
        e["object"]["metadata"]["name"] for e in node_watch.events if e["object"]["metadata"].get("ownerReferences")
    }
    gone = ever - remaining
    assert set(recorded) <= gone, f"named but still there: {set(recorded) - gone}"
    unnamed = gone - set(recorded)
    print(f"{len(gone)} Nodes went: {len(recorded)} named, {len(unnamed)} by kubectl's scale-downs of {scaled_down}")
    assert len(unnamed) <= scaled_down, f"{sorted(unnamed)} went unnamed; kubectl's scale-downs allow {scaled_down}"
    assert {n["metadata"]["name"] for n in members(kube, "other")} == {other[0]["metadata"]["name"]}


def test_nodes_named_for_removal_go_even_if_replicas_rose_again_first(kube: KubeClient, manager: Manager) -> None:
    # Found by the race above: a DeleteNodes (names X, replicas 2 -> 1) followed by an IncreaseSize or a
    # kubectl scale (1 -> 2) before the NodeSetController acted left replicas == Nodes, so X was never taken:
    # it stayed, listed and reported to the autoscaler as deleting, and no Node was made for the rise.
    kube.create(NODECLASSES, simulator_nodeclass())
    kube.create(
        NODESETS, nodeset_manifest("named", 2, drain={"timeoutSeconds": 0}, autoscaling={"mode": "ClusterAutoscaler"})
    )
    first = eventually(lambda: len(m := members(kube, "named")) == 2 and m, timeout=60, what="2 Nodes")
    victim = first[0]["metadata"]["name"]
    # Both writes as one: the name recorded, and replicas back where they were.
    kube.patch(NODESETS, "named", {"metadata": {"annotations": {ANNOTATION_DELETE_REQUESTED_NODES: victim}}})

    def replaced() -> list[str] | None:
        names = [n["metadata"]["name"] for n in members(kube, "named") if not n["metadata"].get("deletionTimestamp")]
        annotations = kube.get(NODESETS, "named")["metadata"].get("annotations") or {}
        return (
            names
            if len(names) == 2 and victim not in names and not annotations.get(ANNOTATION_DELETE_REQUESTED_NODES)
            else None
        )

    names = eventually(replaced, timeout=60, what=f"{victim} removed and replaced")
    assert first[1]["metadata"]["name"] in names
    assert kube.get(NODESETS, "named")["spec"]["replicas"] == 2


class _StaleByProviderID:
    """The gRPC server's Node cache, but answering one providerID lookup with the record it had before the Node
    went: how the cache looks to a DeleteNodes call that checked membership just before the Node was removed."""

    def __init__(self, real: Any, stale: NodeRecord) -> None:
        self._real = real
        self._stale = stale

    def by_index(self, index: str, value: str) -> list[NodeRecord]:
        if index == "providerID" and value == self._stale.provider_id:
            return [self._stale]
        result: list[NodeRecord] = self._real.by_index(index, value)
        return result

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)


def test_a_delete_nodes_retry_for_a_node_already_removed_and_pruned_records_nothing(
    kube: KubeClient, manager: Manager, provider: Provider
) -> None:
    # Found by the race above (a name recorded twice): a DeleteNodes that found the Node in the cache, then
    # read the NodeSet after the Node had gone and its name had been pruned, saw the name as new, recorded it
    # again and lowered replicas a second time, so a Node nobody named was removed for it.
    kube.create(NODECLASSES, simulator_nodeclass())
    kube.create(
        NODESETS, nodeset_manifest("pruned", 3, drain={"timeoutSeconds": 0}, autoscaling={"mode": "ClusterAutoscaler"})
    )
    nodes = eventually(lambda: len(m := members(kube, "pruned")) == 3 and m, timeout=60, what="3 Nodes")
    victim = nodes[0]["metadata"]["name"]
    stale = eventually(lambda: manager.nodes.get(victim), what="the victim cached")
    request = pb.NodeGroupDeleteNodesRequest(id="pruned", nodes=[grpc_node(nodes[0])])
    provider.stub.NodeGroupDeleteNodes(request)
    eventually(
        lambda: (
            manager.nodes.get(victim) is None
            and not (kube.get(NODESETS, "pruned")["metadata"].get("annotations") or {}).get(
                ANNOTATION_DELETE_REQUESTED_NODES
            )
        ),
        timeout=60,
        what="the victim removed and its name pruned",
    )
    assert kube.get(NODESETS, "pruned")["spec"]["replicas"] == 2

    service = CloudProviderService(
        kube, manager.nodesets, _StaleByProviderID(manager.nodes, stale), manager.nodeclasses
    )  # type: ignore[arg-type]
    server = ProviderServer(service, "127.0.0.1:0", tls=None)
    server.start()
    try:
        stub = pb_grpc.CloudProviderStub(grpc.insecure_channel(f"127.0.0.1:{server.port}"))
        with pytest.raises(grpc.RpcError) as caught:
            stub.NodeGroupDeleteNodes(request)  # the retry, with membership checked against the stale record
    finally:
        server.stop(0)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "does not belong to node group pruned any more" in caught.value.details()
    assert kube.get(NODESETS, "pruned")["spec"]["replicas"] == 2
    assert not (kube.get(NODESETS, "pruned")["metadata"].get("annotations") or {}).get(
        ANNOTATION_DELETE_REQUESTED_NODES
    )
