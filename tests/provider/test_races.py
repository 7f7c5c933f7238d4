"""Races between the autoscaler's RPCs, the NodeSetController and a person's `kubectl scale`."""

from __future__ import annotations

from typing import Any

import grpc
import pytest

from autoscaler_provider import CloudProviderService, ProviderServer
from autoscaler_provider._proto import externalgrpc_pb2 as pb
from autoscaler_provider._proto import externalgrpc_pb2_grpc as pb_grpc
from nodeset_controller.api import ANNOTATION_DELETE_REQUESTED_NODES, LABEL_NODESET
from nodeset_controller.controllers import Manager
from nodeset_controller.kube import NODECLASSES, NODES, NODESETS, KubeClient, NodeRecord
from tests.conftest import Provider, eventually, nodeset_manifest, simulator_nodeclass

pytestmark = pytest.mark.controlplane


def members(kube: KubeClient, name: str) -> list[dict[str, Any]]:
    return [
        n
        for n in kube.list(NODES, labelSelector=f"{LABEL_NODESET}={name}")["items"]
        if n["metadata"].get("ownerReferences")
    ]


def grpc_node(node: dict[str, Any]) -> pb.ExternalGrpcNode:
    return pb.ExternalGrpcNode(providerID=node["spec"]["providerID"], name=node["metadata"]["name"])


def test_nodes_named_for_removal_go_even_if_replicas_rose_again_first(kube: KubeClient, manager: Manager) -> None:
    # Found by the race above: a DeleteNodes (names X, replicas 2 -> 1) followed by an IncreaseSize or a
    # kubectl scale (1 -> 2) before the NodeSetController acted left replicas == Nodes, so X was never taken:
    # it stayed, listed and reported to the autoscaler as deleting, and no Node was made for the rise.
    kube.create(NODECLASSES, simulator_nodeclass())
    kube.create(
        NODESETS, nodeset_manifest("named", 2, drain={"timeoutSeconds": 0}, autoscaling={"mode": "ClusterAutoscaler"})
    )
    first = eventually(lambda: len(m := members(kube, "named")) == 2 and m, timeout=60, what="2 Nodes")
    victim = first[0]["metadata"]["name"]
    # Both writes as one: the name recorded, and replicas back where they were.
    kube.patch(NODESETS, "named", {"metadata": {"annotations": {ANNOTATION_DELETE_REQUESTED_NODES: victim}}})

    def replaced() -> list[str] | None:
        names = [n["metadata"]["name"] for n in members(kube, "named") if not n["metadata"].get("deletionTimestamp")]
        annotations = kube.get(NODESETS, "named")["metadata"].get("annotations") or {}
        return (
            names
            if len(names) == 2 and victim not in names and not annotations.get(ANNOTATION_DELETE_REQUESTED_NODES)
            else None
        )

    names = eventually(replaced, timeout=60, what=f"{victim} removed and replaced")
    assert first[1]["metadata"]["name"] in names
    assert kube.get(NODESETS, "named")["spec"]["replicas"] == 2


class _StaleByProviderID:
    """The provider's Node cache, but answering one providerID lookup with the record it had before the Node
    went: how the cache looks to a DeleteNodes call that checked membership just before the Node was removed."""

    def __init__(self, real: Any, stale: NodeRecord) -> None:
        self._real = real
        self._stale = stale

    def by_index(self, index: str, value: str) -> list[NodeRecord]:
        if index == "providerID" and value == self._stale.provider_id:
            return [self._stale]
        result: list[NodeRecord] = self._real.by_index(index, value)
        return result

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)


def test_a_delete_nodes_retry_for_a_node_already_removed_and_pruned_records_nothing(
    kube: KubeClient, manager: Manager, provider: Provider
) -> None:
    # Found by the race above (a name recorded twice): a DeleteNodes that found the Node in the cache, then
    # read the NodeSet after the Node had gone and its name had been pruned, saw the name as new, recorded it
    # again and lowered replicas a second time, so a Node nobody named was removed for it.
    kube.create(NODECLASSES, simulator_nodeclass())
    kube.create(
        NODESETS, nodeset_manifest("pruned", 3, drain={"timeoutSeconds": 0}, autoscaling={"mode": "ClusterAutoscaler"})
    )
    nodes = eventually(lambda: len(m := members(kube, "pruned")) == 3 and m, timeout=60, what="3 Nodes")
    victim = nodes[0]["metadata"]["name"]
    stale = eventually(lambda: manager.nodes.get(victim), what="the victim cached")
    request = pb.NodeGroupDeleteNodesRequest(id="pruned", nodes=[grpc_node(nodes[0])])
    provider.stub.NodeGroupDeleteNodes(request)
    eventually(
        lambda: (
            manager.nodes.get(victim) is None
            and not (kube.get(NODESETS, "pruned")["metadata"].get("annotations") or {}).get(
                ANNOTATION_DELETE_REQUESTED_NODES
            )
        ),
        timeout=60,
        what="the victim removed and its name pruned",
    )
    assert kube.get(NODESETS, "pruned")["spec"]["replicas"] == 2

    service = CloudProviderService(
        kube, manager.nodesets, _StaleByProviderID(manager.nodes, stale), manager.nodeclasses
    )  # type: ignore[arg-type]
    server = ProviderServer(service, "127.0.0.1:0", tls=None)
    server.start()
    try:
        stub = pb_grpc.CloudProviderStub(grpc.insecure_channel(f"127.0.0.1:{server.port}"))
        with pytest.raises(grpc.RpcError) as caught:
            stub.NodeGroupDeleteNodes(request)  # the retry, with membership checked against the stale record
    finally:
        server.stop(0)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "does not belong to node group pruned any more" in caught.value.details()
    assert kube.get(NODESETS, "pruned")["spec"]["replicas"] == 2
    assert not (kube.get(NODESETS, "pruned")["metadata"].get("annotations") or {}).get(
        ANNOTATION_DELETE_REQUESTED_NODES
    )
