"""The externalgrpc CloudProvider service: NodeGroups are the NodeSets handed to the cluster-autoscaler.

Reads come from the watch-fed caches the controllers share (the client calls NodeGroupForNode once per node
and GetOptions twice per node every loop, so every read is answered from memory). State changes only by
writing API objects with optimistic concurrency, through the NodeSetScaler (nodeset_controller.kube, the one
writer of a NodeSet's size): ``spec.replicas`` through the scale subresource, and removal requests on the
NodeSet; the controllers do the rest. The scaler also makes the answers after a write agree with it
(read-your-write), and says when a NodeSet kept changing under a write (ABORTED: the client tries again).
"""

from __future__ import annotations

import functools
import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import grpc
import urllib3
from google.protobuf import duration_pb2
from google.protobuf.message import DecodeError, Message

from nodeset_controller import metrics
from nodeset_controller.api import (
    ANNOTATION_DRAIN_STARTED,
    ANNOTATION_MACHINE_ERROR,
    ANNOTATION_MACHINE_ERROR_CLASS,
    ANNOTATION_MACHINE_ERROR_CODE,
    ANNOTATION_MACHINE_ID,
    ANNOTATION_MACHINE_PHASE,
    LABEL_GPU,
    LABEL_NODESET,
    MODE_CLUSTER_AUTOSCALER,
    NodeClass,
    NodeSet,
    QuantityError,
    node_allocatable_units,
    requested_nodes,
)
from nodeset_controller.failpoints import MID_DELETE_NODES, failpoint
from nodeset_controller.kube import (
    ApiError,
    Informer,
    KubeClient,
    NodeRecord,
    NodeSetConflictError,
    NodeSetScaler,
    RemovalOfGoneNodesError,
    is_member,
    nodeset_members,
)

from ._proto import externalgrpc_pb2 as pb
from ._proto import externalgrpc_pb2_grpc as pb_grpc
from ._template import template_node

log = logging.getLogger(__name__)

#: maxSize of a NodeSet without maxReplicas.
DEFAULT_MAX_SIZE = 1000
#: instanceErrorClass values (cloudprovider.InstanceErrorClass).
OUT_OF_RESOURCES_ERROR_CLASS = 1
OTHER_ERROR_CLASS = 99

#: A status's message travels in a trailer, and the client drops a call whose trailers pass 16 KiB (its
#: status becomes RESOURCE_EXHAUSTED and the real one is lost): messages are cut to this many UTF-8 bytes,
#: which percent-encoding makes at most three times longer on the wire.
_MAX_MESSAGE_BYTES = 2048
#: How much of a string the client sent a message quotes.
_SHOWN_CHARS = 80
#: The legacy duration fields hold int64 nanoseconds (Go's time.Duration: about 292 years).
_MIN_NANOS, _MAX_NANOS = -(2**63), 2**63 - 1

_Request = TypeVar("_Request")
_Response = TypeVar("_Response")


class RpcError(Exception):
    """An error to answer with a precise gRPC status."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class UndecodableRequest:
    """What a request becomes that is not an encoding of its message (a string field that is not UTF-8, a
    truncated field): the handler answers INVALID_ARGUMENT, where gRPC's own decoding would say INTERNAL."""

    message_type: str
    error: str


def request_decoder(message: type[Message]) -> Callable[[bytes], Message | UndecodableRequest]:
    """A request deserializer for ``message`` that hands an undecodable request to the handler."""

    def decode(data: bytes) -> Message | UndecodableRequest:
        try:
            return message.FromString(data)
        except DecodeError as error:
            return UndecodableRequest(message.DESCRIPTOR.name, str(error))

    return decode


def _shown(text: str) -> str:
    """A string the client sent, for a message: as it is, or its start and its length when it is long."""
    return text if len(text) <= _SHOWN_CHARS else f"{text[:_SHOWN_CHARS]}... ({len(text)} characters)"


def _capped(message: str) -> str:
    data = message.encode()
    if len(data) <= _MAX_MESSAGE_BYTES:
        return message
    return data[: _MAX_MESSAGE_BYTES - 20].decode(errors="ignore") + f"... ({len(data)} bytes)"


