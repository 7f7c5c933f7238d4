"""The informer's cache follows the API server: list, watch, indexes, deletes, and a re-list on 410 Gone."""

from __future__ import annotations

from typing import Any

import pytest

from nodeset_controller.kube import NODES, ApiError, Informer, KubeClient, NodeRecord
from tests.conftest import eventually

pytestmark = pytest.mark.controlplane


class ExpiringWatches(KubeClient):
    """The real client, except that the next watch fails as an expired one would (410 Gone)."""

    expire_next = False

    def watch(self, *args: Any, **kwargs: Any) -> Any:
        if self.expire_next:
            self.expire_next = False
            raise ApiError(410, "Expired", "too old resource version")
        return super().watch(*args, **kwargs)


def test_the_cache_follows_creates_updates_and_deletes_with_indexes(kube: KubeClient) -> None:
    kube.create(NODES, {"metadata": {"name": "before", "labels": {"pool": "a"}}})
    seen: list[tuple[str | None, str | None]] = []
    informer = Informer(kube, NODES, NodeRecord.from_json, indexers={"pool": lambda n: (n.labels.get("pool", ""),)})
    informer.add_handler(lambda old, new: seen.append((old and old.name, new and new.name)))
    informer.start()
    try:
        assert informer.wait_synced(10)
        assert [n.name for n in informer.by_index("pool", "a")] == ["before"]
        kube.create(NODES, {"metadata": {"name": "after", "labels": {"pool": "a"}}})
        eventually(lambda: len(informer.by_index("pool", "a")) == 2)
        kube.patch(NODES, "after", {"metadata": {"labels": {"pool": "b"}}})
        eventually(lambda: [n.name for n in informer.by_index("pool", "b")] == ["after"])
        assert [n.name for n in informer.by_index("pool", "a")] == ["before"]
        kube.delete(NODES, "before")
        eventually(lambda: informer.get("before") is None)
        assert informer.by_index("pool", "a") == []
        assert (None, "after") in seen and ("before", None) in seen
    finally:
        informer.stop()


def test_an_expired_watch_makes_the_informer_list_again_and_catch_up(kube: KubeClient) -> None:
    client = ExpiringWatches(kube.configuration)
    informer = Informer(client, NODES, NodeRecord.from_json, read_timeout=2.0)
    informer.start()
    try:
        assert informer.wait_synced(10)
        client.expire_next = True
        kube.create(NODES, {"metadata": {"name": "during"}})
        eventually(lambda: informer.get("during") is not None)
        # The open watch ends within its read timeout; the next one is refused with 410 and the cache re-lists.
        eventually(lambda: informer.relists == 1, timeout=15, what="a re-list")
        kube.create(NODES, {"metadata": {"name": "after-relist"}})
        eventually(lambda: informer.get("after-relist") is not None)
    finally:
        informer.stop()
