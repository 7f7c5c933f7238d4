"""A rate-limited work queue of object keys, with the guarantees of client-go's workqueue.

- A key waiting in the queue is there once, however often it is added (so a burst of events is one
  reconcile).
- A key is never handed to two workers at once; one added while it is being processed is queued again when
  the worker calls ``done``.
- ``add_rate_limited`` delays a key exponentially per failure (``forget`` resets it); ``add_after`` delays it
  by a fixed time (a requeue for a timer).
"""

from __future__ import annotations

import heapq
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from .. import metrics
from ._client import ApiError
from ._fence import NotLeaderError
from ._nodeset_size import NodeSetConflictError

log = logging.getLogger(__name__)


class WorkQueue:
    """Keys to reconcile, deduplicated, with delays and per-key exponential backoff."""

    def __init__(self, name: str, *, base_delay: float = 0.5, max_delay: float = 300.0) -> None:
        self.name = name
        self._base_delay = base_delay
        self._max_delay = max_delay
        self._cond = threading.Condition()
        self._queue: deque[str] = deque()
        self._dirty: set[str] = set()
        self._processing: set[str] = set()
        self._waiting: list[tuple[float, int, str]] = []  # (ready at, seq, key): a heap
        self._waiting_at: dict[str, float] = {}  # the one live entry per key in the heap
        self._seq = 0
        self._failures: dict[str, int] = {}
        self._added_at: dict[str, float] = {}
        self._shutdown = False
        metrics.watch_queue(self)

    def add(self, key: str) -> None:
        """Queue ``key`` now (once, however often it is added before a worker takes it)."""
        with self._cond:
            self._add_locked(key)

    def _add_locked(self, key: str) -> None:
        if self._shutdown or key in self._dirty:
            return
        self._dirty.add(key)
        metrics.WORKQUEUE_ADDS.labels(self.name).inc()
        self._added_at.setdefault(key, time.monotonic())
        if key not in self._processing:
            self._queue.append(key)
            self._cond.notify()

    def add_after(self, key: str, delay: float) -> None:
        """Queue ``key`` after ``delay`` seconds."""
        if delay <= 0:
            self.add(key)
            return
        ready_at = time.monotonic() + delay
        with self._cond:
            if self._shutdown:
                return
            if self._waiting_at.get(key, float("inf")) <= ready_at:
                return  # already due sooner: one wake-up per key, not one per request
            self._waiting_at[key] = ready_at
            self._seq += 1
            heapq.heappush(self._waiting, (ready_at, self._seq, key))
            self._cond.notify()

    def add_rate_limited(self, key: str) -> float:
        """Queue ``key`` after its next backoff delay (0.5 s, 1 s, 2 s, ... up to the maximum); returns it."""
        with self._cond:
            failures = self._failures.get(key, 0)
            self._failures[key] = failures + 1
        metrics.WORKQUEUE_RETRIES.labels(self.name).inc()
        delay = min(self._base_delay * float(2**failures), self._max_delay)
        self.add_after(key, delay)
        return delay

    def failures(self, key: str) -> int:
        """How many times ``key`` has been rate-limited since it was last forgotten."""
        with self._cond:
            return self._failures.get(key, 0)

    def forget(self, key: str) -> None:
        """Reset ``key``'s backoff (after it was reconciled successfully)."""
        with self._cond:
            self._failures.pop(key, None)

    def get(self, timeout: float | None = None) -> str | None:
        """Take the next key to process, blocking; None when shut down (or on timeout)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while True:
                self._promote_due()
                if self._queue:
                    key = self._queue.popleft()
                    self._dirty.discard(key)
                    self._processing.add(key)
                    added_at = self._added_at.pop(key, None)
                    if added_at is not None:
                        metrics.WORKQUEUE_QUEUE_DURATION.labels(self.name).observe(time.monotonic() - added_at)
                    return key
                if self._shutdown:
                    return None
                now = time.monotonic()
                if deadline is not None and now >= deadline:
                    return None
                waits = [] if deadline is None else [deadline - now]
                if self._waiting:
                    waits.append(self._waiting[0][0] - now)
                self._cond.wait(max(min(waits), 0.001) if waits else None)

    def _promote_due(self) -> None:
        now = time.monotonic()
        while self._waiting and self._waiting[0][0] <= now:
            ready_at, _, key = heapq.heappop(self._waiting)
            if self._waiting_at.get(key) != ready_at:
                continue  # superseded by an earlier wake-up
            del self._waiting_at[key]
            self._add_locked(key)

    def done(self, key: str) -> None:
        """Mark ``key`` processed; if it was added meanwhile, it goes back in the queue."""
        with self._cond:
            self._processing.discard(key)
            if key in self._dirty:
                self._queue.append(key)
                self._cond.notify()

    def shutdown(self) -> None:
        """Stop handing out keys; workers blocked in ``get`` return None."""
        with self._cond:
            self._shutdown = True
            self._cond.notify_all()

    def __len__(self) -> int:
        with self._cond:
            return len(self._queue)

    @property
    def depth(self) -> int:
        """Keys waiting now, plus those waiting for a delay."""
        with self._cond:
            return len(self._queue) + len(self._waiting)


@dataclass(frozen=True)
class Result:
    """What a reconcile asks for next: nothing; to run again after ``requeue_after`` seconds; or, with
    ``backoff``, to run again after the key's growing backoff delay (a failure it has already recorded)."""

    requeue_after: float | None = None
    backoff: bool = False