def _rpc(
    handler: Callable[[CloudProviderService, _Request], _Response],
) -> Callable[[CloudProviderService, _Request, grpc.ServicerContext], _Response]:
    """Turn an RPC handler's errors into statuses: RpcError as given, an undecodable request
    INVALID_ARGUMENT, a NodeSet that kept changing under a write (NodeSetConflictError) ABORTED, API errors by
    kind, an unreachable API server UNAVAILABLE, anything else INTERNAL (logged) so nothing a client sends can
    take the server down; every message cut short enough for the client to read."""

    @functools.wraps(handler)
    def wrapper(self: CloudProviderService, request: _Request, context: grpc.ServicerContext) -> _Response:
        started = time.monotonic()
        code = grpc.StatusCode.OK
        message = ""
        try:
            if isinstance(request, UndecodableRequest):
                raise RpcError(
                    grpc.StatusCode.INVALID_ARGUMENT,
                    f"the request is not a valid {request.message_type} (are its strings UTF-8?): {request.error}",
                )
            return handler(self, request)
        except RpcError as error:
            code, message = error.code, error.message
        except NodeSetConflictError as error:
            code, message = grpc.StatusCode.ABORTED, f"{error}; try again"
        except ApiError as error:
            if error.conflict:
                code = grpc.StatusCode.ABORTED
            elif error.not_found:
                code = grpc.StatusCode.NOT_FOUND  # deleted between the cache's answer and the write
            elif error.invalid:
                code = grpc.StatusCode.INVALID_ARGUMENT
            else:
                code = grpc.StatusCode.UNAVAILABLE
            message = f"Kubernetes API: {error}"
        except (urllib3.exceptions.HTTPError, OSError) as error:
            code, message = grpc.StatusCode.UNAVAILABLE, f"Kubernetes API unreachable: {type(error).__name__}: {error}"
        except Exception as error:
            code = grpc.StatusCode.INTERNAL
            log.exception("%s failed", handler.__name__)
            message = f"{handler.__name__}: {type(error).__name__}: {error}"
        finally:
            metrics.GRPC_REQUESTS.labels(handler.__name__, code.name).inc()
            metrics.GRPC_REQUEST_DURATION.labels(handler.__name__).observe(time.monotonic() - started)
        context.abort(code, _capped(message))
        raise AssertionError("unreachable: context.abort raises")

    return wrapper


