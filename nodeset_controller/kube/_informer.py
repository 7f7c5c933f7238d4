"""A watch-fed cache of slim records: list, then watch with bookmarks, re-list when the watch expires.

Each object the API server sends is turned into a small record by a ``transform`` function as it arrives,
so the cache never holds whole objects (a Node is about 12 KB of JSON: at thousands of Nodes and tens of
thousands of pods only slim records fit). Indexes answer the questions readers ask (by providerID, by NodeSet, ...).
Handlers are called with (old, new) records on every change, from the informer's own thread; they should
only enqueue work.

A writer that must read its own write from the cache opens an :class:`Observation` of the object's key before
it writes, and waits on it with the resourceVersion the write returned. resourceVersions are opaque strings
(the API conventions: a client may compare them for equality only, never order them), so the observation
does not ask whether the cache is "at or past" a version: it collects the versions the informer applies for
that key, and is satisfied when one of them is the written one, or when a list that began after the write
was loaded (a list is a fresh read, so it holds the write or something newer). Waits sleep on a condition
the informer signals on every change it applies.
"""

from __future__ import annotations

import builtins
import logging
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any, Generic, TypeVar

import urllib3

from .. import metrics
from ._client import JSON, ApiError, KubeClient, Resource

log = logging.getLogger(__name__)

R = TypeVar("R")
Handler = Callable[[R | None, R | None], None]
Indexer = Callable[[R], Iterable[str]]

_PAGE = 500

#: Seconds a watch may go without a byte before it is presumed dead (a connection that went silent: a peer
#: gone without a FIN, a stuck proxy or load balancer). The server is asked to end each watch well before
#: (``watch_timeout_for``), so a healthy watch is never this quiet: bookmarks alone would not do, the API
#: server sends none while its cache of the kind has not moved past the watch.
DEFAULT_WATCH_IDLE_TIMEOUT = 30.0


def watch_timeout_for(idle_timeout: float) -> int:
    """The server-side ``timeoutSeconds`` that keeps a healthy watch from ever being ``idle_timeout`` quiet:
    two thirds of it, so a watch ends (and is opened again from its resourceVersion) first."""
    return max(1, int(idle_timeout * 2 / 3))


def object_key(obj: JSON) -> str:
    """``namespace/name`` for namespaced objects, ``name`` for cluster-scoped ones."""
    meta = obj["metadata"]
    namespace = meta.get("namespace")
    return f"{namespace}/{meta['name']}" if namespace else str(meta["name"])


