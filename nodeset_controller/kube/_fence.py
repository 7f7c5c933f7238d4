"""The write fence: a leader-elected process changes nothing unless it holds the Lease *now*.

Leader election alone stops a leader that notices it lost the Lease. A leader that does not notice (frozen
by SIGSTOP, a stalled VM, a stop-the-world pause) wakes up with work in flight: reconciles half done, Events
queued, cloud calls about to be made. The fence is asked right before each change is sent (every mutating
API request of a fenced :class:`KubeClient`, every machine create and destroy of the provider registry), and
refuses it with :class:`NotLeaderError` unless the process holds the Lease by its own clock at that moment
(``LeaderElector.is_leader``: the last renewal was sent less than the renew deadline ago). A process frozen
for longer than the renew deadline therefore sends nothing when it wakes, before its elector has even run.

What it cannot stop: a request already sent (or past the check) when the process froze. The network or the
API server may deliver it later; the Lease does not travel with it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from ._client import ApiError

log = logging.getLogger(__name__)


class NotLeaderError(ApiError):
    """A change refused before it was sent: this process does not hold the leader Lease now. Nothing reached
    the API server or the cloud; the work queue puts the key back like a conflict (the process is about to
    exit, or never led)."""

    def __init__(self, what: str) -> None:
        super().__init__(0, "NotLeader", f"{what}: refused, this process does not hold the leader Lease now")
        self.what = what


class WriteFence:
    """Asks ``holds`` before each change; refuses with NotLeaderError (logged once per refusing spell)."""

    def __init__(self, holds: Callable[[], bool]) -> None:
        self._holds = holds
        self._lock = threading.Lock()
        self._refusing = False
        self.refused = 0  #: changes refused so far

    def allows(self) -> bool:
        """Whether a change may be sent now."""
        return self._holds()

    def check(self, what: str) -> None:
        """Return if ``what`` (``PATCH /api/v1/nodes/x``, ``create machine m``) may be sent now, else raise
        NotLeaderError."""
        if self._holds():
            if self._refusing:
                with self._lock:
                    self._refusing = False
            return
        with self._lock:
            first = not self._refusing
            self._refusing = True
            self.refused += 1
        if first:
            log.warning(
                "not the leader now: refusing %s, and every change to the API server or the cloud until this "
                "process leads again",
                what,
            )
        else:
            log.debug("not the leader now: refusing %s", what)
        raise NotLeaderError(what)
