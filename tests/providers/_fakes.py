"""Offline stand-ins for what the NodeController reads (informers, the Secret reader, the Event recorder) and
for libcloud drivers, so the way the controller uses a provider can be tested without a control plane."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from libcloud.compute.base import Node, NodeImage, NodeSize

from nodeset_controller.api import FINALIZER_MACHINE, LABEL_NODECLASS, NodeClass
from nodeset_controller.kube import SECRETS, ApiError, NodeRecord

R = TypeVar("R")


class FakeInformer(Generic[R]):
    """An informer's reading side over a fixed dict; ``nodeclass`` is the one index the controller asks."""

    synced = True

    def __init__(self, items: dict[str, R]) -> None:
        self.items = items

    def add_handler(self, handler: Any) -> None:
        pass

    def get(self, key: str) -> R | None:
        return self.items.get(key)

    def list(self) -> list[R]:
        return list(self.items.values())

    def by_index(self, index: str, value: str) -> list[R]:
        assert index == "nodeclass"
        return [item for item in self.items.values() if getattr(item, "labels", {}).get(LABEL_NODECLASS) == value]


class FakeRecorder:
    """Keeps the Events it is given."""

    def __init__(self) -> None:
        self.events: list[tuple[str, str, str]] = []

    def event(self, obj: Any, type_: str, reason: str, message: str) -> None:
        self.events.append((obj.name, reason, message))


class FakeSecrets:
    """What the ProviderRegistry uses of its client: reading a Secret, and its write fence (none here)."""

    fence = None

    def __init__(self, secrets: dict[tuple[str, str], dict[str, Any]]) -> None:
        self.secrets = secrets

    def get(self, resource: Any, name: str, namespace: str | None = None) -> dict[str, Any]:
        assert resource is SECRETS
        try:
            return self.secrets[(namespace or "", name)]
        except KeyError:
            raise ApiError(404, "NotFound", f"secrets {name!r} not found") from None


def node_record(name: str, uid: str, nodeclass: str, *, machine_id: str | None = None) -> NodeRecord:
    """A managed Node as the controller's cache holds it."""
    return NodeRecord(
        name=name,
        uid=uid,
        resource_version="1",
        created=0.0,
        deleting=False,
        labels={LABEL_NODECLASS: nodeclass},
        annotations={"kube-node.io/machine-id": machine_id} if machine_id else {},
        finalizers=(FINALIZER_MACHINE,),
        provider_id=f"kube-node://{nodeclass}/{name}",
        taints=(),
        unschedulable=False,
        ready=True,
        ready_changed=None,
    )


class TaggingDriver:
    """A libcloud driver for ``provider`` that keeps the machines it creates, showing the tags it was given
    where that provider's real libcloud driver shows them (``node.extra``), as the real cloud stores them.
    Thread-safe, and it counts its listings."""

    def __init__(self, provider: str, machines: list[Node] | None = None) -> None:
        self.provider = provider
        self.machines: list[Node] = machines if machines is not None else []
        self.list_calls = 0
        self.created: list[dict[str, Any]] = []
        self.destroyed: list[str] = []
        self.lock = threading.Lock()
        self.before_list: Callable[[], None] = lambda: None
        self.on_create: Callable[[Node], Node] = lambda node: node
        #: machine names listings do not show yet (a cloud's eventual consistency)
        self.hidden: set[str] = set()

    def list_nodes(self, **kwargs: Any) -> list[Node]:
        self.before_list()
        with self.lock:
            self.list_calls += 1
            return [node for node in self.machines if node.name not in self.hidden]

    def list_sizes(self, location: Any = None) -> list[NodeSize]:
        return [NodeSize("small", "small", 2048, 20, 0, 0.01, self)]

    def list_images(self, **kwargs: Any) -> list[NodeImage]:
        return [NodeImage("ami-1", "ami-1", self)]

    def ex_get_image(self, wanted: str) -> NodeImage:
        return NodeImage(wanted, wanted, self)

    def create_node(self, name: str, size: Any, image: Any, **kwargs: Any) -> Node:
        node = Node(f"id-{name}", name, "pending", [], [], self, extra=self.extra(name, kwargs))
        with self.lock:
            self.created.append(kwargs)
            self.machines.append(node)
        return self.on_create(node)

    def destroy_node(self, node: Node) -> bool:
        with self.lock:
            self.destroyed.append(node.name)
            self.machines = [m for m in self.machines if m.id != node.id]
        return True

    def extra(self, name: str, kwargs: dict[str, Any]) -> dict[str, Any]:
        """Where the real driver puts the tags of a machine it lists."""
        if self.provider == "ec2":
            return {"tags": {"Name": name, **kwargs["ex_metadata"]}}
        if self.provider == "gce":
            items = [{"key": k, "value": v} for k, v in kwargs["ex_metadata"].items()]
            return {"metadata": {"items": items}, "labels": dict(kwargs["ex_labels"])}
        if self.provider == "openstack":
            return {"metadata": dict(kwargs["ex_metadata"])}
        if self.provider == "digitalocean":
            return {"tags": list(kwargs["ex_create_attr"]["tags"])}
        if self.provider == "linode":
            return {"tags": list(kwargs["ex_tags"])}
        return {}  # equinixmetal's driver shows no tags, nor do drivers without a dialect


def nodeclass(provider: str, name: str = "small", **spec: Any) -> NodeClass:
    """A NodeClass of ``provider`` with a size and an image the TaggingDriver knows."""
    from nodeset_controller.api import NodeClassSpec, ObjectMeta

    return NodeClass(
        metadata=ObjectMeta(name=name),
        spec=NodeClassSpec(provider=provider, capacity={"cpu": "2"}, size="small", image="ami-1", **spec),
    )
