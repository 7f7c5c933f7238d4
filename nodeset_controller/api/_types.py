"""Typed models of kube-node's custom resources, NodeClass and NodeSet (kube-node.io/v1alpha1).

Defaults here equal the CRD schema's defaults, so a model written to the API server and read back is
equal to itself.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, ClassVar, Final, Literal, Self

from ._model import from_dict, to_dict
from ._names import API_VERSION, NODECLASS_KIND, NODESET_KIND, nodeset_selector

TaintEffect = Literal["NoSchedule", "PreferNoSchedule", "NoExecute"]
DeletePolicy = Literal["Random", "Oldest", "Newest"]
AutoscalingMode = Literal["Manual", "ClusterAutoscaler", "KubeNode"]
#: ``spec.autoscaling.mode``: replicas change only when someone sets them.
MODE_MANUAL: Final = "Manual"
#: ``spec.autoscaling.mode``: the cluster-autoscaler sizes the set, through kube-node's externalgrpc provider.
MODE_CLUSTER_AUTOSCALER: Final = "ClusterAutoscaler"
#: ``spec.autoscaling.mode``: kube-node's own pending-pod autoscaler sizes the set.
MODE_KUBE_NODE: Final = "KubeNode"
#: ``spec.replacement.registrationTimeoutSeconds`` when unset; also how long a bootstrap token lives.
DEFAULT_REGISTRATION_TIMEOUT_SECONDS: Final = 900


@dataclass
class ObjectMeta:
    """The part of metav1.ObjectMeta kube-node reads and writes."""

    name: str
    uid: str | None = None
    resource_version: str | None = None
    generation: int | None = None
    creation_timestamp: str | None = None
    deletion_timestamp: str | None = None
    labels: dict[str, str] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)
    finalizers: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Taint:
    """A taint, as on a core/v1 Node (a NodeClass's, a template's, or a cached Node's)."""

    key: str
    effect: TaintEffect
    value: str | None = None  #: None for no value (a Node's taint without one, or with an empty one)

    def to_json(self) -> dict[str, str]:
        """The taint as a Node's spec.taints holds it (no empty value)."""
        if self.value:
            return {"key": self.key, "value": self.value, "effect": self.effect}
        return {"key": self.key, "effect": self.effect}


@dataclass
class Condition:
    """A metav1.Condition."""

    type: str
    status: Literal["True", "False", "Unknown"]
    reason: str
    message: str
    last_transition_time: str
    observed_generation: int | None = None


@dataclass
class SecretReference:
    """Where a NodeClass's credentials live."""

    name: str
    namespace: str


@dataclass
class ExtraArgument:
    """A provider-specific ``ex_`` keyword argument of the driver's create_node call."""

    name: str
    value: Any


@dataclass
class NodeClassSpec:
    """How machines of a NodeClass are made; see the CRD for each field's meaning."""

    provider: str
    capacity: dict[str, str | int]
    credentials_secret_ref: SecretReference | None = None
    driver_options: dict[str, str | int] = field(default_factory=dict)
    size: str | None = None
    image: str | None = None
    location: str | None = None
    region: str | None = None
    extra_create_args: list[ExtraArgument] = field(default_factory=list)
    user_data: str | None = None
    labels: dict[str, str] = field(default_factory=dict)
    taints: list[Taint] = field(default_factory=list)
    gpu_type: str | None = None
    price_per_hour: float | None = None


@dataclass
class NodeClassStatus:
    """What kube-node last observed about a NodeClass."""

    observed_generation: int | None = None
    nodes: int | None = None  #: how many Nodes are labelled with the class
    node_sets: int | None = None  #: how many NodeSets name the class
    conditions: list[Condition] = field(default_factory=list)


@dataclass
class NodeTemplateMetadata:
    """Labels and annotations every Node of a NodeSet gets."""

    labels: dict[str, str] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)


@dataclass
class NodeTemplateSpec:
    """Node spec fields every Node of a NodeSet gets."""

    taints: list[Taint] = field(default_factory=list)


@dataclass
class NodeTemplate:
    """The template a NodeSet's Nodes are made from, on top of their NodeClass."""

    metadata: NodeTemplateMetadata = field(default_factory=NodeTemplateMetadata)
    spec: NodeTemplateSpec = field(default_factory=NodeTemplateSpec)


