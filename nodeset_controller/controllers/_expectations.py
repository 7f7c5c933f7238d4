"""Expectations: writes a controller has made that its cache has not shown it yet.

Without them a reconcile that runs before the watch delivers the Nodes it just created would count too few
and create more (the ReplicaSet controller has the same guard). An expectation lapses after a timeout, so a
lost event cannot wedge a NodeSet forever.
"""

from __future__ import annotations

import threading
import time

EXPECTATION_TIMEOUT = 300.0


class Expectations:
    """Per owner key: names created but not yet seen, and names deleted but still seen, each until it lapses."""

    def __init__(self, timeout: float = EXPECTATION_TIMEOUT) -> None:
        self._timeout = timeout
        self._lock = threading.Lock()
        self._creations: dict[str, dict[str, float]] = {}
        self._deletions: dict[str, dict[str, float]] = {}

    def expect_creation(self, owner: str, name: str, timeout: float | None = None) -> None:
        """``name`` was created for ``owner``; count it until the cache shows it, or for ``timeout`` seconds
        (the default lapse unless given)."""
        lapse = time.monotonic() + (self._timeout if timeout is None else timeout)
        with self._lock:
            self._creations.setdefault(owner, {})[name] = lapse

    def expect_deletion(self, owner: str, name: str) -> None:
        """``name`` was deleted for ``owner``; do not count it even while the cache still shows it."""
        with self._lock:
            self._deletions.setdefault(owner, {})[name] = time.monotonic() + self._timeout

    def observed(self, owner: str, name: str, present: bool) -> None:
        """The cache now shows ``name`` present (a creation arrived) or absent (a deletion arrived)."""
        with self._lock:
            if present:
                self._creations.get(owner, {}).pop(name, None)
            else:
                self._deletions.get(owner, {}).pop(name, None)
                self._creations.get(owner, {}).pop(name, None)

    def pending_creations(self, owner: str) -> set[str]:
        """Names created for ``owner`` that the cache has not shown yet (lapsed ones dropped)."""
        return self._live(self._creations, owner)

    def pending_deletions(self, owner: str) -> set[str]:
        """Names deleted for ``owner`` that the cache still shows (lapsed ones dropped)."""
        return self._live(self._deletions, owner)

    def forget(self, owner: str) -> None:
        """Drop everything about ``owner``."""
        with self._lock:
            self._creations.pop(owner, None)
            self._deletions.pop(owner, None)

    def _live(self, table: dict[str, dict[str, float]], owner: str) -> set[str]:
        now = time.monotonic()
        with self._lock:
            entries = table.get(owner, {})  # name -> when it lapses
            for name in [n for n, lapse in entries.items() if lapse < now]:
                del entries[name]
            return set(entries)
