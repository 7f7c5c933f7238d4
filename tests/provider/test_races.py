"""Races between the autoscaler's RPCs, the NodeSetController and a person's `kubectl scale`."""

from __future__ import annotations

from typing import Any

import pytest

from autoscaler_provider._proto import externalgrpc_pb2 as pb
from nodeset_controller.api import ANNOTATION_DELETE_REQUESTED_NODES, LABEL_NODESET
from nodeset_controller.controllers import Manager
from nodeset_controller.kube import NODECLASSES, NODES, NODESETS, KubeClient
from tests.conftest import eventually, nodeset_manifest, simulator_nodeclass

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
