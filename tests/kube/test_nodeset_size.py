"""The NodeSetScaler, the one writer of a NodeSet's size, on the real API server: concurrent resizes all land,
a named removal and a resize racing both land, a NodeSet that keeps changing raises the one error with
nothing written, and a write is read back from the cache before and after the watch delivers it."""

from __future__ import annotations

import concurrent.futures
import itertools
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from nodeset_controller.api import ANNOTATION_DELETE_REQUESTED_NODES, NodeSet
from nodeset_controller.kube import (
    CONFLICT_ATTEMPTS,
    NODESETS,
    ApiError,
    Informer,
    KubeClient,
    NodeSetConflictError,
    NodeSetScaler,
    RemovalOfGoneNodesError,
    Resource,
    nodeset_from_json,
)
from tests.conftest import eventually, nodeset_manifest

pytestmark = pytest.mark.controlplane


class _Counting(KubeClient):
    """The real client, counting the NodeSet writes that lost the optimistic-concurrency race, and running
    ``after_read`` (if set) after each read of a NodeSet: another writer, between the read and the write."""

    def __init__(self, configuration: Any, after_read: Callable[[], None] | None = None) -> None:
        super().__init__(configuration)
        self.after_read = after_read
        self.reads = 0
        self.conflicts = 0
        self._counts = threading.Lock()

    def get(self, resource: Resource, name: str, namespace: str | None = None, subresource: str | None = None) -> Any:
        got = super().get(resource, name, namespace, subresource)
        if resource == NODESETS:
            with self._counts:
                self.reads += 1
            if self.after_read is not None:
                self.after_read()
        return got

    def _counted(self, write: Callable[[], Any]) -> Any:
        try:
            return write()
        except ApiError as error:
            if error.conflict:
                with self._counts:
                    self.conflicts += 1
            raise

    def replace(
        self, resource: Resource, name: str, body: Any, namespace: str | None = None, subresource: str | None = None
    ) -> Any:
        return self._counted(lambda: super(_Counting, self).replace(resource, name, body, namespace, subresource))

    def patch(self, resource: Resource, name: str, body: Any, *args: Any, **kwargs: Any) -> Any:
        return self._counted(lambda: super(_Counting, self).patch(resource, name, body, *args, **kwargs))


class _GatedWatches(KubeClient):
    """The real client, except that watch events wait while ``gate`` is closed: a watch that is slow to
    deliver."""

    def __init__(self, configuration: Any) -> None:
        super().__init__(configuration)
        self.gate = threading.Event()
        self.gate.set()

    def watch(self, *args: Any, **kwargs: Any) -> Iterator[Any]:
        for event in super().watch(*args, **kwargs):
            self.gate.wait()
            yield event


@pytest.fixture
def nodesets(kube: KubeClient) -> Iterator[Informer[NodeSet]]:
    informer = Informer(kube, NODESETS, nodeset_from_json)
    informer.start()
    assert informer.wait_synced(10)
    yield informer
    informer.stop()


def _replicas(kube: KubeClient, name: str) -> int:
    return int(kube.get(NODESETS, name)["spec"]["replicas"])


def _requested(kube: KubeClient, name: str) -> str | None:
    annotations = kube.get(NODESETS, name)["metadata"].get("annotations") or {}
    return annotations.get(ANNOTATION_DELETE_REQUESTED_NODES)


def _plus(delta: int) -> Callable[[NodeSet], int]:
    return lambda nodeset: nodeset.spec.replicas + delta


def test_concurrent_resizes_from_several_threads_and_scalers_all_land(
    kube: KubeClient, nodesets: Informer[NodeSet]
) -> None:
    kube.create(NODESETS, nodeset_manifest("many", 0))
    # Three scalers stand for three processes (one scaler's own writes to a NodeSet go one at a time, so
    # only writers that do not share it conflict); four threads each, five resizes per thread.
    clients = [_Counting(kube.configuration) for _ in range(3)]
    scalers = [NodeSetScaler(client, nodesets) for client in clients]
    deltas = [1 + (i % 3) for i in range(60)]
    with concurrent.futures.ThreadPoolExecutor(12) as pool:
        done = list(pool.map(lambda i: scalers[i % 3].resize("many", _plus(deltas[i])), range(len(deltas))))
    assert _replicas(kube, "many") == sum(deltas)
    assert sorted(r.after - r.before for r in done) == sorted(deltas)
    # Each value was passed through exactly once: the writes form one chain from 0 to the sum.
    assert sorted(r.before for r in done) == sorted({r.before for r in done})
    eventually(lambda: (ns := nodesets.get("many")) is not None and ns.spec.replicas == sum(deltas))
    print(f"conflicts retried: {sum(c.conflicts for c in clients)}")


@pytest.mark.parametrize("first", ["removal", "resize"])
def test_a_named_removal_and_a_resize_racing_both_land(
    kube: KubeClient, nodesets: Informer[NodeSet], first: str
) -> None:
    # ``first`` reads the NodeSet, then the other writes (between that read and the first's write), so the
    # first's write conflicts and is computed again from a fresh read: both changes land, neither twice.
    kube.create(NODESETS, nodeset_manifest("racing", 10))
    other = NodeSetScaler(kube, nodesets)
    fired = itertools.count()

    def interleave() -> None:
        if next(fired) == 0:
            if first == "removal":
                assert other.resize("racing", _plus(3)).after == 13
            else:
                assert other.request_removal("racing", ["b", "a"]) == 2

    client = _Counting(kube.configuration, after_read=interleave)
    scaler = NodeSetScaler(client, nodesets)
    if first == "removal":
        assert scaler.request_removal("racing", ["a", "b"]) == 2
    else:
        resized = scaler.resize("racing", _plus(3))
        assert (resized.before, resized.after) == (8, 11)
    assert client.conflicts == 1 and client.reads == 2
    assert _replicas(kube, "racing") == 10 - 2 + 3
    assert _requested(kube, "racing") == "a,b"
    # A repeat (the cluster-autoscaler's retry after a lost answer) changes nothing.
    assert scaler.request_removal("racing", ["a"]) == 0
    assert _replicas(kube, "racing") == 11


