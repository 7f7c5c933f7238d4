"""kube-node's Prometheus metrics: every series the process exports, defined in one place.

The names follow one vocabulary (controller, queue, provider, operation, method, nodeset) so a dashboard
reads like the code. Counters and histograms are process-wide, as is usual with prometheus_client; gauges
that describe state (queue depth, NodeSet replicas, cache sync) are read at scrape time from the objects
registered here, so they are never stale.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Protocol

import prometheus_client
from prometheus_client import REGISTRY, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

__all__ = [
    "API_RETRIES",
    "GRPC_REQUESTS",
    "GRPC_REQUEST_DURATION",
    "LEADER",
    "MACHINE_OPERATIONS",
    "MACHINE_OPERATION_DURATION",
    "RECONCILES",
    "RECONCILE_DURATION",
    "WATCH_RESTARTS",
    "WORKQUEUE_ADDS",
    "WORKQUEUE_QUEUE_DURATION",
    "WORKQUEUE_RETRIES",
    "observe_reconcile",
    "watch_cache",
    "watch_nodesets",
    "watch_queue",
]

# The *_created series double the output for no use here.
prometheus_client.disable_created_metrics()  # type: ignore[no-untyped-call]

_SLOW_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)

RECONCILES = Counter(
    "kube_node_reconcile",
    "Reconciles by controller and result: success, requeue (asked to run again later), conflict (an object "
    "changed meanwhile; retried from fresh state) or error.",
    ["controller", "result"],
)
RECONCILE_DURATION = Histogram(
    "kube_node_reconcile_duration_seconds", "How long one reconcile took, by controller.", ["controller"]
)
WORKQUEUE_ADDS = Counter("kube_node_workqueue_adds", "Keys added to a work queue.", ["queue"])
WORKQUEUE_RETRIES = Counter("kube_node_workqueue_retries", "Keys re-queued with backoff after a failure.", ["queue"])
WORKQUEUE_QUEUE_DURATION = Histogram(
    "kube_node_workqueue_queue_duration_seconds",
    "How long a key waited in the queue before a worker took it.",
    ["queue"],
)
API_RETRIES = Counter(
    "kube_node_api_retries",
    "API requests sent again by reason: throttled (429), unavailable (5xx), connection (could not connect, or a "
    "read broke off; reads only).",
    ["reason"],
)
WATCH_RESTARTS = Counter(
    "kube_node_watch_restarts",
    "Watches that ended other than by the server's timeout, by resource and reason: expired (410 Gone: the "
    "cache listed again), silent (nothing arrived within the watch idle timeout), broken (the connection "
    "ended or the server refused).",
    ["resource", "reason"],
)
MACHINE_OPERATIONS = Counter(
    "kube_node_machine_operations",
    "Cloud calls by provider (simulator, ec2, gce, ...), operation (create, destroy, get, list) and result "
    "(success, or the error class: OutOfResources, InvalidConfiguration, Other).",
    ["provider", "operation", "result"],
)
MACHINE_OPERATION_DURATION = Histogram(
    "kube_node_machine_operation_duration_seconds",
    "How long a cloud call took, by provider and operation.",
    ["provider", "operation"],
    buckets=_SLOW_BUCKETS,
)
GRPC_REQUESTS = Counter(
    "kube_node_grpc_requests",
    "cluster-autoscaler provider calls by method and gRPC status code.",
    ["method", "code"],
)
GRPC_REQUEST_DURATION = Histogram(
    "kube_node_grpc_request_duration_seconds",
    "How long the provider took to answer, by method.",
    ["method"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
LEADER = Gauge("kube_node_leader", "1 while this process holds the leader Lease and acts, else 0.")


def observe_reconcile(controller: str, result: str, seconds: float) -> None:
    """Count one reconcile (or autoscaler round) of ``controller`` and how long it took."""
    RECONCILES.labels(controller, result).inc()
    RECONCILE_DURATION.labels(controller).observe(seconds)


class _Queue(Protocol):
    name: str

    @property
    def depth(self) -> int: ...


class _NodeSet(Protocol):
    @property
    def metadata(self) -> Any: ...

    @property
    def spec(self) -> Any: ...

    @property
    def status(self) -> Any: ...


class _Cache(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def synced(self) -> bool: ...

    def __len__(self) -> int: ...


class _StateCollector(Collector):
    """Gauges computed at scrape time from the live queues, caches and NodeSet cache of this process."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._queues: weakref.WeakSet[Any] = weakref.WeakSet()
        self._caches: weakref.WeakSet[Any] = weakref.WeakSet()
        self._nodesets: Callable[[], Iterable[_NodeSet]] | None = None

    def collect(self) -> Iterator[GaugeMetricFamily]:
        with self._lock:
            queues = list(self._queues)
            caches = list(self._caches)
            nodesets = self._nodesets
        depth = GaugeMetricFamily(
            "kube_node_workqueue_depth", "Keys waiting in a work queue, now or after a delay.", labels=["queue"]
        )
        for queue in queues:
            depth.add_metric([queue.name], queue.depth)
        yield depth
        synced = GaugeMetricFamily(
            "kube_node_cache_synced", "1 once a watch-fed cache has listed its resource.", labels=["resource"]
        )
        objects = GaugeMetricFamily("kube_node_cache_objects", "Objects in a watch-fed cache.", labels=["resource"])
        for cache in caches:
            synced.add_metric([cache.name], 1.0 if cache.synced else 0.0)
            objects.add_metric([cache.name], len(cache))
        yield synced
        yield objects
        families = {
            "desired": GaugeMetricFamily(
                "kube_node_nodeset_desired_replicas", "A NodeSet's spec.replicas.", labels=["nodeset"]
            ),
            "current": GaugeMetricFamily(
                "kube_node_nodeset_replicas", "A NodeSet's Nodes (status.replicas).", labels=["nodeset"]
            ),
            "ready": GaugeMetricFamily(
                "kube_node_nodeset_ready_replicas",
                "A NodeSet's Ready Nodes (status.readyReplicas).",
                labels=["nodeset"],
            ),
        }
        for nodeset in nodesets() if nodesets is not None else ():
            name, status = nodeset.metadata.name, nodeset.status  # no status before its first reconcile
            families["desired"].add_metric([name], nodeset.spec.replicas)
            families["current"].add_metric([name], (status.replicas if status else None) or 0)
            families["ready"].add_metric([name], (status.ready_replicas if status else None) or 0)
        yield from families.values()


_STATE = _StateCollector()
REGISTRY.register(_STATE)


def watch_queue(queue: _Queue) -> None:
    """Export ``queue``'s depth while it lives."""
    with _STATE._lock:
        _STATE._queues.add(queue)


def watch_cache(cache: _Cache) -> None:
    """Export whether ``cache`` has synced, and its size, while it lives."""
    with _STATE._lock:
        _STATE._caches.add(cache)


def watch_nodesets(list_nodesets: Callable[[], Iterable[_NodeSet]]) -> None:
    """Export desired, current and ready replicas of the NodeSets ``list_nodesets`` returns."""
    with _STATE._lock:
        _STATE._nodesets = list_nodesets
