"""Recording Kubernetes Events on objects, as ``kubectl describe`` shows them.

Events are core/v1 Events, in the object's namespace, or ``default`` for cluster-scoped objects (where the
kubelet puts a Node's). They are sent from
a background thread so a reconcile never waits on them (through a fenced client, one still queued when the
process stops leading is dropped), and a repeat of the same reason and message for the
same object within ten minutes bumps the existing Event's count instead of creating another, as client-go's
recorder does.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Literal

from ..api import API_VERSION, NodeClass, NodeSet, now_rfc3339
from ._client import ApiError, KubeClient, Resource
from ._fence import NotLeaderError

log = logging.getLogger(__name__)

CORE_EVENTS = Resource("", "v1", "events", namespaced=True)
EVENT_NAMESPACE = "default"
_AGGREGATE_WINDOW = 600.0

EventType = Literal["Normal", "Warning"]


@dataclass(frozen=True)
class ObjectReference:
    """The object an Event is about."""

    kind: str
    name: str
    uid: str
    api_version: str = "v1"
    namespace: str | None = None

    @classmethod
    def to(cls, resource: NodeClass | NodeSet) -> ObjectReference:
        """The reference to one of kube-node's own (cluster-scoped) objects."""
        return cls(resource.KIND, resource.metadata.name, resource.metadata.uid or "", api_version=API_VERSION)


@dataclass
class _Sent:
    name: str
    namespace: str
    count: int
    last: float


class EventRecorder:
    """Sends Events for one component (``source.component``)."""

    def __init__(self, client: KubeClient, component: str = "kube-node", *, max_pending: int = 10000) -> None:
        self._client = client
        self._component = component
        self._queue: queue.Queue[tuple[ObjectReference, EventType, str, str] | None] = queue.Queue(max_pending)
        self._sent: dict[tuple[str, str, str], _Sent] = {}
        self._thread = threading.Thread(target=self._run, name="event-recorder", daemon=True)
        self._thread.start()
        self.dropped = 0

    def event(self, obj: ObjectReference, type_: EventType, reason: str, message: str) -> None:
        """Record an Event (asynchronously; dropped with a log line if too many are waiting)."""
        log.log(
            logging.WARNING if type_ == "Warning" else logging.INFO,
            "%s %s: %s: %s",
            obj.kind,
            obj.name,
            reason,
            message,
            extra={"object": f"{obj.kind}/{obj.name}", "reason": reason},
        )
        try:
            self._queue.put_nowait((obj, type_, reason, message))
        except queue.Full:
            self.dropped += 1

    def flush(self, timeout: float = 5.0) -> None:
        """Wait until every Event recorded so far has been sent (for tests and shutdown)."""
        deadline = time.monotonic() + timeout
        while self._queue.unfinished_tasks and time.monotonic() < deadline:
            time.sleep(0.01)

    def close(self) -> None:
        """Send what is queued, then stop the background thread."""
        self.flush()
        self._queue.put(None)

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            try:
                if item is None:
                    return
                self._send(*item)
            except NotLeaderError:  # fenced like every write: a deposed leader records nothing more
                log.debug("not recording event %s: not the leader now", item)
            except ApiError as error:  # e.g. its namespace is being deleted: the Event is lost, nothing else
                log.info("could not record event %s: %s", item, error)
            except Exception:
                log.exception("could not record event %s", item)
            finally:
                self._queue.task_done()

    def _send(self, obj: ObjectReference, type_: EventType, reason: str, message: str) -> None:
        now = time.time()
        stamp = now_rfc3339(at=now)
        key = (obj.uid or obj.name, reason, message)
        previous = self._sent.get(key)
        if previous is not None and now - previous.last < _AGGREGATE_WINDOW:
            try:
                self._client.patch(
                    CORE_EVENTS,
                    previous.name,
                    {"count": previous.count + 1, "lastTimestamp": stamp},
                    namespace=EVENT_NAMESPACE,
                )
                previous.count += 1
                previous.last = now
                return
            except ApiError as error:
                if not error.not_found:
                    raise
        name = f"{obj.name}.{uuid.uuid4().hex[:16]}"
        namespace = obj.namespace or EVENT_NAMESPACE  # a namespaced object's Events live in its namespace
        involved = {"kind": obj.kind, "name": obj.name, "uid": obj.uid, "apiVersion": obj.api_version}
        if obj.namespace:
            involved["namespace"] = obj.namespace
        body = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": name, "namespace": namespace},
            "involvedObject": involved,
            "type": type_,
            "reason": reason,
            "message": message[:1024],
            "source": {"component": self._component},
            "reportingComponent": self._component,
            "firstTimestamp": stamp,
            "lastTimestamp": stamp,
            "count": 1,
        }
        self._client.create(CORE_EVENTS, body, namespace=namespace)
        self._sent[key] = _Sent(name, namespace, 1, now)
        if len(self._sent) > 20000:
            cutoff = now - _AGGREGATE_WINDOW
            self._sent = {k: v for k, v in self._sent.items() if v.last >= cutoff}
