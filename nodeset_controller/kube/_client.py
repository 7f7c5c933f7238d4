"""A thin JSON client for the Kubernetes API.

Configuration (kubeconfig or in-cluster credentials) comes from the official ``kubernetes`` client; requests
go straight through its urllib3 pool and return plain JSON dicts. The official client's typed models cost
about three times the decode time and half again the memory of plain dicts (measured: 1,000 Nodes listed
into models in 0.44-0.52 s and 18 MB, as raw JSON in 0.15-0.21 s and 12 MB), and
kube-node's caches keep slim records of their own, so nothing here builds a model object.

A client can be fenced (:meth:`KubeClient.fenced`): then every mutating request (POST, PUT, PATCH, DELETE)
is first put to a :class:`~._fence.WriteFence`, and refused with NotLeaderError, unsent, while the process
does not lead. Reads and watches are never fenced. The fence is asked twice: before a connection is taken
from the pool, and again on the connection, once it is open, right before the request's first byte is
written, so a process frozen while it connects (a TLS handshake takes milliseconds) sends nothing when it
wakes.
"""

from __future__ import annotations

import copy
import json
import logging
import random
import ssl
import threading
import time
import urllib.parse
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import urllib3
import urllib3.connection
import urllib3.connectionpool
import urllib3.poolmanager
from kubernetes import client as k8s_client
from kubernetes import config as k8s_config
from kubernetes.client import rest as k8s_rest

from .. import metrics

if TYPE_CHECKING:
    from ._fence import WriteFence

log = logging.getLogger(__name__)

JSON = dict[str, Any]

MERGE_PATCH = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"
STRATEGIC_MERGE_PATCH = "application/strategic-merge-patch+json"
APPLY_PATCH = "application/apply-patch+yaml"


DEFAULT_REQUEST_TIMEOUT = 30.0


class ApiError(Exception):
    """The API server answered with an error status. ``status`` is the HTTP code, ``reason`` the
    Kubernetes reason (NotFound, Conflict, Invalid, Expired, ...), ``message`` the server's own words."""

    def __init__(self, status: int, reason: str, message: str, body: JSON | None = None) -> None:
        super().__init__(f"{status} {reason}: {message}")
        self.status = status
        self.reason = reason
        self.message = message
        self.body = body or {}

    @property
    def not_found(self) -> bool:
        """The object does not exist."""
        return self.status == 404

    @property
    def conflict(self) -> bool:
        """Optimistic concurrency failed (stale resourceVersion) or the object already exists."""
        return self.status == 409

    @property
    def already_exists(self) -> bool:
        """A create found the name taken."""
        return self.status == 409 and self.reason == "AlreadyExists"

    @property
    def gone(self) -> bool:
        """A watch or list asked for a resourceVersion that etcd has compacted away."""
        return self.status == 410

    @property
    def invalid(self) -> bool:
        """The object was rejected by validation (schema, CEL rules, field immutability)."""
        return self.status == 422


@dataclass(frozen=True)
class Resource:
    """Where a kind of object lives in the API: group/version, plural, and whether it is namespaced."""

    group: str
    version: str
    plural: str
    namespaced: bool = False

    def path(self, name: str | None = None, namespace: str | None = None, subresource: str | None = None) -> str:
        """The URL path of the collection, or of one object, or of one object's subresource."""
        base = f"/api/{self.version}" if not self.group else f"/apis/{self.group}/{self.version}"
        if self.namespaced and namespace:
            base += f"/namespaces/{namespace}"
        base += f"/{self.plural}"
        if name is not None:
            base += f"/{urllib.parse.quote(name, safe='')}"
        if subresource:
            base += f"/{subresource}"
        return base


NODES = Resource("", "v1", "nodes")
PODS = Resource("", "v1", "pods", namespaced=True)
EVENTS = Resource("events.k8s.io", "v1", "events", namespaced=True)
NAMESPACES = Resource("", "v1", "namespaces")
SECRETS = Resource("", "v1", "secrets", namespaced=True)
LEASES = Resource("coordination.k8s.io", "v1", "leases", namespaced=True)
CRDS = Resource("apiextensions.k8s.io", "v1", "customresourcedefinitions")