class CloudProviderService(pb_grpc.CloudProviderServicer):
    """All 15 RPCs of the externalgrpc CloudProvider."""

    def __init__(
        self,
        client: KubeClient,
        nodesets: Informer[NodeSet],
        nodes: Informer[NodeRecord],
        nodeclasses: Informer[NodeClass],
        *,
        may_write: Callable[[], bool] = lambda: True,
        scaler: NodeSetScaler | None = None,
    ) -> None:
        """``scaler`` writes the NodeSets' sizes: the process's one (the Manager's), or by default one of its own
        over ``client`` and ``nodesets``. Either way TargetSize answers with what it wrote as soon as IncreaseSize
        returns, though the watch takes a moment to deliver it."""
        self._nodesets = nodesets
        self._nodes = nodes
        self._nodeclasses = nodeclasses
        self._may_write = may_write
        self._scaler = scaler or NodeSetScaler(client, nodesets)

    # -- lookups -----------------------------------------------------------------------------------------

    def _groups(self) -> list[NodeSet]:
        return sorted(
            (ns for ns in self._nodesets.list() if ns.spec.autoscaling.mode == MODE_CLUSTER_AUTOSCALER),
            key=lambda ns: ns.metadata.name,
        )

    def _group(self, group_id: str) -> NodeSet:
        if not group_id:
            raise RpcError(grpc.StatusCode.INVALID_ARGUMENT, "node group id is empty")
        nodeset = self._nodesets.get(group_id)
        if nodeset is None:
            raise RpcError(grpc.StatusCode.NOT_FOUND, f"node group {_shown(group_id)}: no NodeSet of that name")
        if nodeset.spec.autoscaling.mode != MODE_CLUSTER_AUTOSCALER:
            raise RpcError(
                grpc.StatusCode.NOT_FOUND,
                f"node group {group_id}: NodeSet {group_id} has autoscaling.mode {nodeset.spec.autoscaling.mode}, "
                f"not {MODE_CLUSTER_AUTOSCALER}",
            )
        return nodeset

    def _node_group(self, nodeset: NodeSet) -> pb.NodeGroup:
        spec = nodeset.spec
        return pb.NodeGroup(
            id=nodeset.metadata.name,
            minSize=spec.min_replicas,
            maxSize=spec.max_replicas if spec.max_replicas is not None else DEFAULT_MAX_SIZE,
            debug=f"NodeSet {nodeset.metadata.name} (NodeClass {spec.node_class_name}, replicas {spec.replicas})",
        )

    def _node_of(self, node: pb.ExternalGrpcNode) -> NodeRecord | None:
        """The managed Node behind a node the client sent: by providerID (real nodes, and the client's fake
        nodes for unregistered instances, whose name and providerID are the instance id)."""
        if not node.providerID:
            return None
        found = self._nodes.by_index("providerID", node.providerID)
        return found[0] if found else None

    def _group_of(self, node: pb.ExternalGrpcNode) -> NodeSet | None:
        """The node group the node is a member of: a Node that only carries a group's label (no NodeSet made
        it, or an earlier NodeSet of that name did) is in none, as its NodeSet never counts or removes it."""
        record = self._node_of(node)
        if record is None:
            return None
        nodeset = self._nodesets.get(record.labels.get(LABEL_NODESET, ""))
        if nodeset is None or nodeset.spec.autoscaling.mode != MODE_CLUSTER_AUTOSCALER:
            return None
        return nodeset if is_member(record, nodeset) else None

    def _members(self, nodeset: NodeSet) -> list[NodeRecord]:
        return nodeset_members(self._nodes, nodeset)

    def _target(self, nodeset: NodeSet) -> int:
        return self._scaler.replicas(nodeset)

    def _require_writes(self, rpc: str) -> None:
        if not self._may_write():
            raise RpcError(grpc.StatusCode.UNAVAILABLE, f"{rpc}: this kube-node replica is not the leader")

    # -- cluster-level RPCs ------------------------------------------------------------------------------

    @_rpc
    def NodeGroups(self, request: pb.NodeGroupsRequest) -> pb.NodeGroupsResponse:  # noqa: N802
        """Every NodeSet handed to the cluster-autoscaler."""
        return pb.NodeGroupsResponse(nodeGroups=[self._node_group(ns) for ns in self._groups()])

    @_rpc
    def NodeGroupForNode(self, request: pb.NodeGroupForNodeRequest) -> pb.NodeGroupForNodeResponse:  # noqa: N802
        """The node's group, or an empty group (never an error) for anything kube-node does not manage."""
        nodeset = self._group_of(request.node)
        if nodeset is None:
            return pb.NodeGroupForNodeResponse(nodeGroup=pb.NodeGroup())
        return pb.NodeGroupForNodeResponse(nodeGroup=self._node_group(nodeset))

    @_rpc
    def PricingNodePrice(self, request: pb.PricingNodePriceRequest) -> pb.PricingNodePriceResponse:  # noqa: N802
        """The NodeClass's hourly price over the interval; UNIMPLEMENTED when the class has none."""
        nodeset = self._group_of(request.node)
        if nodeset is None:  # a template node: labelled with its group
            labelled = self._nodesets.get(request.node.labels.get(LABEL_NODESET, ""))
            if labelled is not None and labelled.spec.autoscaling.mode == MODE_CLUSTER_AUTOSCALER:
                nodeset = labelled
        if nodeset is None:
            raise RpcError(
                grpc.StatusCode.NOT_FOUND,
                f"node {_shown(request.node.name or request.node.providerID)}: not a Node of any node group",
            )
        nodeclass = self._nodeclasses.get(nodeset.spec.node_class_name)
        if nodeclass is None or nodeclass.spec.price_per_hour is None:
            raise RpcError(grpc.StatusCode.UNIMPLEMENTED, f"NodeClass {nodeset.spec.node_class_name} has no price")
        start = request.startTimestamp.seconds + request.startTimestamp.nanos / 1e9
        end = request.endTimestamp.seconds + request.endTimestamp.nanos / 1e9
        if end < start:
            raise RpcError(grpc.StatusCode.INVALID_ARGUMENT, "endTimestamp is before startTimestamp")
        return pb.PricingNodePriceResponse(price=nodeclass.spec.price_per_hour * (end - start) / 3600.0)

    @_rpc
    def PricingPodPrice(self, request: pb.PricingPodPriceRequest) -> pb.PricingPodPriceResponse:  # noqa: N802
        """Pods have no price of their own in kube-node."""
        raise RpcError(grpc.StatusCode.UNIMPLEMENTED, "kube-node prices nodes, not pods")

    @_rpc
    def GPULabel(self, request: pb.GPULabelRequest) -> pb.GPULabelResponse:  # noqa: N802
        """The label that GPU NodeClasses' Nodes carry."""
        return pb.GPULabelResponse(label=LABEL_GPU)

    @_rpc
    def GetAvailableGPUTypes(  # noqa: N802
        self, request: pb.GetAvailableGPUTypesRequest
    ) -> pb.GetAvailableGPUTypesResponse:
        """The gpuTypes of all NodeClasses (the client reads only the keys)."""
        response = pb.GetAvailableGPUTypesResponse()
        for nodeclass in self._nodeclasses.list():
            if nodeclass.spec.gpu_type:
                response.gpuTypes[nodeclass.spec.gpu_type].SetInParent()
        return response

    @_rpc
    def Cleanup(self, request: pb.CleanupRequest) -> pb.CleanupResponse:  # noqa: N802
        """Nothing to clean up: kube-node keeps no state for the client."""
        return pb.CleanupResponse()

    @_rpc
    def Refresh(self, request: pb.RefreshRequest) -> pb.RefreshResponse:  # noqa: N802
        """The caches are watch-fed and always fresh (the scaler forgets its writes once the cache shows them)."""
        return pb.RefreshResponse()

    # -- node group RPCs ---------------------------------------------------------------------------------

    @_rpc
    def NodeGroupTargetSize(self, request: pb.NodeGroupTargetSizeRequest) -> pb.NodeGroupTargetSizeResponse:  # noqa: N802
        """spec.replicas."""
        return pb.NodeGroupTargetSizeResponse(targetSize=self._target(self._group(request.id)))

    @_rpc
    def NodeGroupIncreaseSize(  # noqa: N802
        self, request: pb.NodeGroupIncreaseSizeRequest
    ) -> pb.NodeGroupIncreaseSizeResponse:
        """Raise spec.replicas by delta (> 0, not past maxSize) through the scale subresource."""
        self._require_writes("NodeGroupIncreaseSize")
        nodeset = self._group(request.id)
        if request.delta <= 0:
            raise RpcError(grpc.StatusCode.INVALID_ARGUMENT, f"delta must be positive, got {request.delta}")
        maximum = self._node_group(nodeset).maxSize

        def change(replicas: int) -> int:
            if replicas + request.delta > maximum:
                raise RpcError(
                    grpc.StatusCode.OUT_OF_RANGE,
                    f"node group {request.id}: {replicas} + {request.delta} exceeds maxSize {maximum}",
                )
            return replicas + request.delta

        self._scale(request.id, change)
        return pb.NodeGroupIncreaseSizeResponse()

    @_rpc
    def NodeGroupDecreaseTargetSize(  # noqa: N802
        self, request: pb.NodeGroupDecreaseTargetSizeRequest
    ) -> pb.NodeGroupDecreaseTargetSizeResponse:
        """Lower spec.replicas by -delta, only as far as it cancels Nodes that do not exist yet."""
        self._require_writes("NodeGroupDecreaseTargetSize")
        nodeset = self._group(request.id)
        if request.delta >= 0:
            raise RpcError(grpc.StatusCode.INVALID_ARGUMENT, f"delta must be negative, got {request.delta}")
        existing = sum(1 for n in self._members(nodeset) if not _leaving(n, requested_nodes(nodeset)))

        def change(replicas: int) -> int:
            if replicas + request.delta < existing:
                raise RpcError(
                    grpc.StatusCode.FAILED_PRECONDITION,
                    f"node group {request.id}: decreasing the target {replicas} by {-request.delta} would remove "
                    f"some of its {existing} existing Nodes; use DeleteNodes for those",
                )
            return replicas + request.delta

        self._scale(request.id, change)
        return pb.NodeGroupDecreaseTargetSizeResponse()

    def _scale(self, name: str, change: Callable[[int], int]) -> None:
        """Apply ``change`` to replicas through the scale subresource, from a fresh read on each conflict, so no
        write is lost (NodeSetConflictError, ABORTED, if the NodeSet kept changing)."""
        self._scaler.resize(name, lambda nodeset: change(nodeset.spec.replicas))

    @_rpc
    def NodeGroupDeleteNodes(self, request: pb.NodeGroupDeleteNodesRequest) -> pb.NodeGroupDeleteNodesResponse:  # noqa: N802
        """Remove exactly these Nodes and lower the target by their number, all or nothing, idempotently."""
        self._require_writes("NodeGroupDeleteNodes")
        nodeset = self._group(request.id)
        if not request.nodes:
            raise RpcError(grpc.StatusCode.INVALID_ARGUMENT, "nodes: none given")
        names: list[str] = []
        for node in request.nodes:
            record = self._node_of(node)
            # A member only: its NodeSet never removes a Node it did not make, so counting one would lower
            # replicas and take a member that nobody named.
            if record is None or not is_member(record, nodeset):
                label = record.labels.get(LABEL_NODESET) if record else None
                why = " (it carries the group's label, but the NodeSet did not make it)" if label == request.id else ""
                raise RpcError(
                    grpc.StatusCode.INVALID_ARGUMENT,
                    f"node {_shown(node.name or node.providerID)} (providerID {_shown(node.providerID)!r}) does not "
                    f"belong to node group {request.id}{why}; nothing was deleted",
                )
            names.append(record.name)

        def still_a_member(name: str) -> bool:
            record = self._nodes.get(name)
            return record is not None and is_member(record, nodeset)

        try:
            recorded = self._scaler.request_removal(request.id, names, present=still_a_member)
        except RemovalOfGoneNodesError as error:
            raise RpcError(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"node {', '.join(_shown(n) for n in error.names[:5])} does not belong to node group {request.id} "
                f"any more (it went while this call ran); nothing was deleted",
            ) from None
        if recorded:
            failpoint(MID_DELETE_NODES)
        return pb.NodeGroupDeleteNodesResponse()

    @_rpc
    def NodeGroupNodes(self, request: pb.NodeGroupNodesRequest) -> pb.NodeGroupNodesResponse:  # noqa: N802
        """One instance per Node of the set, id = its providerID."""
        nodeset = self._group(request.id)
        requested = requested_nodes(nodeset)
        response = pb.NodeGroupNodesResponse()
        for node in self._members(nodeset):
            if not node.provider_id:
                continue  # the NodeController gives it one at once; until then the client could not match it
            instance = response.instances.add(id=node.provider_id)
            status = instance.status
            if _leaving(node, requested):
                status.instanceState = pb.InstanceStatus.instanceDeleting
            elif node.annotations.get(ANNOTATION_MACHINE_PHASE) == "Running":
                status.instanceState = pb.InstanceStatus.instanceRunning
            else:
                status.instanceState = pb.InstanceStatus.instanceCreating
                if ANNOTATION_MACHINE_ERROR in node.annotations and ANNOTATION_MACHINE_ID not in node.annotations:
                    error_class = node.annotations.get(ANNOTATION_MACHINE_ERROR_CLASS)
                    status.errorInfo.errorCode = node.annotations.get(ANNOTATION_MACHINE_ERROR_CODE, "OTHER")
                    status.errorInfo.errorMessage = node.annotations[ANNOTATION_MACHINE_ERROR]
                    status.errorInfo.instanceErrorClass = (
                        OUT_OF_RESOURCES_ERROR_CLASS if error_class == "OutOfResources" else OTHER_ERROR_CLASS
                    )
        return response

    @_rpc
    def NodeGroupTemplateNodeInfo(  # noqa: N802
        self, request: pb.NodeGroupTemplateNodeInfoRequest
    ) -> pb.NodeGroupTemplateNodeInfoResponse:
        """A full template Node, in the current field and the legacy one (for cluster-autoscalers < 1.35); a
        capacity the client could not read (the NodeClass schema checks its form only loosely) is
        FAILED_PRECONDITION naming the field."""
        nodeset = self._group(request.id)
        nodeclass = self._nodeclasses.get(nodeset.spec.node_class_name)
        if nodeclass is None:
            raise RpcError(
                grpc.StatusCode.FAILED_PRECONDITION,
                f"node group {request.id}: NodeClass {nodeset.spec.node_class_name} does not exist",
            )
        nodes = self._nodes.by_index("nodeclass", nodeclass.metadata.name)
        try:
            node_allocatable_units(nodeclass, nodes)
        except QuantityError as error:
            raise RpcError(
                grpc.StatusCode.FAILED_PRECONDITION,
                f"node group {request.id}: NodeClass {nodeclass.metadata.name}: spec.capacity.{error}",
            ) from None
        data = template_node(nodeset, nodeclass, nodes).SerializeToString()
        return pb.NodeGroupTemplateNodeInfoResponse(nodeBytes=data, old_nodeInfo=data)

    @_rpc
    def NodeGroupGetOptions(  # noqa: N802
        self, request: pb.NodeGroupAutoscalingOptionsRequest
    ) -> pb.NodeGroupAutoscalingOptionsResponse:
        """OK without options ("use your defaults") unless the NodeSet sets some; then the defaults with
        those overridden, every duration in both the current and the legacy fields."""
        nodeset = self._group(request.id)
        overrides = nodeset.spec.autoscaling.options
        if overrides is None:
            return pb.NodeGroupAutoscalingOptionsResponse()
        options = pb.NodeGroupAutoscalingOptions()
        options.CopyFrom(request.defaults)
        if overrides.scale_down_utilization_threshold is not None:
            options.scaleDownUtilizationThreshold = overrides.scale_down_utilization_threshold
        if overrides.scale_down_gpu_utilization_threshold is not None:
            options.scaleDownGpuUtilizationThreshold = overrides.scale_down_gpu_utilization_threshold
        if overrides.zero_or_max_node_scaling is not None:
            options.zeroOrMaxNodeScaling = overrides.zero_or_max_node_scaling
        if overrides.ignore_daemon_sets_utilization is not None:
            options.ignoreDaemonSetsUtilization = overrides.ignore_daemon_sets_utilization
        set_by_nodeset = {  # as the CRD names them
            "scaleDownUnneededTime": overrides.scale_down_unneeded_time,
            "scaleDownUnreadyTime": overrides.scale_down_unready_time,
            "maxNodeProvisionTime": overrides.max_node_provision_time,
        }
        durations = (  # the response's current and legacy fields, and the NodeSet's option
            ("scaleDownUnneededDuration", "old_scaleDownUnneededTime", "scaleDownUnneededTime"),
            ("scaleDownUnreadyDuration", "old_scaleDownUnreadyTime", "scaleDownUnreadyTime"),
            ("MaxNodeProvisionDuration", "old_MaxNodeProvisionTime", "maxNodeProvisionTime"),
        )
        for current, legacy, option in durations:
            override = set_by_nodeset[option]
            if override is None:
                nanos = _duration_nanos(getattr(options, current), getattr(options, legacy))
                if not _MIN_NANOS <= nanos <= _MAX_NANOS:
                    raise RpcError(
                        grpc.StatusCode.INVALID_ARGUMENT,
                        f"defaults.{current}: {nanos / 1e9:.0f} s does not fit a duration (int64 nanoseconds, "
                        f"about 292 years)",
                    )
            else:
                nanos = _override_nanos(nodeset, option, override)
            getattr(options, current).CopyFrom(_duration(nanos))
            getattr(options, legacy).duration = nanos
        return pb.NodeGroupAutoscalingOptionsResponse(nodeGroupAutoscalingOptions=options)


