"""What the fuzzer found (tests/grpc/test_fuzz.py), one regression test each: the answers are precise
statuses with messages the client can read, and a Node no NodeSet made is in no node group."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import grpc
import pytest
from google.protobuf import duration_pb2
from kubernetes import client as k8s_client

from autoscaler_provider import CloudProviderService, ProviderServer
from autoscaler_provider._proto import externalgrpc_pb2 as pb
from autoscaler_provider._proto import externalgrpc_pb2_grpc as pb_grpc
from nodeset_controller.api import LABEL_NODECLASS, LABEL_NODESET
from nodeset_controller.controllers import Manager
from nodeset_controller.kube import NODECLASSES, NODES, NODESETS, ApiError, KubeClient, Resource
from tests.conftest import Provider, create_or_none, eventually, nodeset_manifest, schema_relaxed, simulator_nodeclass

pytestmark = pytest.mark.controlplane

CA = {"autoscaling": {"mode": "ClusterAutoscaler"}}


def status_of(call: Any) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.RpcError) as caught:
        call()
    return caught.value.code(), caught.value.details()


def groups(provider: Provider) -> list[str]:
    return [g.id for g in provider.stub.NodeGroups(pb.NodeGroupsRequest()).nodeGroups]


def test_a_node_carrying_a_groups_label_that_its_nodeset_did_not_make_is_in_no_group(
    kube: KubeClient, provider: Provider, manager: Manager
) -> None:
    # Before: NodeGroupForNode named the group, and DeleteNodes took it, lowering replicas by one; the NodeSet
    # never removes a Node it did not make, pruned the name, and removed one of its own Nodes instead.
    kube.create(NODECLASSES, simulator_nodeclass())
    kube.create(NODESETS, nodeset_manifest("grp", 1, **CA))
    kube.create(NODES, {"metadata": {"name": "impostor", "labels": {LABEL_NODECLASS: "sim", LABEL_NODESET: "grp"}}})
    impostor = eventually(lambda: (n := manager.nodes.get("impostor")) and n.provider_id and n, what="its providerID")
    member = eventually(
        lambda: [n for n in manager.nodes.by_index("nodeset", "grp") if n.owner_uid and n.provider_id],
        what="grp's own Node",
    )[0]
    node = pb.ExternalGrpcNode(providerID=impostor.provider_id, name="impostor", labels=impostor.labels)

    assert provider.stub.NodeGroupForNode(pb.NodeGroupForNodeRequest(node=node)).nodeGroup == pb.NodeGroup()
    code, details = status_of(
        lambda: provider.stub.NodeGroupDeleteNodes(pb.NodeGroupDeleteNodesRequest(id="grp", nodes=[node]))
    )
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert "does not belong to node group grp" in details and "the NodeSet did not make it" in details
    assert kube.get(NODESETS, "grp")["spec"]["replicas"] == 1
    assert manager.nodes.get(member.name) is not None
    own = pb.ExternalGrpcNode(providerID=member.provider_id, name=member.name)
    assert provider.stub.NodeGroupForNode(pb.NodeGroupForNodeRequest(node=own)).nodeGroup.id == "grp"


def test_long_ids_and_names_are_cut_short_in_messages(kube: KubeClient, provider: Provider) -> None:
    # Before: the message quoted the whole id, the status trailer passed the client's 16 KiB limit, and the
    # client saw RESOURCE_EXHAUSTED instead of NOT_FOUND.
    kube.create(NODESETS, nodeset_manifest("grp", 0, **CA))
    eventually(lambda: groups(provider) == ["grp"])
    for huge in ("z" * 1_000_000, "\U0001f600" * 50_000):
        code, details = status_of(lambda h=huge: provider.stub.NodeGroupTargetSize(pb.NodeGroupTargetSizeRequest(id=h)))
        assert code == grpc.StatusCode.NOT_FOUND
        assert f"({len(huge)} characters): no NodeSet of that name" in details
        assert len(details.encode()) < 2048
    nodes = [pb.ExternalGrpcNode(providerID="p" * 100_000, name="n" * 100_000)]
    code, details = status_of(
        lambda: provider.stub.NodeGroupDeleteNodes(pb.NodeGroupDeleteNodesRequest(id="grp", nodes=nodes))
    )
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "(100000 characters)" in details


def test_get_options_durations_no_duration_can_hold_are_precise_errors(kube: KubeClient, provider: Provider) -> None:
    # Before: both were INTERNAL ("ValueError: Value out of range") from the legacy int64 nanoseconds field.
    options = {"mode": "ClusterAutoscaler", "options": {"zeroOrMaxNodeScaling": True}}
    kube.create(NODESETS, nodeset_manifest("tuned", 0, autoscaling=options))
    forever = {"mode": "ClusterAutoscaler", "options": {"scaleDownUnreadyTime": "99999999999h"}}
    with schema_relaxed(kube, "nodesets", "autoscaling", "options"):  # stored before the schema refused it
        manifest = nodeset_manifest("forever", 0, autoscaling=forever)
        eventually(lambda: create_or_none(kube, NODESETS, manifest), what="the relaxed schema")
    eventually(lambda: groups(provider) == ["forever", "tuned"], timeout=60)

    huge = pb.NodeGroupAutoscalingOptions(MaxNodeProvisionDuration=duration_pb2.Duration(seconds=2**62))
    code, details = status_of(
        lambda: provider.stub.NodeGroupGetOptions(pb.NodeGroupAutoscalingOptionsRequest(id="tuned", defaults=huge))
    )
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "defaults.MaxNodeProvisionDuration" in details
    code, details = status_of(
        lambda: provider.stub.NodeGroupGetOptions(pb.NodeGroupAutoscalingOptionsRequest(id="forever"))
    )
    assert code == grpc.StatusCode.FAILED_PRECONDITION
    assert "spec.autoscaling.options.scaleDownUnreadyTime '99999999999h'" in details
    # In range, negative or not, a default is echoed in both fields with one sign.
    negative = pb.NodeGroupAutoscalingOptions(scaleDownUnreadyDuration=duration_pb2.Duration(seconds=-2, nanos=-5))
    echoed = provider.stub.NodeGroupGetOptions(
        pb.NodeGroupAutoscalingOptionsRequest(id="tuned", defaults=negative)
    ).nodeGroupAutoscalingOptions
    assert (echoed.scaleDownUnreadyDuration.seconds, echoed.scaleDownUnreadyDuration.nanos) == (-2, -5)
    assert echoed.old_scaleDownUnreadyTime.duration == -2_000_000_005


def test_pricing_a_template_node_of_a_nodeset_that_is_no_node_group_is_not_found(
    kube: KubeClient, provider: Provider
) -> None:
    # Before: the label alone was enough, so a Manual NodeSet's "template node" had a price.
    priced = simulator_nodeclass("priced")
    priced["spec"]["pricePerHour"] = 1.0
    kube.create(NODECLASSES, priced)
    kube.create(NODESETS, nodeset_manifest("manual", 0, nodeclass="priced"))
    kube.create(NODESETS, nodeset_manifest("grp", 0, nodeclass="priced", **CA))
    eventually(lambda: groups(provider) == ["grp"])
    for name, expected in (("manual", grpc.StatusCode.NOT_FOUND), ("grp", grpc.StatusCode.OK)):
        request = pb.PricingNodePriceRequest(node=pb.ExternalGrpcNode(name="t", labels={LABEL_NODESET: name}))
        try:
            provider.stub.PricingNodePrice(request)
            code = grpc.StatusCode.OK
        except grpc.RpcError as error:
            code = error.code()
        assert code == expected, name


@pytest.fixture
def serve() -> Iterator[Any]:
    """Serve a CloudProviderService without TLS; yields a function that returns its stub."""
    servers: list[ProviderServer] = []

    def start(service: CloudProviderService) -> pb_grpc.CloudProviderStub:
        server = ProviderServer(service, "127.0.0.1:0", tls=None)
        server.start()
        servers.append(server)
        return pb_grpc.CloudProviderStub(grpc.insecure_channel(f"127.0.0.1:{server.port}"))

    yield start
    for server in servers:
        server.stop(0)


def test_an_unreachable_api_server_is_unavailable(kube: KubeClient, manager: Manager, serve: Any) -> None:
    # Before: urllib3's connection error was INTERNAL.
    kube.create(NODESETS, nodeset_manifest("grp", 0, **CA))
    eventually(lambda: manager.nodesets.get("grp"))
    configuration = k8s_client.Configuration()
    configuration.host = "http://127.0.0.1:1"  # nothing listens there
    dead = KubeClient(configuration)
    stub = serve(CloudProviderService(dead, manager.nodesets, manager.nodes, manager.nodeclasses))
    code, details = status_of(
        lambda: stub.NodeGroupIncreaseSize(pb.NodeGroupIncreaseSizeRequest(id="grp", delta=1), timeout=30)
    )
    assert code == grpc.StatusCode.UNAVAILABLE and "Kubernetes API unreachable" in details


class _AlwaysConflicting(KubeClient):
    """A client whose every NodeSet patch loses the optimistic-concurrency race."""

    def patch(self, resource: Resource, name: str, body: Any, *args: Any, **kwargs: Any) -> Any:
        if resource == NODESETS:
            raise ApiError(409, "Conflict", "the object has been modified")
        return super().patch(resource, name, body, *args, **kwargs)


def test_a_removal_that_keeps_conflicting_is_aborted(
    kube: KubeClient, manager: Manager, control_plane: Any, serve: Any
) -> None:
    # Before: request_removal's RemovalConflictError, after its 20 attempts, was INTERNAL.
    kube.create(NODECLASSES, simulator_nodeclass())
    kube.create(NODESETS, nodeset_manifest("grp", 1, **CA))
    member = eventually(
        lambda: [n for n in manager.nodes.by_index("nodeset", "grp") if n.owner_uid and n.provider_id],
        what="grp's Node",
    )[0]
    client = _AlwaysConflicting(KubeClient.from_kubeconfig(control_plane.kubeconfig).configuration)
    stub = serve(CloudProviderService(client, manager.nodesets, manager.nodes, manager.nodeclasses))
    node = pb.ExternalGrpcNode(providerID=member.provider_id, name=member.name)
    code, details = status_of(lambda: stub.NodeGroupDeleteNodes(pb.NodeGroupDeleteNodesRequest(id="grp", nodes=[node])))
    assert code == grpc.StatusCode.ABORTED and "kept changing" in details and "try again" in details
    assert kube.get(NODESETS, "grp")["spec"]["replicas"] == 1


class _ScalesAlwaysConflicting(KubeClient):
    """A client whose every write of a NodeSet's scale loses the optimistic-concurrency race."""

    def replace(
        self, resource: Resource, name: str, body: Any, namespace: str | None = None, subresource: str | None = None
    ) -> Any:
        if resource == NODESETS and subresource == "scale":
            raise ApiError(409, "Conflict", "the object has been modified")
        return super().replace(resource, name, body, namespace, subresource)


def test_an_increase_or_decrease_that_keeps_conflicting_is_aborted(
    kube: KubeClient, manager: Manager, control_plane: Any, serve: Any
) -> None:
    # The same status, and the same one error behind it, as a removal's (IncreaseSize said ABORTED before too).
    kube.create(NODESETS, nodeset_manifest("grp", 2, maxReplicas=5, **CA))  # no class: no Nodes to make
    eventually(lambda: manager.nodesets.get("grp"))
    client = _ScalesAlwaysConflicting(KubeClient.from_kubeconfig(control_plane.kubeconfig).configuration)
    stub = serve(CloudProviderService(client, manager.nodesets, manager.nodes, manager.nodeclasses))
    for call in (
        lambda: stub.NodeGroupIncreaseSize(pb.NodeGroupIncreaseSizeRequest(id="grp", delta=1)),
        lambda: stub.NodeGroupDecreaseTargetSize(pb.NodeGroupDecreaseTargetSizeRequest(id="grp", delta=-1)),
    ):
        code, details = status_of(call)
        assert code == grpc.StatusCode.ABORTED and "kept changing" in details and "try again" in details
        assert "replicas not changed" in details
    assert kube.get(NODESETS, "grp")["spec"]["replicas"] == 2