@dataclass
class DrainSettings:
    """How a NodeSet drains a Node before removing it."""

    timeout_seconds: int = 600
    pod_grace_period_seconds: int | None = None


@dataclass
class ReplacementSettings:
    """How a NodeSet replaces Nodes whose machine failed."""

    registration_timeout_seconds: int = DEFAULT_REGISTRATION_TIMEOUT_SECONDS
    max_in_flight: int = 1


@dataclass
class UnhealthyCondition:
    """A Node condition that makes a Node unhealthy once it has held for ``timeout_seconds``."""

    type: str
    status: Literal["True", "False", "Unknown"]
    timeout_seconds: int


def _default_unhealthy_conditions() -> list[UnhealthyCondition]:
    return [UnhealthyCondition("Ready", "False", 300), UnhealthyCondition("Ready", "Unknown", 300)]


@dataclass
class HealthCheckSettings:
    """When a Node that was Ready counts as unhealthy, and how many failed Nodes may be removed at once."""

    max_unhealthy: int | str = "40%"
    unhealthy_conditions: list[UnhealthyCondition] = field(default_factory=_default_unhealthy_conditions)


@dataclass
class ClusterAutoscalerOptions:
    """Per-node-group options for the cluster-autoscaler (NodeGroupAutoscalingOptions)."""

    scale_down_utilization_threshold: float | None = None
    scale_down_gpu_utilization_threshold: float | None = None
    scale_down_unneeded_time: str | None = None
    scale_down_unready_time: str | None = None
    max_node_provision_time: str | None = None
    zero_or_max_node_scaling: bool | None = None
    ignore_daemon_sets_utilization: bool | None = None


@dataclass
class AutoscalingSettings:
    """Who changes a NodeSet's replicas automatically."""

    mode: AutoscalingMode = "Manual"
    priority: int = 0
    options: ClusterAutoscalerOptions | None = None


@dataclass
class NodeSetSpec:
    """The Nodes a NodeSet should have; see the CRD for each field's meaning."""

    node_class_name: str
    replicas: int = 1
    min_replicas: int = 0
    max_replicas: int | None = None
    template: NodeTemplate | None = None
    delete_policy: DeletePolicy = "Random"
    drain: DrainSettings = field(default_factory=DrainSettings)
    replacement: ReplacementSettings = field(default_factory=ReplacementSettings)
    health_check: HealthCheckSettings = field(default_factory=HealthCheckSettings)
    autoscaling: AutoscalingSettings = field(default_factory=AutoscalingSettings)


@dataclass
class NodeSetStatus:
    """What the NodeSetController last observed about a NodeSet."""

    replicas: int | None = None
    ready_replicas: int | None = None
    observed_generation: int | None = None
    selector: str | None = None
    conditions: list[Condition] = field(default_factory=list)


class _Resource:
    """Shared behaviour of the custom resource models."""

    KIND: ClassVar[str]
    metadata: ObjectMeta

    def to_dict(self) -> dict[str, Any]:
        """Return the object as the API server's JSON, with apiVersion and kind."""
        body = to_dict(self)
        assert isinstance(body, dict)
        return {"apiVersion": API_VERSION, "kind": self.KIND, **body}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Self:
        """Read an object as the API server returns it."""
        return from_dict(cls, data)

    def without_server_fields(self) -> Self:
        """Return a copy without the fields the API server sets (uid, resourceVersion, timestamps...)."""
        meta: ObjectMeta = self.metadata
        clean = ObjectMeta(
            name=meta.name,
            labels=dict(meta.labels),
            annotations=dict(meta.annotations),
            finalizers=list(meta.finalizers),
        )
        return dataclasses.replace(self, metadata=clean)  # type: ignore[type-var]


@dataclass
class NodeClass(_Resource):
    """How kube-node makes a machine (cluster-scoped, written by administrators)."""

    KIND: ClassVar[str] = NODECLASS_KIND

    metadata: ObjectMeta
    spec: NodeClassSpec
    status: NodeClassStatus | None = None


@dataclass
class NodeSet(_Resource):
    """A number of Nodes of one NodeClass, kept like a ReplicaSet keeps pods (cluster-scoped)."""

    KIND: ClassVar[str] = NODESET_KIND

    metadata: ObjectMeta
    spec: NodeSetSpec
    status: NodeSetStatus | None = None

    @property
    def selector(self) -> str:
        """The label selector of this NodeSet's Nodes."""
        return nodeset_selector(self.metadata.name)
