"""An informer's observations of one's own writes, without a control plane: resourceVersions are opaque strings,
compared for equality only (these are neither numbers nor in order), waits wake on the applied event, and a
list begun after the write stands for an event the watch skipped."""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Iterator
from typing import Any

from nodeset_controller.kube import NODESETS, ApiError, Informer


class _Scripted:
    """A client whose lists answer from ``objects`` and whose watches yield what the test puts on ``events``
    (an ApiError ends the watch with it; a quiet moment ends it without)."""

    def __init__(self, objects: dict[str, str]) -> None:
        self.objects = objects  # name -> resourceVersion
        self.events: queue.Queue[dict[str, Any] | ApiError] = queue.Queue()
        self.lists = 0

    def list(self, resource: Any, **params: Any) -> dict[str, Any]:
        self.lists += 1
        items = [{"metadata": {"name": name, "resourceVersion": rv}} for name, rv in self.objects.items()]
        return {"items": items, "metadata": {"resourceVersion": f"list-{self.lists}"}}

    def watch(self, resource: Any, **params: Any) -> Iterator[dict[str, Any]]:
        while True:
            try:
                event = self.events.get(timeout=0.1)
            except queue.Empty:
                return  # the watch ends, as the server ends each; the informer opens the next
            if isinstance(event, ApiError):
                raise event
            yield event

    def modified(self, name: str, version: str) -> None:
        self.objects[name] = version
        self.events.put({"type": "MODIFIED", "object": {"metadata": {"name": name, "resourceVersion": version}}})


def _informer(client: _Scripted) -> Informer[dict[str, Any]]:
    informer: Informer[dict[str, Any]] = Informer(
        client,  # type: ignore[arg-type]  # the two methods an informer calls
        NODESETS,
        lambda obj: obj,
        name="scripted",
    )
    informer.start()
    assert informer.wait_synced(5)
    return informer


def test_versions_are_compared_for_equality_only_and_never_ordered() -> None:
    client = _Scripted({"a": "zz9"})
    informer = _informer(client)
    try:
        with informer.observe("a") as written, informer.observe("a") as other:
            client.modified("a", "Bq")  # "Bq" < "zz9" as strings, and neither is a number
            client.modified("a", "7")
            assert written.wait("Bq", timeout=5)
            # "7" was applied after "Bq": an observation expecting a version not (yet) applied waits for it.
            assert not other.wait("8", timeout=0.2)
            client.modified("a", "8")
            assert other.wait(timeout=5)
        with informer.observe("a") as late:
            late.expect("Bq")  # applied before this observation was opened: not seen by it
            assert not late.observed
    finally:
        informer.stop()


def test_a_wait_wakes_on_the_event_that_applies_the_version() -> None:
    client = _Scripted({"a": "1"})
    informer = _informer(client)
    try:
        observation = informer.observe("a")
        observation.expect("x")
        woke: list[float] = []

        def wait() -> None:
            started = time.monotonic()
            if observation.wait(timeout=10):
                woke.append(time.monotonic() - started)

        waiter = threading.Thread(target=wait)
        waiter.start()
        time.sleep(0.2)
        client.modified("b", "x")  # another object at that version: not this one
        time.sleep(0.2)
        assert not woke
        sent = time.monotonic()
        client.modified("a", "x")
        waiter.join(5)
        assert woke and woke[0] < 5 and time.monotonic() - sent < 1.0
    finally:
        informer.stop()


def test_a_version_the_watch_skipped_counts_as_seen_once_a_later_list_is_loaded() -> None:
    client = _Scripted({"a": "v1"})
    informer = _informer(client)
    try:
        with informer.observe("a") as observation:
            observation.expect("v2")  # written; its event will never come: the watch expires first
            client.objects["a"] = "v3"  # and someone wrote on top of it
            client.events.put(ApiError(410, "Expired", "too old resource version"))
            assert observation.wait(timeout=10)  # the re-list began after the write: it holds it or newer
        assert informer.relists == 1 and informer.get("a") == {"metadata": {"name": "a", "resourceVersion": "v3"}}
    finally:
        informer.stop()
