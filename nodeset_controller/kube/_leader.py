"""Leader election on a coordination.k8s.io/v1 Lease, with the guarantees of client-go's leaderelection.

- One holder at a time: every acquire and renew is an update with the Lease's resourceVersion, so two
  candidates that race cannot both win.
- Expiry is judged on this process's own clock: a Lease held by another is taken over only after it has
  been seen unchanged for its whole leaseDuration, so clock skew between machines does not matter.
- A leader that cannot renew for ``renew_deadline`` (shorter than the lease duration) stops leading, so it
  has stopped acting before anyone else may take over. ``is_leader`` turns false at that deadline even if
  the renewing thread is stuck in a request, or the whole process was frozen (SIGSTOP, a machine suspended):
  the deadline counts from the moment the last successful renewal was *sent* (the server cannot have applied
  it earlier, so no standby can have seen it earlier), on a clock that never jumps and keeps counting while
  the process or the machine sleeps (CLOCK_BOOTTIME on Linux, else the monotonic clock).
- ``release`` empties the holder, so a standby takes over at its next try instead of waiting out the lease.
"""

from __future__ import annotations

import datetime
import enum
import logging
import math
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import urllib3

from .. import metrics
from ._client import JSON, LEASES, ApiError, KubeClient

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LeaderElectionSettings:
    """Where the Lease is and how it is held (client-go's defaults: 15 s, 10 s, 2 s)."""

    namespace: str
    identity: str
    name: str = "kube-node"
    lease_duration: float = 15.0  #: how long a standby waits after the last renewal it saw
    renew_deadline: float = 10.0  #: how long the leader keeps trying to renew before it gives up
    retry_period: float = 2.0  #: how often to try to acquire or renew

    def __post_init__(self) -> None:
        if not 0 < self.retry_period < self.renew_deadline < self.lease_duration:
            raise ValueError(
                "leader election needs retry period < renew deadline < lease duration, got "
                f"{self.retry_period} s, {self.renew_deadline} s, {self.lease_duration} s"
            )


class LeaderState(enum.StrEnum):
    """Where a candidate is."""

    STANDBY = "standby"  #: trying to acquire; another process (or nobody) holds the Lease
    LEADING = "leading"
    STOPPED = "stopped"  #: lost or released the Lease; it does not try again


_BOOTTIME: int | None = getattr(time, "CLOCK_BOOTTIME", None)


def _clock() -> float:
    """Seconds on a clock that never goes back and counts the time this process was stopped or the machine
    suspended: CLOCK_BOOTTIME on Linux (CLOCK_MONOTONIC stops while the machine sleeps), else the monotonic
    clock."""
    return time.clock_gettime(_BOOTTIME) if _BOOTTIME is not None else time.monotonic()


def _whole_seconds(duration: float) -> int:
    """The Lease's leaseDurationSeconds (an integer): rounded up, so a standby never waits less than this
    leader counts on (rounded to nearest, a 2.5 s duration would become 2 s, under a 2.2 s renew deadline)."""
    return math.ceil(duration)