#: The fence of the mutating request this thread is sending, for the check right before its first byte.
_SENDING = threading.local()


def _check_at_send(method: str, url: str) -> None:
    fence: WriteFence | None = getattr(_SENDING, "fence", None)
    if fence is not None:
        fence.check(f"{method} {urllib.parse.urlsplit(url).path}")


class _FencedHTTPConnection(urllib3.connection.HTTPConnection):
    """A connection that, for a fenced request, connects first and asks the fence as it hands the request's
    first bytes (the header block) to the socket: the last moment before anything leaves the process."""

    #: (method, url) of a fenced request whose first bytes are not sent yet
    _fence_request: tuple[str, str] | None = None

    def request(  # type: ignore[override]  # urllib3's own signature, which overrides http.client's
        self,
        method: str,
        url: str,
        body: Any = None,
        headers: Mapping[str, str] | None = None,
        *,
        chunked: bool = False,
        preload_content: bool = True,
        decode_content: bool = True,
        enforce_content_length: bool = True,
    ) -> None:
        """Send the request (urllib3's), unless the fence refuses it once the connection is open."""
        if getattr(_SENDING, "fence", None) is not None:
            if self.sock is None:
                self.connect()
            self._fence_request = (method, url)
        try:
            super().request(
                method,
                url,
                body,
                headers,
                chunked=chunked,
                preload_content=preload_content,
                decode_content=decode_content,
                enforce_content_length=enforce_content_length,
            )
        finally:
            self._fence_request = None

    def send(self, data: Any) -> None:
        """http.client's send; for a fenced request's first bytes, the fence's last word right before them."""
        pending = self._fence_request
        if pending is not None:
            self._fence_request = None
            _check_at_send(*pending)
        super().send(data)


class _FencedHTTPSConnection(_FencedHTTPConnection, urllib3.connection.HTTPSConnection):
    """The TLS twin of _FencedHTTPConnection (the pool has connected it, handshake included, already)."""


class _FencedHTTPConnectionPool(urllib3.connectionpool.HTTPConnectionPool):
    ConnectionCls = _FencedHTTPConnection


class _FencedHTTPSConnectionPool(urllib3.connectionpool.HTTPSConnectionPool):
    ConnectionCls = _FencedHTTPSConnection


#: The methods that change something: what a fenced client puts to its fence.
MUTATING_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