class Informer(Generic[R]):
    """Keeps an up-to-date, indexed cache of one kind of object as records of type ``R``."""

    def __init__(
        self,
        client: KubeClient,
        resource: Resource,
        transform: Callable[[JSON], R],
        *,
        label_selector: str | None = None,
        field_selector: str | None = None,
        indexers: dict[str, Indexer[R]] | None = None,
        watch_timeout: int | None = None,
        read_timeout: float = DEFAULT_WATCH_IDLE_TIMEOUT,
        name: str | None = None,
    ) -> None:
        """``read_timeout`` is the watch idle timeout (see DEFAULT_WATCH_IDLE_TIMEOUT); ``watch_timeout``, the
        server-side timeoutSeconds of each watch, defaults to two thirds of it and must be shorter."""
        watch_timeout = watch_timeout_for(read_timeout) if watch_timeout is None else watch_timeout
        if not 0 < watch_timeout < read_timeout:
            raise ValueError(f"a watch's timeout ({watch_timeout} s) must be shorter than its read timeout")
        self._name = name or resource.plural
        self._client = client
        self._resource = resource
        self._transform = transform
        self._selectors = {"labelSelector": label_selector, "fieldSelector": field_selector}
        self._indexers = dict(indexers or {})
        self._watch_timeout = watch_timeout
        self._read_timeout = read_timeout
        self._lock = threading.RLock()
        self._applied = threading.Condition(self._lock)  # signalled on every change the cache applies
        self._observations: dict[str, builtins.list[Observation]] = {}
        self._lists_started = 0  # lists begun, counted
        self._listed = 0  # which of them (by that count) was loaded last
        self._items: dict[str, R] = {}
        self._indexes: dict[str, dict[str, set[str]]] = {name: {} for name in self._indexers}
        self._handlers: list[Handler[R]] = []
        self._synced = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.resource_version = ""
        self.relists = 0  #: lists after the first (a watch expired: 410 Gone)
        self.silent_watches = 0  #: watches given up because nothing arrived within the read timeout
        metrics.watch_cache(self)

    @property
    def name(self) -> str:
        """What this informer watches (its resource, unless named otherwise), for logs and metrics."""
        return self._name

    # -- reading -----------------------------------------------------------------------------------------

    def get(self, key: str) -> R | None:
        """The record for ``key`` (``name`` or ``namespace/name``), if cached."""
        with self._lock:
            return self._items.get(key)

    def list(self) -> builtins.list[R]:
        """Every cached record."""
        with self._lock:
            return list(self._items.values())

    def keys(self) -> builtins.list[str]:
        """Every cached key."""
        with self._lock:
            return list(self._items)

    def by_index(self, index: str, value: str) -> builtins.list[R]:
        """Records whose indexer ``index`` yielded ``value``."""
        with self._lock:
            return [self._items[key] for key in self._indexes[index].get(value, ())]

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)

    @property
    def running(self) -> bool:
        """Whether the watch thread is alive (it runs from ``start`` until ``stop``)."""
        return self._thread is not None and self._thread.is_alive()

    @property
    def synced(self) -> bool:
        """Whether the first list has been loaded."""
        return self._synced.is_set()

    def wait_synced(self, timeout: float | None = None) -> bool:
        """Block until the first list has been loaded; False on timeout."""
        return self._synced.wait(timeout)

    def observe(self, key: str) -> Observation:
        """Start collecting the resourceVersions this cache applies for ``key``: open it before a write, then
        ``wait`` on it with the resourceVersion the write returned (see :class:`Observation`)."""
        observation = Observation(self, key)
        with self._lock:
            self._observations.setdefault(key, []).append(observation)
        return observation

    # -- running -----------------------------------------------------------------------------------------

    def add_handler(self, handler: Handler[R]) -> None:
        """Call ``handler(old, new)`` on every add (old None), update, and delete (new None)."""
        self._handlers.append(handler)

    def start(self) -> None:
        """Start listing and watching on a daemon thread."""
        self._thread = threading.Thread(target=self._run, name=f"informer-{self.name}", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop watching (within the watch's read timeout at worst; the thread is a daemon)."""
        self._stop.set()

    def _run(self) -> None:
        backoff = 0.2
        need_list = True
        while not self._stop.is_set():
            try:
                if need_list:
                    self._list()
                    need_list = False
                self._watch()
                backoff = 0.2
            except ApiError as error:
                if error.gone:
                    log.info("%s: watch expired (410 Gone); re-listing", self.name)
                    metrics.WATCH_RESTARTS.labels(self.name, "expired").inc()
                    need_list = True
                    self.relists += 1
                    continue
                metrics.WATCH_RESTARTS.labels(self.name, "broken").inc()
                log.warning("%s: %s; retrying in %.1f s", self.name, error, backoff)
                self._stop.wait(backoff)
                backoff = min(backoff * 2, 10.0)
            except urllib3.exceptions.ReadTimeoutError:
                # Nothing, not even a bookmark, within the read timeout, though the server ends every watch
                # sooner: the connection is dead without having said so. Watch again (on a new connection)
                # from the last resourceVersion seen; if that is too old by now, the 410 above re-lists.
                metrics.WATCH_RESTARTS.labels(self.name, "silent").inc()
                self.silent_watches += 1
                log.warning(
                    "%s: watch silent for %.0f s; reconnecting from resourceVersion %s",
                    self.name,
                    self._read_timeout,
                    self.resource_version,
                )
                self._stop.wait(backoff)
                backoff = min(backoff * 2, 10.0)
            except (urllib3.exceptions.HTTPError, OSError, ValueError) as error:
                # The connection ended (the API server restarted, a proxy cut it): watch again from the last
                # resourceVersion seen.
                metrics.WATCH_RESTARTS.labels(self.name, "broken").inc()
                log.info("%s: watch connection ended (%s); resuming", self.name, type(error).__name__)
                self._stop.wait(backoff)
                backoff = min(backoff * 2, 10.0)

    def _list(self) -> None:
        with self._lock:
            self._lists_started += 1
            number = self._lists_started
        fresh: dict[str, R] = {}
        versions: dict[str, str] = {}  # the listed resourceVersions of observed objects
        params: dict[str, Any] = {"limit": _PAGE, **self._selectors}
        while True:
            page = self._client.list(self._resource, **params)
            with self._lock:  # observed before the page was read, or the page cannot hold the write observed
                observed = set(self._observations)
            for item in page.get("items") or []:
                key = object_key(item)
                fresh[key] = self._transform(item)
                if key in observed:
                    versions[key] = item["metadata"].get("resourceVersion", "")
            token = page["metadata"].get("continue")
            if not token:
                self.resource_version = page["metadata"]["resourceVersion"]
                break
            params["continue"] = token
        with self._lock:
            old_items = self._items
            self._items = {}
            self._indexes = {name: {} for name in self._indexers}
            for key, record in fresh.items():
                self._store(key, record)
            for key, version in versions.items():
                if key in self._observations:
                    self._apply_version(key, version)
            self._listed = number
            self._applied.notify_all()
        for key, record in fresh.items():
            self._notify(old_items.get(key), record)
        for key, record in old_items.items():
            if key not in fresh:
                self._notify(record, None)
        self._synced.set()
        log.debug("%s: listed %d at resourceVersion %s", self.name, len(fresh), self.resource_version)

    def _watch(self) -> None:
        events = self._client.watch(
            self._resource,
            resource_version=self.resource_version,
            timeout_seconds=self._watch_timeout,
            read_timeout=self._read_timeout,
            **self._selectors,
        )
        for event in events:
            if self._stop.is_set():
                return
            kind, obj = event["type"], event["object"]
            self.resource_version = obj["metadata"].get("resourceVersion", self.resource_version)
            if kind == "BOOKMARK":
                continue
            key = object_key(obj)
            with self._lock:
                old = self._items.get(key)
                if kind == "DELETED":
                    self._remove(key)
                    new = None
                else:
                    new = self._transform(obj)
                    self._store(key, new)
                if key in self._observations:
                    self._apply_version(key, obj["metadata"].get("resourceVersion", ""))
                self._applied.notify_all()
            self._notify(old, new)

    def _apply_version(self, key: str, version: str) -> None:
        """Tell the observations of ``key`` that the cache applied ``version`` of it (the lock held)."""
        waiting = []
        for observation in self._observations[key]:
            if not observation._saw(version):
                waiting.append(observation)
        if waiting:
            self._observations[key] = waiting
        else:
            del self._observations[key]

    def _forget(self, observation: Observation) -> None:
        with self._lock:
            others = [o for o in self._observations.get(observation.key, ()) if o is not observation]
            if others:
                self._observations[observation.key] = others
            else:
                self._observations.pop(observation.key, None)

    def _store(self, key: str, record: R) -> None:
        self._remove(key)
        self._items[key] = record
        for name, indexer in self._indexers.items():
            for value in indexer(record):
                self._indexes[name].setdefault(value, set()).add(key)

    def _remove(self, key: str) -> None:
        record = self._items.pop(key, None)
        if record is None:
            return
        for name, indexer in self._indexers.items():
            for value in indexer(record):
                keys = self._indexes[name].get(value)
                if keys is not None:
                    keys.discard(key)
                    if not keys:
                        del self._indexes[name][value]

    def _notify(self, old: R | None, new: R | None) -> None:
        for handler in self._handlers:
            try:
                handler(old, new)
            except Exception:
                log.exception("%s: event handler failed", self.name)


class Observation:
    """The resourceVersions an informer applied for one key since the observation was opened: how a writer
    tells that the cache holds its write. Open it (``Informer.observe``) before writing, so no event of the
    write can be missed; then ``expect`` the resourceVersion the write returned, and ``wait`` or ask
    ``observed``. Compared for equality only; a list loaded after ``expect`` counts too (it read the write or
    something newer). A context manager: leaving it stops the collecting (so does being observed)."""

    def __init__(self, informer: Informer[Any], key: str) -> None:
        self.key = key
        self._informer = informer
        self._seen: set[str] = set()  # versions applied before the one expected was known
        self._expected: str | None = None
        self._done = False
        self._lists_started = 0  # the informer's count of lists begun, when the version expected was known

    def _saw(self, version: str) -> bool:
        """One version of the key applied (the informer's lock held); True once the expected one has been."""
        if self._expected is None:
            self._seen.add(version)
        elif version == self._expected:
            self._done = True
        return self._done

    def expect(self, version: str) -> None:
        """The resourceVersion the write returned (a string: never compared but for equality)."""
        with self._informer._lock:
            self._expected = version
            self._done = self._done or version in self._seen
            self._seen = set()
            self._lists_started = self._informer._lists_started
            if self._done:
                self._informer._forget(self)

    @property
    def observed(self) -> bool:
        """Whether the cache holds the version expected, or what replaced it."""
        with self._informer._lock:
            return self._observed()

    def _observed(self) -> bool:
        return self._expected is not None and (self._done or self._informer._listed > self._lists_started)

    def wait(self, version: str | None = None, timeout: float = 2.0) -> bool:
        """Block until ``observed`` (expecting ``version`` first, if given), woken by each change the informer
        applies; False on timeout."""
        if version is not None:
            self.expect(version)
        with self._informer._applied:
            return self._informer._applied.wait_for(self._observed, timeout)

    def close(self) -> None:
        """Stop collecting."""
        self._informer._forget(self)

    def __enter__(self) -> Observation:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


def wait_for_sync(informers: Iterable[Informer[Any]], timeout: float) -> None:
    """Block until every informer has listed once; raise TimeoutError naming those that have not."""
    deadline = time.monotonic() + timeout
    for informer in informers:
        if not informer.wait_synced(max(0.0, deadline - time.monotonic())):
            raise TimeoutError(f"cache of {informer.name} did not sync within {timeout:.0f} s")