def _override_nanos(nodeset: NodeSet, field: str, text: str) -> int:
    """A NodeSet's duration override, or FAILED_PRECONDITION naming the NodeSet and the field: the schema checks
    only the form (and objects stored before a schema change keep whatever it allowed then)."""
    where = f"NodeSet {nodeset.metadata.name}: spec.autoscaling.options.{field} {text!r}"
    try:
        nanos = parse_go_duration(text)
    except DurationError as error:
        raise RpcError(grpc.StatusCode.FAILED_PRECONDITION, f"{where}: {error.reason}") from None
    if nanos < 0:
        raise RpcError(grpc.StatusCode.FAILED_PRECONDITION, f"{where}: negative")
    return nanos


def _leaving(node: NodeRecord, requested: set[str]) -> bool:
    return node.deleting or node.name in requested or ANNOTATION_DRAIN_STARTED in node.annotations


def _duration(nanos: int) -> duration_pb2.Duration:
    """A google.protobuf.Duration: seconds and nanos carry the same sign, as the type requires."""
    seconds = abs(nanos) // 1_000_000_000 * (1 if nanos >= 0 else -1)
    return duration_pb2.Duration(seconds=seconds, nanos=nanos - seconds * 1_000_000_000)


def _duration_nanos(current: duration_pb2.Duration, legacy: pb.LegacyDuration) -> int:
    """A default the client sent, from whichever of the two fields it filled."""
    if current.seconds or current.nanos:
        return int(current.seconds) * 1_000_000_000 + int(current.nanos)
    return int(legacy.duration)