def _micro_time(moment: float) -> str:
    return datetime.datetime.fromtimestamp(moment, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class LeaderElector:
    """Campaigns for one Lease; calls ``on_started_leading`` once it holds it and ``on_stopped_leading`` once
    it has lost it (it does not campaign again: the process is expected to exit, as client-go's users do)."""

    def __init__(
        self,
        client: KubeClient,
        settings: LeaderElectionSettings,
        *,
        on_started_leading: Callable[[], None] = lambda: None,
        on_stopped_leading: Callable[[], None] = lambda: None,
    ) -> None:
        self._client = client
        self.settings = settings
        self._on_started = on_started_leading
        self._on_stopped = on_stopped_leading
        self._lock = threading.Lock()
        self._state = LeaderState.STANDBY
        self._renewed_at = 0.0  # _clock() when the last successful acquire or renew was sent
        self._observed: JSON | None = None  # the Lease spec as last seen
        self._observed_at = 0.0  # _clock() when it last changed
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="leader-election", daemon=True)
        self.holder: str | None = None  #: who holds the Lease, as last seen

    @property
    def state(self) -> LeaderState:
        """Standby, leading or stopped."""
        with self._lock:
            return self._state

    def is_leader(self) -> bool:
        """True while this process holds the Lease and sent its last successful renewal less than
        ``renew_deadline`` ago, by its own clock: false at once after a freeze longer than that."""
        with self._lock:
            return self._state is LeaderState.LEADING and _clock() - self._renewed_at < self.settings.renew_deadline

    def start(self) -> None:
        """Campaign in the background."""
        self._thread.start()

    def alive(self) -> bool:
        """Whether the campaign runs: started, and not yet ended by ``release`` or a loss."""
        return self._thread.is_alive()

    @property
    def started(self) -> bool:
        """Whether ``start`` was called."""
        return self._thread.ident is not None

    def release(self, timeout: float = 5.0) -> None:
        """Stop campaigning and, if leading, give the Lease up so a standby takes over at once."""
        self._stop.set()
        self._thread.join(timeout)
        with self._lock:
            was_leading = self._state is LeaderState.LEADING
            self._state = LeaderState.STOPPED
        metrics.LEADER.set(0)
        if not was_leading:
            return
        try:
            lease = self._get(timeout)
            if lease is None or lease["spec"].get("holderIdentity") != self.settings.identity:
                return
            now = time.time()
            lease["spec"] |= {
                "holderIdentity": None,
                "leaseDurationSeconds": 1,
                "acquireTime": _micro_time(now),
                "renewTime": _micro_time(now),
            }
            self._replace(lease, timeout)
            log.info("released Lease %s/%s", self.settings.namespace, self.settings.name)
        except (ApiError, OSError, urllib3.exceptions.HTTPError) as error:
            log.warning("could not release Lease %s/%s: %s", self.settings.namespace, self.settings.name, error)

    # -- the campaign ------------------------------------------------------------------------------------

    def _run(self) -> None:
        settings = self.settings
        log.info("campaigning for Lease %s/%s as %s", settings.namespace, settings.name, settings.identity)
        while not self._stop.is_set():  # acquire
            if self._try_acquire_or_renew():
                break
            self._stop.wait(settings.retry_period * (1 + 0.2 * random.random()))
        else:
            return
        with self._lock:
            self._state = LeaderState.LEADING
        metrics.LEADER.set(1)
        log.info("became the leader (Lease %s/%s)", settings.namespace, settings.name)
        try:
            self._on_started()
        except Exception:
            log.exception("starting to lead failed; giving the Lease up")
            with self._lock:
                self._state = LeaderState.STOPPED
            metrics.LEADER.set(0)
            self._on_stopped()
            return
        while not self._stop.wait(settings.retry_period):  # renew
            if self._try_acquire_or_renew():
                continue
            if self.holder not in (None, settings.identity):
                break  # another process holds it: this one was cut off for longer than the lease
            with self._lock:
                lost = _clock() - self._renewed_at >= settings.renew_deadline
            if lost:
                break
        else:
            return  # released: release() does the rest
        with self._lock:
            self._state = LeaderState.STOPPED
        metrics.LEADER.set(0)
        log.error(
            "lost the leader Lease %s/%s: could not renew it for %.0f s (now held by %s); stopping",
            settings.namespace,
            settings.name,
            settings.renew_deadline,
            self.holder or "nobody",
        )
        self._on_stopped()

    def _try_acquire_or_renew(self) -> bool:
        settings = self.settings
        with self._lock:
            # Never wait longer than the renew deadline leaves: a hung request must not hide a loss.
            budget = settings.renew_deadline - (_clock() - self._renewed_at)
        timeout = max(0.5, min(settings.retry_period * 2, budget if self._state is LeaderState.LEADING else 5.0))
        now = time.time()
        try:
            lease = self._get(timeout)
            if lease is None:
                sent = _clock()
                self._create(now, timeout)
                return self._acquired(None, sent)
            spec: dict[str, Any] = lease.get("spec") or {}
            if spec != self._observed:
                self._observed, self._observed_at = spec, _clock()
            holder = spec.get("holderIdentity") or None
            self.holder = holder
            duration = float(spec.get("leaseDurationSeconds") or settings.lease_duration)
            if holder not in (None, settings.identity) and _clock() - self._observed_at < duration:
                return False  # held by another and not yet expired
            transitions = int(spec.get("leaseTransitions") or 0)
            if holder != settings.identity:
                spec = {"acquireTime": _micro_time(now), "leaseTransitions": transitions + 1}
            lease["spec"] = spec | {
                "holderIdentity": settings.identity,
                "leaseDurationSeconds": _whole_seconds(settings.lease_duration),
                "renewTime": _micro_time(now),
            }
            sent = _clock()
            self._replace(lease, timeout)
            return self._acquired(holder, sent)
        except ApiError as error:
            if not error.conflict and not error.already_exists:
                log.warning("leader election: %s", error)
            return False
        except (OSError, urllib3.exceptions.HTTPError) as error:  # connection refused, timeouts
            log.warning("leader election: cannot reach the API server: %s", error)
            return False

    def _acquired(self, previous: str | None, sent: float) -> bool:
        # Counted from when the write was sent, not from its answer: a standby may have seen it applied at
        # any moment after it was sent, and waits a lease duration from then. From the answer, a slow answer
        # would stretch this leader's time past the standby's (by up to the request timeout).
        with self._lock:
            self._renewed_at = sent
        if previous != self.settings.identity:
            log.info("acquired Lease %s/%s (previous holder %s)", self.settings.namespace, self.settings.name, previous)
        self.holder = self.settings.identity
        return True

    def _get(self, timeout: float) -> JSON | None:
        try:
            return self._client.request(
                "GET", LEASES.path(self.settings.name, self.settings.namespace), timeout=timeout
            )
        except ApiError as error:
            if error.not_found:
                return None
            raise

    def _create(self, now: float, timeout: float) -> None:
        body = {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {"name": self.settings.name, "namespace": self.settings.namespace},
            "spec": {
                "holderIdentity": self.settings.identity,
                "leaseDurationSeconds": _whole_seconds(self.settings.lease_duration),
                "acquireTime": _micro_time(now),
                "renewTime": _micro_time(now),
                "leaseTransitions": 0,
            },
        }
        self._client.request("POST", LEASES.path(None, self.settings.namespace), body=body, timeout=timeout)

    def _replace(self, lease: JSON, timeout: float) -> None:
        updated = self._client.request(
            "PUT",
            LEASES.path(self.settings.name, self.settings.namespace),
            body=lease,
            timeout=timeout,
        )
        self._observed, self._observed_at = updated.get("spec") or {}, _clock()
