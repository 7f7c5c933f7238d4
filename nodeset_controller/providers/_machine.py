"""The machine provider interface: the one small boundary between kube-node and any source of machines.

Every provider (the libcloud adapter, the simulator, the in-memory one) implements :class:`MachineProvider`.
Calls block and may be slow; the NodeController runs them on worker threads with timeouts. ``create`` is
idempotent by machine name: the name is derived from the Node (name + uid), and creating a name that already
exists returns that machine, so a crash between "create" and "record it on the Node" can never make two.
"""

from __future__ import annotations

import enum
import hashlib
import re
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

#: Tag (label, metadata key) names on every machine kube-node creates, so ours can be recognised later.
TAG_CLUSTER = "kube-node-cluster"
TAG_NODE = "kube-node-node"
TAG_NODECLASS = "kube-node-nodeclass"

_MAX_MACHINE_NAME = 63


class MachineState(enum.StrEnum):
    """Where a machine is in its life."""

    PENDING = "Pending"  #: created, not yet booted
    RUNNING = "Running"  #: booted; its kubelet can join the cluster
    FAILED = "Failed"  #: crashed or stopped on its own; it will not come back
    TERMINATING = "Terminating"  #: being destroyed
    TERMINATED = "Terminated"  #: gone (some clouds list destroyed machines for a while)


class ErrorClass(enum.StrEnum):
    """How a failure should be treated; mirrors the cluster-autoscaler's instance error classes."""

    OUT_OF_RESOURCES = "OutOfResources"  #: quota exceeded, stockout: back off, try elsewhere
    INVALID_CONFIGURATION = "InvalidConfiguration"  #: bad size, image, credentials: retrying will not help
    TRANSIENT = "Transient"  #: timeouts, throttling, 5xx: retry with backoff
    OTHER = "Other"


@dataclass(frozen=True)
class MachineSpec:
    """Everything a provider needs to make one machine for one Node."""

    name: str  #: the machine name, from :func:`machine_name`; the idempotency key
    node_name: str
    node_uid: str
    nodeclass: str
    cluster: str  #: the cluster's name, tagged on the machine
    provider_id: str  #: the Node's spec.providerID (kube-node's scheme)
    user_data: str = ""  #: rendered per Node
    capacity: dict[str, str] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)
    taints: list[dict[str, str]] = field(default_factory=list)

    @property
    def tags(self) -> dict[str, str]:
        """The tags that mark the machine as this cluster's, and name its Node and NodeClass."""
        return {TAG_CLUSTER: self.cluster, TAG_NODE: self.node_name, TAG_NODECLASS: self.nodeclass}


@dataclass(frozen=True)
class Machine:
    """A provider's machine as kube-node sees it."""

    name: str
    id: str  #: the provider's own id (an EC2 instance id, a GCE instance name, ...)
    state: MachineState
    node_name: str | None = None  #: from the machine's tags; only the start of the Node's name if truncated
    #: the provider cut the node name tag to its length limit (Linode's tags keep 50 characters): ``node_name``
    #: is then a prefix that may name no Node, or another one, so the Node must be found by the full machine
    #: name (:func:`machine_name` of its name and uid), never by ``node_name``
    node_name_truncated: bool = False
    nodeclass: str | None = None
    cluster: str | None = None
    created_at: float | None = None  #: seconds since the epoch, when known
    private_ips: tuple[str, ...] = ()
    public_ips: tuple[str, ...] = ()
    error: str | None = None  #: why it failed, when it did
    extra: dict[str, Any] = field(default_factory=dict, compare=False)


class ProviderError(Exception):
    """A provider call failed. ``error_class`` says how to treat it, ``code`` is a stable short code
    (QUOTA_EXCEEDED, NOT_FOUND, ...) for conditions, Events and the cluster-autoscaler's errorInfo."""

    def __init__(self, message: str, *, error_class: ErrorClass = ErrorClass.OTHER, code: str = "PROVIDER_ERROR"):
        super().__init__(message)
        self.error_class = error_class
        self.code = code

    @property
    def retryable(self) -> bool:
        """Whether trying again later may succeed."""
        return self.error_class is not ErrorClass.INVALID_CONFIGURATION


class QuotaExceededError(ProviderError):
    """The provider refused for lack of quota or capacity."""

    def __init__(self, message: str, *, code: str = "QUOTA_EXCEEDED") -> None:
        super().__init__(message, error_class=ErrorClass.OUT_OF_RESOURCES, code=code)


@runtime_checkable
class MachineProvider(Protocol):
    """A source of machines: a cloud through libcloud, or the simulator."""

    def create(self, spec: MachineSpec) -> Machine:
        """Create the machine ``spec.name``, or return it if it already exists. Raises ProviderError."""
        ...

    def get(self, name: str) -> Machine | None:
        """Return the machine called ``name``, or None if there is none. Raises ProviderError."""
        ...

    def list(self) -> list[Machine]:
        """Return this cluster's machines of this provider (those tagged as kube-node's)."""
        ...

    def destroy(self, name: str, machine_id: str | None = None) -> None:
        """Destroy the machine ``name`` (every one of that name); with ``machine_id``, only the one with that id,
        a duplicate a cloud without idempotent creates made under the same name. Succeeds if it is already
        gone. Raises ProviderError."""
        ...

    def validate(self) -> str:
        """Check, without making anything, that machines can be made from the NodeClass: the credentials work
        and its size, image and location resolve. A few cheap read calls; the NodeClassController calls it
        once per generation and then on a timer. Returns what they resolved to, for people; raises
        ProviderError."""
        ...


def machine_name(node_name: str, node_uid: str) -> str:
    """The machine name for a Node: its name and the start of its uid, so a Node deleted and created again
    under the same name gets a new machine. At most 63 characters, lowercase, DNS-label-safe."""
    uid = re.sub(r"[^a-z0-9]", "", node_uid.lower())[:8]
    base = re.sub(r"[^a-z0-9-]", "-", node_name.lower()).strip("-") or "node"
    room = _MAX_MACHINE_NAME - len(uid) - 1
    if len(base) > room:
        digest = hashlib.sha256(base.encode()).hexdigest()[:6]
        base = base[: room - 7].rstrip("-") + "-" + digest
    return f"{base}-{uid}"