_UNITS = {
    "ns": 1,
    "us": 1_000,
    "µs": 1_000,  # U+00B5 micro sign
    "μs": 1_000,  # U+03BC Greek mu
    "ms": 1_000_000,
    "s": 1_000_000_000,
    "m": 60_000_000_000,
    "h": 3_600_000_000_000,
}
_INT64 = 2**63 - 1
_NUMBER = re.compile(r"([0-9]*)(?:\.([0-9]*))?")
_UNIT = re.compile(r"[^0-9.]+")


class DurationError(ValueError):
    """Not a duration Go's time.ParseDuration accepts: malformed, or longer than its int64 nanoseconds hold.
    ``reason`` says which, without the text."""

    def __init__(self, text: str, reason: str) -> None:
        super().__init__(f"{text!r} is {reason}")
        self.text = text
        self.reason = reason


_TOO_LONG = "longer than a Go duration can be (at most 2562047h47m16.854775807s)"


def parse_go_duration(text: str) -> int:
    """Nanoseconds in a Go duration string such as "10m", "1h30m" or "2.5s", exactly as Go's
    time.ParseDuration reads it; a :class:`DurationError` where Go's is an error, including a duration past
    int64 nanoseconds (about 292 years), which the CRD's pattern cannot rule out."""
    rest, negative = text, False
    if rest[:1] in ("+", "-"):
        negative, rest = rest[0] == "-", rest[1:]
    if rest == "0":
        return 0
    if not rest:
        raise DurationError(text, "not a Go duration")
    total = 0
    while rest:
        number = _NUMBER.match(rest)
        assert number is not None  # it matches the empty string
        whole, fraction = number.group(1), number.group(2)
        if not whole and not fraction:
            raise DurationError(text, "not a Go duration")
        rest = rest[number.end() :]
        unit_match = _UNIT.match(rest)
        if unit_match is None:
            raise DurationError(text, "not a Go duration (a number without a unit)")
        unit = _UNITS.get(unit_match.group())
        if unit is None:
            raise DurationError(text, f"not a Go duration (unknown unit {unit_match.group()!r})")
        rest = rest[unit_match.end() :]
        value = int(whole or "0") if len(whole.lstrip("0")) <= 19 else 2**64  # (no int() of 5,000 digits)
        if value > 2**63 // unit:
            raise DurationError(text, _TOO_LONG)
        value *= unit
        if fraction:
            # Go's leadingFraction keeps at most what fits in int64, and scales it as float64.
            digits, scale = 0, 1.0
            for char in fraction:
                if digits > (2**63 - 1) // 10 or digits * 10 + int(char) > 2**63:
                    break
                digits, scale = digits * 10 + int(char), scale * 10
            value += int(float(digits) * (float(unit) / scale))
        total += value
        if total > 2**63:
            raise DurationError(text, _TOO_LONG)
    if negative:
        return -total
    if total > _INT64:
        raise DurationError(text, _TOO_LONG)
    return total