class KubeClient:
    """JSON requests to one API server, safe to share between threads.

    ``user_agent`` is sent with every request; the API server names the field manager of every write after
    its part before the first ``/`` (so ``kube-node/0.1 (<pod>_<uuid>)`` writes as ``kube-node``, while audit
    logs show the whole string: which process sent it)."""

    def __init__(self, configuration: k8s_client.Configuration, user_agent: str = "kube-node") -> None:
        self.configuration = configuration
        self.host = configuration.host.rstrip("/")
        # One connection per concurrent caller: controllers, informers and the simulated kubelets share it.
        configuration.connection_pool_maxsize = max(configuration.connection_pool_maxsize or 0, 64)
        self._rest = k8s_rest.RESTClientObject(configuration)
        self._pool = self._rest.pool_manager
        if self._pool.pool_classes_by_scheme == urllib3.poolmanager.pool_classes_by_scheme:  # not SOCKS
            self._pool.pool_classes_by_scheme = {"http": _FencedHTTPConnectionPool, "https": _FencedHTTPSConnectionPool}
        self.user_agent = user_agent
        self._auth_lock = threading.Lock()
        #: Seconds a request waits for the server (watches excepted: see ``watch``), retries included. A request
        #: sent on a connection that went silent fails after it; the connection is then dropped.
        self.request_timeout = DEFAULT_REQUEST_TIMEOUT
        self._fence: WriteFence | None = None

    def fenced(self, fence: WriteFence) -> KubeClient:
        """This client (same connections and credentials), with every mutating request first put to
        ``fence``: refused with NotLeaderError, and not sent, unless it allows it at that moment."""
        view = copy.copy(self)
        view._fence = fence
        return view

    @property
    def fence(self) -> WriteFence | None:
        """The fence this client's writes pass, if any (the provider registry fences cloud calls with it)."""
        return self._fence

    @classmethod
    def from_kubeconfig(
        cls, path: str | Path | None = None, context: str | None = None, *, user_agent: str = "kube-node"
    ) -> KubeClient:
        """A client for the kubeconfig at ``path`` (or $KUBECONFIG, or ~/.kube/config)."""
        configuration = k8s_client.Configuration()
        k8s_config.load_kube_config(  # type: ignore[no-untyped-call]
            config_file=str(path) if path else None,
            context=context,
            client_configuration=configuration,
            persist_config=False,
        )
        return cls(configuration, user_agent)

    @classmethod
    def in_cluster(cls, *, user_agent: str = "kube-node") -> KubeClient:
        """A client with the pod's service-account credentials."""
        configuration = k8s_client.Configuration()
        k8s_config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
        return cls(configuration, user_agent)

    @classmethod
    def load(
        cls, kubeconfig: str | Path | None = None, context: str | None = None, *, user_agent: str = "kube-node"
    ) -> KubeClient:
        """A client from ``kubeconfig`` if given, in-cluster credentials inside a pod, else the default
        kubeconfig."""
        if kubeconfig is None:
            try:
                return cls.in_cluster(user_agent=user_agent)
            except k8s_config.ConfigException:
                pass
        return cls.from_kubeconfig(kubeconfig, context, user_agent=user_agent)

    # -- requests ----------------------------------------------------------------------------------------

    def _headers(self, content_type: str | None, accept: str) -> dict[str, str]:
        headers = {"Accept": accept, "User-Agent": self.user_agent}
        if content_type:
            headers["Content-Type"] = content_type
        with self._auth_lock:
            # A bearer token from the kubeconfig or the pod's service account (re-read by the configuration's
            # refresh hook when it rotates); client certificates are on the connection pool instead.
            bearer = self.configuration.auth_settings().get("BearerToken")
        if bearer is not None and bearer.get("value"):
            headers["Authorization"] = str(bearer["value"])
        return headers

    def raw(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        body: Any = None,
        content_type: str | None = None,
        accept: str = "application/json",
        timeout: float | tuple[float, float] | None = None,
        stream: bool = False,
    ) -> urllib3.BaseHTTPResponse:
        """Send a request and return the urllib3 response (streamed if asked); raises ApiError on >= 400, and
        NotLeaderError, without sending it, for a change its fence refuses. ``timeout`` (default
        ``request_timeout``) bounds each wait for the server, and the retries together."""
        url = self.host + path
        if params:
            url += "?" + urllib.parse.urlencode({k: _param(v) for k, v in params.items() if v is not None})
        data: bytes | None = None
        if body is not None:
            data = body if isinstance(body, bytes) else json.dumps(body).encode()
            content_type = content_type or "application/json"
        if timeout is None:
            timeout = self.request_timeout
        if isinstance(timeout, tuple):
            timeouts = urllib3.Timeout(connect=timeout[0], read=timeout[1])
        else:
            timeouts = urllib3.Timeout(connect=min(timeout, 10.0), read=timeout)
        headers = self._headers(content_type, accept)
        response = self._send_with_retries(method, url, data, headers, timeouts=timeouts, stream=stream, path=path)
        if response.status >= 400:
            payload = response.data if not stream else response.read()
            response.release_conn()
            raise _api_error(response.status, payload)
        return response

    def _send_with_retries(
        self,
        method: str,
        url: str,
        data: bytes | None,
        headers: dict[str, str],
        *,
        timeouts: urllib3.Timeout,
        stream: bool,
        path: str,
    ) -> urllib3.BaseHTTPResponse:
        """Send, retrying only what is safe to send again (see ``_retry_delay``), with backoff, for as long as
        the request's own read timeout: a caller never waits much longer than the timeout it asked for."""
        started = time.monotonic()
        deadline = started + float(timeouts.read_timeout or 30.0)
        attempt = 0
        fence = self._fence if method in MUTATING_METHODS else None
        while True:
            if fence is not None:  # before every attempt: a retry after a delay is a new request
                fence.check(f"{method} {path}")
            try:
                _SENDING.fence = fence  # asked again on the open connection, right before the first byte
                try:
                    response = self._pool.request(
                        method,
                        url,
                        body=data,
                        headers=headers,
                        timeout=timeouts,
                        preload_content=not stream,
                        retries=False,
                    )
                finally:
                    _SENDING.fence = None
            except (urllib3.exceptions.HTTPError, OSError) as error:
                delay = None if stream else _retry_delay(method, None, None, error, attempt)
                if delay is None or time.monotonic() + delay > deadline:
                    raise
                reason = "connection"
                log.debug("%s %s: %s; again in %.2f s", method, url, type(error).__name__, delay)
            else:
                delay = _retry_delay(method, response.status, response.headers.get("Retry-After"), None, attempt)
                if delay is None or time.monotonic() + delay > deadline:
                    return response
                reason = "throttled" if response.status == 429 else "unavailable"
                log.debug("%s %s: %s; again in %.2f s", method, url, response.status, delay)
                response.drain_conn()
                response.release_conn()
            metrics.API_RETRIES.labels(reason).inc()
            time.sleep(delay)
            attempt += 1

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        body: Any = None,
        content_type: str | None = None,
        timeout: float | None = None,
    ) -> JSON:
        """Send a request and return the decoded JSON body."""
        response = self.raw(method, path, params=params, body=body, content_type=content_type, timeout=timeout)
        if not response.data:
            return {}
        result: JSON = json.loads(response.data)
        return result

    # -- verbs -------------------------------------------------------------------------------------------

    def get(self, resource: Resource, name: str, namespace: str | None = None, subresource: str | None = None) -> JSON:
        """GET one object."""
        return self.request("GET", resource.path(name, namespace, subresource))

    def list(self, resource: Resource, namespace: str | None = None, **params: Any) -> JSON:
        """LIST a collection; ``params`` are query parameters (labelSelector, limit, resourceVersion...)."""
        return self.request("GET", resource.path(None, namespace), params=params)

    def create(
        self,
        resource: Resource,
        body: JSON,
        namespace: str | None = None,
        *,
        name: str | None = None,
        subresource: str | None = None,
        **params: Any,
    ) -> JSON:
        """POST a new object (or, with ``name`` and ``subresource``, to a subresource such as eviction)."""
        return self.request("POST", resource.path(name, namespace, subresource), body=body, params=params)

    def replace(
        self, resource: Resource, name: str, body: JSON, namespace: str | None = None, subresource: str | None = None
    ) -> JSON:
        """PUT an object; fails with a Conflict if its resourceVersion is stale."""
        return self.request("PUT", resource.path(name, namespace, subresource), body=body)

    def patch(
        self,
        resource: Resource,
        name: str,
        body: Any,
        namespace: str | None = None,
        *,
        subresource: str | None = None,
        content_type: str = MERGE_PATCH,
        **params: Any,
    ) -> JSON:
        """PATCH an object (JSON merge patch unless ``content_type`` says otherwise)."""
        return self.request(
            "PATCH", resource.path(name, namespace, subresource), body=body, content_type=content_type, params=params
        )

    def delete(self, resource: Resource, name: str, namespace: str | None = None, **options: Any) -> JSON:
        """DELETE an object; ``options`` go into the DeleteOptions body (preconditions, propagationPolicy)."""
        body = {"apiVersion": "v1", "kind": "DeleteOptions", **options} if options else None
        return self.request("DELETE", resource.path(name, namespace), body=body)

    def watch(
        self,
        resource: Resource,
        namespace: str | None = None,
        *,
        resource_version: str | None,
        timeout_seconds: int = 20,
        read_timeout: float = 30.0,
        **params: Any,
    ) -> Iterator[JSON]:
        """Yield watch events ({"type", "object"}) until the server ends the watch.

        ``read_timeout`` bounds the silence between events so a dead connection is noticed (urllib3's
        ReadTimeoutError). The server ends the watch after ``timeout_seconds``, so with that shorter than
        ``read_timeout`` a healthy watch never times out. Bookmarks are asked for, but the API server sends
        them only when its cache has moved past the watch's resourceVersion: a quiet watch on a quiet kind
        gets no byte at all until the server ends it. An ERROR event with code 410 is raised as ApiError(410)
        so callers re-list.
        """
        query = {
            "watch": "true",
            "allowWatchBookmarks": "true",
            "timeoutSeconds": timeout_seconds,
            "resourceVersion": resource_version,
            **params,
        }
        response = self.raw(
            "GET", resource.path(None, namespace), params=query, stream=True, timeout=(10.0, read_timeout)
        )
        try:
            buffer = b""
            for chunk in response.stream(65536, decode_content=True):
                buffer += chunk
                while b"\n" in buffer:
                    line, buffer = buffer.split(b"\n", 1)
                    if not line.strip():
                        continue
                    event: JSON = json.loads(line)
                    if event.get("type") == "ERROR":
                        status = event.get("object", {})
                        raise ApiError(
                            int(status.get("code", 500)),
                            str(status.get("reason", "")),
                            str(status.get("message", "")),
                            status,
                        )
                    yield event
        finally:
            response.release_conn()


