"""Slim records of the objects kube-node caches: only what its decisions read.

A Node from the API server is about 12 KB of JSON; its NodeRecord keeps the fields
below, and of the annotations only kube-node's own.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import cast

from ..api import GROUP, NodeClass, NodeSet, Taint, TaintEffect, parse_time, resource_list
from ._client import JSON

_OWN_PREFIX = f"{GROUP}/"
_OWNER_API = re.compile(rf"^{re.escape(GROUP)}/[^/]+$")


@dataclass(frozen=True)
class NodeRecord:
    """What kube-node needs to know about a Node."""

    name: str
    uid: str
    resource_version: str
    created: float
    deleting: bool
    labels: dict[str, str]
    annotations: dict[str, str]  #: only kube-node.io/ annotations
    finalizers: tuple[str, ...]
    provider_id: str
    taints: tuple[Taint, ...]
    unschedulable: bool
    ready: bool | None  #: the Ready condition: True, False, or None when Unknown or absent
    ready_changed: float | None  #: when the Ready condition last changed
    #: every condition as (type, status, lastTransitionTime in seconds since the epoch or None)
    conditions: tuple[tuple[str, str, float | None], ...] = ()
    allocatable: dict[str, str] = field(default_factory=dict)
    capacity: dict[str, str] = field(default_factory=dict)
    #: the uid of the NodeSet that owns it (its controller ownerReference, which the NodeSet wrote), if any
    owner_uid: str = ""

    @classmethod
    def from_json(cls, obj: JSON) -> NodeRecord:
        """Build the record from a Node as the API server returns it."""
        meta = obj["metadata"]
        spec = obj.get("spec") or {}
        status = obj.get("status") or {}
        ready: bool | None = None
        ready_changed: float | None = None
        conditions = tuple(
            (c.get("type", ""), c.get("status", ""), parse_time(c.get("lastTransitionTime")))
            for c in status.get("conditions") or []
        )
        for kind, state, since in conditions:
            if kind == "Ready":
                ready = {"True": True, "False": False}.get(state)
                ready_changed = since
        return cls(
            name=meta["name"],
            uid=meta.get("uid", ""),
            resource_version=meta.get("resourceVersion", ""),
            created=parse_time(meta.get("creationTimestamp")) or 0.0,
            deleting=bool(meta.get("deletionTimestamp")),
            labels=dict(meta.get("labels") or {}),
            annotations={k: v for k, v in (meta.get("annotations") or {}).items() if k.startswith(_OWN_PREFIX)},
            finalizers=tuple(meta.get("finalizers") or ()),
            provider_id=spec.get("providerID", ""),
            taints=tuple(
                Taint(t["key"], cast(TaintEffect, t.get("effect", "")), t.get("value") or None)
                for t in spec.get("taints") or ()
            ),
            unschedulable=bool(spec.get("unschedulable")),
            ready=ready,
            ready_changed=ready_changed,
            conditions=conditions,
            allocatable=dict(status.get("allocatable") or {}),
            capacity=dict(status.get("capacity") or {}),
            owner_uid=next(
                (
                    o.get("uid", "")
                    for o in meta.get("ownerReferences") or ()
                    if o.get("kind") == "NodeSet" and o.get("controller") and _OWNER_API.match(o.get("apiVersion", ""))
                ),
                "",
            ),
        )

    def has_taint(self, key: str) -> bool:
        """Whether the Node carries a taint with this key."""
        return any(t.key == key for t in self.taints)


@dataclass(frozen=True)
class PodRecord:
    """What kube-node needs to know about a pod bound to a node (draining, the simulated kubelet)."""

    namespace: str
    name: str
    uid: str
    node: str
    phase: str
    deleting: bool
    owner_kind: str  #: the kind of its controller (ReplicaSet, DaemonSet, ...), or ""
    mirror: bool  #: a static pod's mirror, which cannot be evicted
    containers: tuple[tuple[str, str], ...]  #: (name, image)
    requests: dict[str, int] = field(default_factory=dict)  #: effective requests, see effective_requests
    labels: dict[str, str] = field(default_factory=dict)
    local_storage: bool = False  #: has an emptyDir or hostPath volume, whose data a move would lose
    #: its required pod anti-affinity terms on the hostname topology, as the API server gives them
    anti_affinity: tuple[JSON, ...] = ()

    @property
    def key(self) -> str:
        """``namespace/name``."""
        return f"{self.namespace}/{self.name}"

    @property
    def finished(self) -> bool:
        """Succeeded or Failed: nothing left to evict."""
        return self.phase in ("Succeeded", "Failed")

    @classmethod
    def from_json(cls, obj: JSON) -> PodRecord:
        """Build the record from a pod as the API server returns it."""
        meta, spec, status = obj["metadata"], obj.get("spec") or {}, obj.get("status") or {}
        owner_kind = next((o.get("kind", "") for o in meta.get("ownerReferences") or () if o.get("controller")), "")
        return cls(
            namespace=meta.get("namespace", ""),
            name=meta["name"],
            uid=meta.get("uid", ""),
            node=spec.get("nodeName", ""),
            phase=status.get("phase", "Pending"),
            deleting=bool(meta.get("deletionTimestamp")),
            owner_kind=owner_kind,
            mirror="kubernetes.io/config.mirror" in (meta.get("annotations") or {}),
            containers=tuple((c["name"], c.get("image", "")) for c in spec.get("containers") or ()),
            requests=effective_requests(spec),
            labels=dict(meta.get("labels") or {}),
            local_storage=any("emptyDir" in v or "hostPath" in v for v in spec.get("volumes") or ()),
            anti_affinity=tuple(
                term
                for term in ((spec.get("affinity") or {}).get("podAntiAffinity") or {}).get(
                    "requiredDuringSchedulingIgnoredDuringExecution"
                )
                or ()
                if term.get("topologyKey") == "kubernetes.io/hostname"
            ),
        )


def effective_requests(spec: JSON) -> dict[str, int]:
    """What a pod needs of a node, as the scheduler counts it: the larger of its containers' sum (with
    restartable init containers, i.e. sidecars, which run alongside) and its largest init container (with
    the sidecars started before it), plus the pod overhead; and one ``pods`` slot. cpu in millicores."""

    def requests_of(container: JSON) -> dict[str, int]:
        return resource_list((container.get("resources") or {}).get("requests") or {})

    total: dict[str, int] = {}
    for container in spec.get("containers") or ():
        _add(total, requests_of(container))
    sidecars: dict[str, int] = {}
    init_peak: dict[str, int] = {}
    for container in spec.get("initContainers") or ():
        needs = requests_of(container)
        if container.get("restartPolicy") == "Always":
            _add(sidecars, needs)
            continue
        for name, value in needs.items():
            init_peak[name] = max(init_peak.get(name, 0), value + sidecars.get(name, 0))
    _add(total, sidecars)
    for name, value in init_peak.items():
        total[name] = max(total.get(name, 0), value)
    _add(total, resource_list(spec.get("overhead") or {}))
    total["pods"] = 1
    return total


def _add(into: dict[str, int], more: dict[str, int]) -> None:
    for name, value in more.items():
        into[name] = into.get(name, 0) + value


def nodeclass_from_json(obj: JSON) -> NodeClass:
    """The typed NodeClass (NodeClasses are few; the whole model is cached)."""
    return NodeClass.from_dict(obj)


def nodeset_from_json(obj: JSON) -> NodeSet:
    """The typed NodeSet (NodeSets are few; the whole model is cached)."""
    return NodeSet.from_dict(obj)