Reconcile = Callable[[str], Result | None]


def run_workers(queue: WorkQueue, reconcile: Reconcile, workers: int, stop: threading.Event) -> list[threading.Thread]:
    """Start ``workers`` threads that take keys from ``queue`` and reconcile them until ``stop`` is set.

    A reconcile that raises is retried with the key's backoff; one that returns normally is forgotten by
    the rate limiter and requeued after ``requeue_after`` when it asks. One refused by the write fence
    (NotLeaderError) is retried like a conflict, quietly: the fence has said so once already. A NodeSet that
    kept changing under a change of its size (NodeSetConflictError) is a conflict too, said once as a warning.
    """

    def work() -> None:
        while not stop.is_set():
            key = queue.get(timeout=0.5)
            if key is None:
                continue
            started = time.monotonic()
            outcome = "error"
            try:
                result = reconcile(key)
                outcome = "requeue" if result is not None and (result.backoff or result.requeue_after) else "success"
            except NotLeaderError as error:
                delay = queue.add_rate_limited(key)
                outcome = "conflict"
                log.debug("%s: %s: %s; again in %.1f s", queue.name, key, error, delay)
            except NodeSetConflictError as error:
                delay = queue.add_rate_limited(key)
                outcome = "conflict"
                log.warning("%s: %s: %s; again in %.1f s", queue.name, key, error, delay)
            except ApiError as error:
                delay = queue.add_rate_limited(key)
                outcome = "conflict" if error.conflict else "error"
                if error.conflict:  # optimistic concurrency at work: reconcile again from fresh state
                    log.debug("%s: %s changed while reconciling; again in %.1f s", queue.name, key, delay)
                else:
                    log.error("%s: reconciling %s failed: %s; retrying in %.1f s", queue.name, key, error, delay)
            except Exception:
                delay = queue.add_rate_limited(key)
                log.exception("%s: reconciling %s failed; retrying in %.1f s", queue.name, key, delay)
            else:
                if result is not None and result.backoff:
                    queue.add_rate_limited(key)
                    continue
                queue.forget(key)
                if result is not None and result.requeue_after is not None:
                    queue.add_after(key, result.requeue_after)
            finally:
                queue.done(key)
                metrics.observe_reconcile(queue.name, outcome, time.monotonic() - started)

    threads = [threading.Thread(target=work, name=f"{queue.name}-worker-{i}", daemon=True) for i in range(workers)]
    for thread in threads:
        thread.start()
    return threads