#: Methods whose repetition changes nothing a first success did not: retried after any transient failure.
_IDEMPOTENT_READS = frozenset({"GET", "HEAD", "OPTIONS"})
_BACKOFF_BASE, _BACKOFF_MAX = 0.1, 2.0


def _retry_delay(
    method: str, status: int | None, retry_after: str | None, error: BaseException | None, attempt: int
) -> float | None:
    """How long to wait before sending a request again, or None if it must not be sent again.

    - 429 Too Many Requests (max-in-flight or priority and fairness rejected it, or storage still initializing)
      and any 5xx that carries Retry-After (the server says it did not act: shutting down, not ready): not
      processed, so every method is retried, after the delay the server asks for (never sooner; with jitter).
    - A connection that could not be made (refused, connect timeout): nothing was sent, so every method.
    - Any other 5xx, a read timeout, a connection that broke after the request went out: the outcome of a write
      is unknown, so only reads are retried; a write's error goes to its caller, who decides (a create is
      checked by name, see the NodeSetController; updates carry a resourceVersion and are reconciled again).
    """
    backoff = min(_BACKOFF_BASE * 2.0**attempt, _BACKOFF_MAX) * (0.75 + 0.5 * random.random())
    if error is not None:
        if isinstance(error, urllib3.exceptions.ConnectTimeoutError | ConnectionRefusedError):
            return backoff  # NewConnectionError (refused, unreachable) is a ConnectTimeoutError
        if any(isinstance(cause, ssl.SSLCertVerificationError) for cause in (error, *error.args)):
            return None  # a certificate that does not verify will not verify in a moment either
        return backoff if method in _IDEMPOTENT_READS else None
    assert status is not None
    if status == 429 or (status >= 500 and retry_after is not None):
        seconds = _seconds(retry_after)
        return backoff if seconds is None else seconds * (1 + 0.25 * random.random())
    if status >= 500 and method in _IDEMPOTENT_READS:
        return backoff
    return None


def _seconds(retry_after: str | None) -> float | None:
    """Retry-After in seconds (the API server sends an integer), or None when absent or unreadable."""
    if retry_after is None:
        return None
    try:
        return min(max(float(retry_after), 0.0), 60.0)
    except ValueError:
        return None


def _param(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _api_error(status: int, payload: bytes) -> ApiError:
    try:
        body = json.loads(payload)
    except ValueError:
        return ApiError(status, "", payload.decode(errors="replace")[:2000])
    if not isinstance(body, dict):
        return ApiError(status, "", str(body))
    return ApiError(status, str(body.get("reason", "")), str(body.get("message", "")), body)
