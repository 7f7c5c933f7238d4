"""The one writer of a NodeSet's size: ``spec.replicas``, and the named removals that lower it.

Every path that changes how many Nodes a NodeSet keeps goes through a :class:`NodeSetScaler`: the
cluster-autoscaler provider (IncreaseSize, DecreaseTargetSize, DeleteNodes), the pending-pod autoscaler
(raises, and removals of empty or underused Nodes) and the NodeSetController (giving back failed replicas,
pruning names of Nodes that went). So they share:

- **one retry policy**: each write carries the resourceVersion of the read it was computed from, and a write
  that loses the race (409 Conflict) is computed again from a fresh read, after a jittered backoff, up to
  ``CONFLICT_ATTEMPTS`` times; writes of one scaler to one NodeSet go one at a time, so its own callers
  never conflict with each other, only with other writers (status writes, kubectl, another process);
- **one error** when every attempt conflicted: :class:`NodeSetConflictError`, with nothing written;
- **one read-your-write**: after a write the scaler waits (briefly) until the NodeSet cache holds the
  resourceVersion the write returned, compared for equality (see ``Observation``), and until then
  :meth:`NodeSetScaler.replicas` answers with the replicas written, so an answer read right after a write
  agrees with it even when the watch is slow.

Named removals (``request_removal``) must be atomic and idempotent, as the cluster-autoscaler's DeleteNodes
requires: either the NodeSet will remove exactly those Nodes, or nothing changed. Annotating the Nodes and
then lowering replicas would be two writes, and a crash between them would either lose the request or, on a
retry, lower replicas twice. So the request lives on the NodeSet itself: ``kube-node.io/delete-requested-nodes``
lists the names, and the same write lowers ``spec.replicas`` by the number of names it adds. Names already
listed are not counted again, so a retry changes nothing. The NodeSetController takes listed Nodes first on
scale-down and prunes names of Nodes that are gone (``prune_requested``).
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TypeVar

from ..api import ANNOTATION_DELETE_REQUESTED_NODES, NodeSet, format_names, parse_names, requested_nodes
from ._client import JSON, ApiError, KubeClient
from ._informer import Informer, Observation
from ._records import nodeset_from_json
from ._resources import NODESETS

#: How many times a change of a NodeSet's size is computed and written before it gives up with
#: NodeSetConflictError: each write that fails with 409 Conflict (the NodeSet changed since it was read) is
#: computed again from a fresh read.
CONFLICT_ATTEMPTS = 20
#: The backoff between attempts: full jitter (uniform from 0) on a ceiling that doubles from the first value
#: up to the second, so writers that collided spread out. At most about 3.5 s of waiting in all.
_BACKOFF_FIRST, _BACKOFF_MAX = 0.005, 0.25
#: How long a write waits for the NodeSet cache to show it (well inside the cluster-autoscaler's gRPC timeout).
CACHE_CATCH_UP = 2.0
#: How long :meth:`NodeSetScaler.replicas` keeps answering with a write the cache has not shown (a cache that
#: missed it entirely, through a re-list that started before the write returned, is fresh again by then).
_WRITTEN_TTL = 60.0

_T = TypeVar("_T")


class NodeSetConflictError(RuntimeError):
    """Every attempt to change the NodeSet lost the optimistic-concurrency race; nothing was written."""

    def __init__(self, nodeset: str, what: str) -> None:
        super().__init__(f"NodeSet {nodeset} kept changing ({CONFLICT_ATTEMPTS} conflicting writes); {what}")
        self.nodeset = nodeset


class RemovalOfGoneNodesError(RuntimeError):
    """Some Nodes to be named are no longer Nodes of the set; nothing was written."""

    def __init__(self, nodeset: str, names: list[str]) -> None:
        super().__init__(f"NodeSet {nodeset}: {', '.join(names)} no longer exist; nothing was recorded")
        self.names = names


@dataclass(frozen=True)
class Resized:
    """What a resize did: replicas as read and as written (equal when nothing was written)."""

    before: int
    after: int


@dataclass
class _Written:
    """A write the cache may not show yet, and the observation that tells."""

    replicas: int
    observation: Observation
    at: float
    waiting: bool = True  #: its writer still waits on the observation (and closes it when superseded)


def _backoff(attempt: int) -> float:
    """Seconds to wait before attempt ``attempt`` (1 for the first retry) of a write that conflicted."""
    return random.uniform(0.0, min(_BACKOFF_MAX, _BACKOFF_FIRST * 2.0 ** (attempt - 1)))


class NodeSetScaler:
    """Changes NodeSets' sizes with optimistic concurrency, and remembers its writes until the cache shows them.

    ``nodesets`` is the NodeSet cache the callers read from (None: no read-your-write, for a caller without
    one). One scaler per process is enough; each write to a NodeSet waits for the scaler's earlier ones."""

    def __init__(
        self, client: KubeClient, nodesets: Informer[NodeSet] | None = None, *, catch_up: float = CACHE_CATCH_UP
    ) -> None:
        self._client = client
        self._nodesets = nodesets
        self._catch_up = catch_up
        self._guard = threading.Lock()
        self._locks: dict[str, threading.Lock] = {}
        self._written: dict[str, _Written] = {}

    # -- reading your writes -----------------------------------------------------------------------------

    def replicas(self, nodeset: NodeSet) -> int:
        """``spec.replicas`` of a NodeSet read from the cache: what this scaler wrote last, while the cache does
        not show that write yet; else the cache's (read again once the write is seen, so a snapshot taken just
        before the cache caught up is not answered with)."""
        name = nodeset.metadata.name
        with self._guard:
            written = self._written.get(name)
            if written is None:
                return nodeset.spec.replicas
            if not written.observation.observed and time.monotonic() - written.at < _WRITTEN_TTL:
                return written.replicas
            del self._written[name]
        written.observation.close()
        fresh = self._nodesets.get(name) if self._nodesets is not None else None
        return (fresh or nodeset).spec.replicas

    # -- writing -----------------------------------------------------------------------------------------

    def resize(self, name: str, change: Callable[[NodeSet], int]) -> Resized:
        """Set replicas to ``change(the NodeSet as just read)`` through the scale subresource, with the read's
        resourceVersion, computed again from a fresh read on each conflict. Nothing is written when the value
        stays. Errors raised by ``change`` (a refusal) come out as they are, with nothing written."""

        def attempt() -> tuple[JSON | None, Resized]:
            current = self._client.get(NODESETS, name)
            nodeset = nodeset_from_json(current)
            before = nodeset.spec.replicas
            after = change(nodeset)
            if after == before:
                return None, Resized(before, before)
            scale = {
                "apiVersion": "autoscaling/v1",
                "kind": "Scale",
                "metadata": {"name": name, "resourceVersion": current["metadata"]["resourceVersion"]},
                "spec": {"replicas": after},
            }
            return self._client.replace(NODESETS, name, scale, subresource="scale"), Resized(before, after)

        return self._write(name, "replicas not changed", attempt)

    def request_removal(self, name: str, names: Iterable[str], present: Callable[[str], bool] = lambda _: True) -> int:
        """Record the removal of ``names`` and lower replicas by the number newly recorded, in one write with
        the NodeSet's resourceVersion (retried on conflict). Returns how many names were new (0 for a repeat).

        ``present`` says whether a name is still a Node of the set, from the cache the NodeSetController prunes
        by; it is asked after each read of the NodeSet, about the names that read does not list. A name pruned
        because its Node went looks new again, and recording it would lower replicas a second time for the
        same Node, so a repeat that arrives after the prune raises RemovalOfGoneNodesError instead. Asked after
        the read, the answer cannot be older than the prune: the cache lost the Node before the prune was
        written."""
        wanted = set(names)

        def attempt() -> tuple[JSON | None, int]:
            current = self._client.get(NODESETS, name)
            annotations = current["metadata"].get("annotations") or {}
            listed = parse_names(annotations.get(ANNOTATION_DELETE_REQUESTED_NODES, ""))
            new = wanted - listed
            if not new:
                return None, 0
            gone = sorted(n for n in new if not present(n))
            if gone:
                raise RemovalOfGoneNodesError(name, gone)
            patch = {
                "metadata": {
                    "resourceVersion": current["metadata"]["resourceVersion"],
                    "annotations": {ANNOTATION_DELETE_REQUESTED_NODES: format_names(listed | new)},
                },
                "spec": {"replicas": max(0, int(current["spec"].get("replicas", 0)) - len(new))},
            }
            return self._client.patch(NODESETS, name, patch), len(new)

        return self._write(name, f"removal of {sorted(wanted)} not recorded", attempt)

    def prune_requested(self, nodeset: NodeSet, present: set[str]) -> None:
        """Drop the names of Nodes that are gone (not in ``present``) from the NodeSet's removal requests.

        One attempt, bound to the resourceVersion of ``nodeset``, the cached NodeSet ``present`` was computed
        with: recomputed from a fresh read, it could drop a name recorded since, whose Node ``present`` (older)
        does not know yet, and that name's replica was already given back. A conflict or a NodeSet gone leaves
        it to the next reconcile, which sees the fresh NodeSet."""
        listed = requested_nodes(nodeset)
        keep = listed & present
        if keep == listed:
            return
        name = nodeset.metadata.name
        patch = {
            "metadata": {
                "resourceVersion": nodeset.metadata.resource_version,
                "annotations": {ANNOTATION_DELETE_REQUESTED_NODES: format_names(keep) or None},
            }
        }

        def attempt() -> tuple[JSON | None, None]:
            try:
                return self._client.patch(NODESETS, name, patch), None
            except ApiError as error:
                if error.conflict or error.not_found:
                    return None, None
                raise

        self._write(name, "names not pruned", attempt)

    def _write(self, name: str, what: str, attempt: Callable[[], tuple[JSON | None, _T]]) -> _T:
        """Run ``attempt`` (read, compute, write with the read's resourceVersion; it returns the object written,
        or None if it wrote nothing, and its result) until it does not conflict, then read your write: the
        cache is observed from before the first attempt, so no event of the write can be missed."""
        with self._lock_for(name):
            observation = self._nodesets.observe(name) if self._nodesets is not None else None
            try:
                written, result = self._attempts(name, what, attempt)
            except BaseException:
                if observation is not None:
                    observation.close()
                raise
            if observation is None:
                return result
            if written is None:
                observation.close()
                return result
            observation.expect(written["metadata"]["resourceVersion"])
            mine = _Written(int(written["spec"].get("replicas", 0)), observation, time.monotonic())
            with self._guard:
                earlier = self._written.get(name)
                self._written[name] = mine
                settled = earlier is not None and not earlier.waiting  # (one still waited on, its writer closes)
            if earlier is not None and settled:
                earlier.observation.close()
        seen = observation.wait(timeout=self._catch_up)  # False: the write stands; ``replicas`` answers with it
        with self._guard:
            current = self._written.get(name) is mine
            if current and seen:
                del self._written[name]
            mine.waiting = False
        if seen or not current:
            observation.close()
        return result

    def _attempts(self, name: str, what: str, attempt: Callable[[], _T]) -> _T:
        for number in range(CONFLICT_ATTEMPTS):
            if number:
                time.sleep(_backoff(number))
            try:
                return attempt()
            except ApiError as error:
                if not error.conflict:
                    raise
        raise NodeSetConflictError(name, what)

    def _lock_for(self, name: str) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(name, threading.Lock())
