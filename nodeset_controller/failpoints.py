"""Failpoints: named places where a crash test can make kube-node SIGKILL itself, at moments a timer rarely hits.

Armed only by the environment, read once at import::

    KUBE_NODE_FAILPOINTS="after-machine-create=0.2,mid-drain=0.3,mid-delete-nodes=1"
    KUBE_NODE_FAILPOINT_SEED=42

Each ``name=probability`` pair makes every pass through that point kill the process with that probability
(1 when the probability is left out), drawn from one random sequence seeded by ``KUBE_NODE_FAILPOINT_SEED``.
With the variable unset, :func:`failpoint` is a function that returns at once: production code pays one
call per pass and nothing else. A kill is logged first (``failpoint NAME: SIGKILL ...``), so a harness
can tell which point killed the process. The points:

=====================  ====================================================================================
after-machine-create   a machine create returned, before anything records it on its Node
after-machine-destroy  a Node's machine is destroyed, before the finalizer is removed
mid-drain              a leaving Node's pods were just evicted (a drain step), before the Node is deleted
mid-delete-nodes       DeleteNodes wrote the removal and the lower replicas, before it answers the client
=====================  ====================================================================================

``KUBE_NODE_FAILPOINT_AFTER_MACHINE_CREATE=kill``, the older form, still means ``after-machine-create=1``.
"""

from __future__ import annotations

import logging
import os
import random
import signal
import threading
from collections.abc import Callable, Mapping

log = logging.getLogger(__name__)

FAILPOINTS_ENV = "KUBE_NODE_FAILPOINTS"
SEED_ENV = "KUBE_NODE_FAILPOINT_SEED"
LEGACY_AFTER_MACHINE_CREATE_ENV = "KUBE_NODE_FAILPOINT_AFTER_MACHINE_CREATE"

AFTER_MACHINE_CREATE = "after-machine-create"
AFTER_MACHINE_DESTROY = "after-machine-destroy"
MID_DRAIN = "mid-drain"
MID_DELETE_NODES = "mid-delete-nodes"
NAMES = (AFTER_MACHINE_CREATE, AFTER_MACHINE_DESTROY, MID_DRAIN, MID_DELETE_NODES)


def parse(text: str) -> dict[str, float]:
    """``name=probability,...`` as a dict; an unknown name or a probability outside 0..1 is a ValueError."""
    points: dict[str, float] = {}
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        name, _, value = item.partition("=")
        name = name.strip()
        if name not in NAMES:
            raise ValueError(f"{FAILPOINTS_ENV}: unknown failpoint {name!r}; known: {', '.join(NAMES)}")
        probability = float(value) if value.strip() else 1.0
        if not 0.0 <= probability <= 1.0:
            raise ValueError(f"{FAILPOINTS_ENV}: {name}={value}: the probability must be within 0..1")
        points[name] = probability
    return points


class Failpoints:
    """Armed failpoints: each pass through a named point kills with its probability, from one seeded sequence."""

    def __init__(
        self, probabilities: Mapping[str, float], seed: int | None = None, *, kill: Callable[[], None] | None = None
    ) -> None:
        self.probabilities = dict(probabilities)
        self._random = random.Random(seed)
        self._lock = threading.Lock()
        self._kill = kill or _sigkill
        self.hits: dict[str, int] = dict.fromkeys(self.probabilities, 0)

    def hit(self, name: str) -> None:
        """One pass through ``name``: kill the process with its probability."""
        probability = self.probabilities.get(name)
        if probability is None:
            return
        with self._lock:
            self.hits[name] += 1
            fire = self._random.random() < probability
            count = self.hits[name]
        if fire:
            log.warning("failpoint %s: SIGKILL on pass %d (probability %g)", name, count, probability)
            self._kill()


def _sigkill() -> None:
    for handler in logging.getLogger().handlers:
        handler.flush()
    os.kill(os.getpid(), signal.SIGKILL)


def _noop(name: str) -> None:  # the disarmed failpoint: nothing to do
    return None


def from_environment(environ: Mapping[str, str]) -> Failpoints | None:
    """The failpoints ``environ`` arms, or None."""
    points = parse(environ.get(FAILPOINTS_ENV, ""))
    if environ.get(LEGACY_AFTER_MACHINE_CREATE_ENV) == "kill":
        points.setdefault(AFTER_MACHINE_CREATE, 1.0)
    if not points:
        return None
    seed = environ.get(SEED_ENV)
    return Failpoints(points, int(seed) if seed else None)


ARMED = from_environment(os.environ)
#: Call at a named point: ``failpoint(MID_DRAIN)``. Disarmed (the variables unset) it does nothing.
failpoint: Callable[[str], None] = ARMED.hit if ARMED is not None else _noop