def test_a_removal_of_a_name_no_longer_present_records_nothing(kube: KubeClient, nodesets: Informer[NodeSet]) -> None:
    kube.create(NODESETS, nodeset_manifest("gone", 3))
    scaler = NodeSetScaler(kube, nodesets)
    with pytest.raises(RemovalOfGoneNodesError) as caught:
        scaler.request_removal("gone", ["here", "went"], present=lambda name: name == "here")
    assert caught.value.names == ["went"]
    assert _replicas(kube, "gone") == 3 and _requested(kube, "gone") is None


def test_a_nodeset_that_keeps_changing_raises_the_one_error_and_nothing_is_written(
    kube: KubeClient, nodesets: Informer[NodeSet]
) -> None:
    kube.create(NODESETS, nodeset_manifest("busy", 4))
    changes = itertools.count()

    def meddle() -> None:  # another writer changes the NodeSet after every read, so no write can land
        kube.patch(NODESETS, "busy", {"metadata": {"annotations": {"example.com/touched": str(next(changes))}}})

    client = _Counting(kube.configuration, after_read=meddle)
    scaler = NodeSetScaler(client, nodesets)
    with pytest.raises(NodeSetConflictError, match=r"NodeSet busy kept changing .*replicas not changed"):
        scaler.resize("busy", _plus(1))
    assert client.reads == client.conflicts == CONFLICT_ATTEMPTS
    with pytest.raises(NodeSetConflictError, match=r"kept changing .*removal of \['x'\] not recorded"):
        scaler.request_removal("busy", ["x"])
    assert client.conflicts == 2 * CONFLICT_ATTEMPTS
    assert _replicas(kube, "busy") == 4 and _requested(kube, "busy") is None


def test_a_refusal_by_the_change_writes_nothing_and_is_raised_as_it_is(
    kube: KubeClient, nodesets: Informer[NodeSet]
) -> None:
    kube.create(NODESETS, nodeset_manifest("refused", 2))
    client = _Counting(kube.configuration)
    scaler = NodeSetScaler(client, nodesets)

    def refuse(nodeset: NodeSet) -> int:
        raise ValueError(f"not from {nodeset.spec.replicas}")

    with pytest.raises(ValueError, match="not from 2"):
        scaler.resize("refused", refuse)
    assert scaler.resize("refused", _plus(0)).after == 2  # no change: nothing written
    assert client.reads == 2 and _replicas(kube, "refused") == 2


def test_a_write_is_in_the_cache_when_the_resize_returns(kube: KubeClient, nodesets: Informer[NodeSet]) -> None:
    kube.create(NODESETS, nodeset_manifest("seen", 1))
    eventually(lambda: nodesets.get("seen"))
    scaler = NodeSetScaler(kube, nodesets)
    for expected in (3, 6, 10):
        scaler.resize("seen", _plus(expected - _replicas(kube, "seen")))
        cached = nodesets.get("seen")
        assert cached is not None and cached.spec.replicas == expected  # waited for, not polled for
        assert scaler.replicas(cached) == expected
    assert scaler.request_removal("seen", ["n1"]) == 1
    cached = nodesets.get("seen")
    assert cached is not None and cached.spec.replicas == 9


def test_a_write_is_read_back_before_the_watch_delivers_it_and_the_cache_after(kube: KubeClient) -> None:
    kube.create(NODESETS, nodeset_manifest("slow", 1))
    client = _GatedWatches(kube.configuration)
    informer = Informer(client, NODESETS, nodeset_from_json)
    informer.start()
    try:
        assert informer.wait_synced(10)
        before = eventually(lambda: informer.get("slow"))
        scaler = NodeSetScaler(kube, informer, catch_up=0.3)
        client.gate.clear()  # the watch delivers nothing for now
        assert scaler.resize("slow", _plus(4)).after == 5  # gave up waiting after 0.3 s; the write stands
        cached = informer.get("slow")
        assert cached is not None and cached.spec.replicas == 1  # the cache has not seen it ...
        assert scaler.replicas(cached) == 5  # ... but the writer reads its write
        assert scaler.replicas(before) == 5
        client.gate.set()
        caught_up = eventually(lambda: (ns := informer.get("slow")) is not None and ns.spec.replicas == 5 and ns)
        assert scaler.replicas(caught_up) == 5
        # Once the cache has shown the write, the cache answers: a later write by anyone else shows through.
        kube.patch(NODESETS, "slow", {"spec": {"replicas": 2}})
        later = eventually(lambda: (ns := informer.get("slow")) is not None and ns.spec.replicas == 2 and ns)
        assert scaler.replicas(later) == 2
        # A snapshot taken before the cache caught up is not answered with either, once the write is seen.
        client.gate.clear()
        scaler.resize("slow", _plus(1))
        client.gate.set()
        eventually(lambda: (ns := informer.get("slow")) is not None and ns.spec.replicas == 3)
        assert scaler.replicas(later) == 3
    finally:
        client.gate.set()
        informer.stop()
