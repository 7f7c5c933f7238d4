"""The part of the scheduler's judgement the pending-pod autoscaler needs: would this pod fit that node?

Checked, as the scheduler checks them: resource requests (effective requests, see kube.effective_requests)
against what is left of a node's allocatable; the node selector; required node affinity (every operator);
taints with NoSchedule or NoExecute against tolerations; and required pod anti-affinity on the hostname
topology. Each check that fails says why, so a pod that fits nowhere can be told.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from ..api import Taint
from ..kube import JSON, PodRecord, effective_requests

HOSTNAME_TOPOLOGY = "kubernetes.io/hostname"


@dataclass(frozen=True)
class LabelSelector:
    """A metav1.LabelSelector (matchLabels and matchExpressions)."""

    match_labels: tuple[tuple[str, str], ...] = ()
    expressions: tuple[tuple[str, str, tuple[str, ...]], ...] = ()

    @classmethod
    def from_json(cls, data: JSON | None) -> LabelSelector:
        data = data or {}
        return cls(
            tuple(sorted((data.get("matchLabels") or {}).items())),
            tuple((e["key"], e["operator"], tuple(e.get("values") or ())) for e in data.get("matchExpressions") or ()),
        )

    def matches(self, labels: Mapping[str, str]) -> bool:
        """Whether ``labels`` are selected."""
        if any(labels.get(k) != v for k, v in self.match_labels):
            return False
        return all(_expression(labels, key, op, values) for key, op, values in self.expressions)


@dataclass(frozen=True)
class AntiAffinity:
    """A required pod anti-affinity term on the hostname topology."""

    selector: LabelSelector
    namespaces: frozenset[str]


@dataclass(frozen=True)
class PendingPod:
    """An unschedulable pod, as the autoscaler needs it."""

    namespace: str
    name: str
    uid: str
    labels: dict[str, str]
    requests: dict[str, int]
    node_selector: dict[str, str]
    affinity_terms: tuple[tuple[tuple[str, str, tuple[str, ...]], ...], ...]  #: ORed terms of ANDed expressions
    tolerations: tuple[JSON, ...]
    anti_affinity: tuple[AntiAffinity, ...]
    unschedulable: bool
    owner_kind: str
    created: str

    @property
    def key(self) -> str:
        """``namespace/name``."""
        return f"{self.namespace}/{self.name}"

    @classmethod
    def from_json(cls, obj: JSON) -> PendingPod:
        """Build the record from a pod as the API server returns it."""
        meta, spec, status = obj["metadata"], obj.get("spec") or {}, obj.get("status") or {}
        unschedulable = any(
            c.get("type") == "PodScheduled" and c.get("status") == "False" and c.get("reason") == "Unschedulable"
            for c in status.get("conditions") or ()
        )
        affinity = spec.get("affinity") or {}
        node_affinity = (affinity.get("nodeAffinity") or {}).get("requiredDuringSchedulingIgnoredDuringExecution")
        terms = tuple(
            tuple((e["key"], e["operator"], tuple(e.get("values") or ())) for e in term.get("matchExpressions") or ())
            for term in (node_affinity or {}).get("nodeSelectorTerms") or ()
        )
        anti = tuple(
            AntiAffinity(
                LabelSelector.from_json(term.get("labelSelector")),
                frozenset(term.get("namespaces") or (meta.get("namespace", ""),)),
            )
            for term in (affinity.get("podAntiAffinity") or {}).get("requiredDuringSchedulingIgnoredDuringExecution")
            or ()
            if term.get("topologyKey") == HOSTNAME_TOPOLOGY
        )
        owner = next((o.get("kind", "") for o in meta.get("ownerReferences") or () if o.get("controller")), "")
        return cls(
            namespace=meta.get("namespace", ""),
            name=meta["name"],
            uid=meta.get("uid", ""),
            labels=dict(meta.get("labels") or {}),
            requests=effective_requests(spec),
            node_selector=dict(spec.get("nodeSelector") or {}),
            affinity_terms=terms,
            tolerations=tuple(spec.get("tolerations") or ()),
            anti_affinity=anti,
            unschedulable=unschedulable and not meta.get("deletionTimestamp") and not spec.get("nodeName"),
            owner_kind=owner,
            created=meta.get("creationTimestamp", ""),
        )


@dataclass
class NodeShape:
    """What a node offers: labels, taints, and what is left of its allocatable; the pods placed on it."""

    labels: Mapping[str, str]
    taints: tuple[Taint, ...]
    free: dict[str, int]
    pods: list[tuple[str, dict[str, str], tuple[AntiAffinity, ...]]] = field(default_factory=list)

    def place(self, pod: PendingPod) -> None:
        """Account for ``pod`` running here."""
        for name, value in pod.requests.items():
            self.free[name] = self.free.get(name, 0) - value
        self.pods.append((pod.namespace, pod.labels, pod.anti_affinity))


def static_misfit(pod: PendingPod, labels: Mapping[str, str], taints: Iterable[Taint]) -> str | None:
    """Why ``pod`` can never run on a node with these labels and taints, or None."""
    for key, value in pod.node_selector.items():
        if labels.get(key) != value:
            return f"node selector {key}={value} does not match"
    if pod.affinity_terms and not any(
        all(_expression(labels, key, op, values) for key, op, values in term) for term in pod.affinity_terms
    ):
        return "required node affinity does not match"
    for taint in taints:
        if taint.effect in ("NoSchedule", "NoExecute") and not any(_tolerates(t, taint) for t in pod.tolerations):
            return f"taint {taint.key}={taint.value or ''}:{taint.effect} is not tolerated"
    return None


def resource_misfit(pod: PendingPod, capacity: Mapping[str, int]) -> str | None:
    """Why ``pod`` is too big for an empty node of this allocatable, or None."""
    for name, value in pod.requests.items():
        if value > capacity.get(name, 0):
            return f"requests {name} {_show(name, value)} but a node has {_show(name, capacity.get(name, 0))}"
    return None


def fits_now(pod: PendingPod, node: NodeShape) -> bool:
    """Whether ``pod`` fits what is left of ``node``, including anti-affinity with the pods placed there."""
    if any(value > node.free.get(name, 0) for name, value in pod.requests.items()):
        return False
    for namespace, labels, anti in node.pods:
        if any(term.selector.matches(labels) and namespace in term.namespaces for term in pod.anti_affinity):
            return False
        if any(term.selector.matches(pod.labels) and pod.namespace in term.namespaces for term in anti):
            return False
    return True


def pack(
    pods: Iterable[PendingPod],
    labels: Mapping[str, str],
    taints: tuple[Taint, ...],
    capacity: Mapping[str, int],
    room: int,
) -> tuple[list[NodeShape], list[PendingPod]]:
    """First-fit decreasing of the pods that could run on a Node with ``labels``, ``taints`` and ``capacity`` into
    at most ``room`` new such Nodes (``pods`` largest first): the new Nodes and the pods placed on them."""
    new_nodes: list[NodeShape] = []
    placed: list[PendingPod] = []
    for pod in pods:
        if static_misfit(pod, labels, taints) is not None:
            continue
        if resource_misfit(pod, capacity) is not None:
            continue
        for shape in new_nodes:
            if fits_now(pod, shape):
                shape.place(pod)
                placed.append(pod)
                break
        else:
            if len(new_nodes) >= room:
                continue
            shape = NodeShape(labels, taints, dict(capacity))
            if not fits_now(pod, shape):
                continue
            shape.place(pod)
            new_nodes.append(shape)
            placed.append(pod)
    return new_nodes, placed


def anti_affinity_of(terms: Iterable[JSON], namespace: str) -> tuple[AntiAffinity, ...]:
    """Required hostname anti-affinity terms as AntiAffinity."""
    return tuple(
        AntiAffinity(
            LabelSelector.from_json(term.get("labelSelector")), frozenset(term.get("namespaces") or (namespace,))
        )
        for term in terms
        if term.get("topologyKey") == HOSTNAME_TOPOLOGY
    )


def bound_pod_entry(pod: PodRecord) -> tuple[str, dict[str, str], tuple[AntiAffinity, ...]]:
    """A bound pod as NodeShape.pods holds it."""
    return (pod.namespace, pod.labels, anti_affinity_of(pod.anti_affinity, pod.namespace))


def _tolerates(toleration: JSON, taint: Taint) -> bool:
    effect = toleration.get("effect") or ""
    if effect and effect != taint.effect:
        return False
    key = toleration.get("key") or ""
    operator = toleration.get("operator") or "Equal"
    if not key:
        return operator == "Exists"
    if key != taint.key:
        return False
    return operator == "Exists" or (toleration.get("value") or "") == (taint.value or "")


def _expression(labels: Mapping[str, str], key: str, operator: str, values: tuple[str, ...]) -> bool:
    present = key in labels
    value = labels.get(key, "")
    if operator == "In":
        return present and value in values
    if operator == "NotIn":
        return not present or value not in values
    if operator == "Exists":
        return present
    if operator == "DoesNotExist":
        return not present
    if operator in ("Gt", "Lt") and present and values:
        try:
            number, bound = int(value), int(values[0])
        except ValueError:
            return False
        return number > bound if operator == "Gt" else number < bound
    return False


def _show(name: str, value: int) -> str:
    return f"{value}m" if name == "cpu" else str(value)
