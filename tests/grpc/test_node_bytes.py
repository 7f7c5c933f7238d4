"""nodeBytes are a core/v1 Node: proven against the real API server's protobuf encoding, and read by clients of
the legacy wire format (template in field 1, durations as meta/v1 Duration in fields 3 to 5)."""

from __future__ import annotations

from typing import Any

import pytest
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

from autoscaler_provider._proto import externalgrpc_pb2 as pb
from autoscaler_provider._proto import k8s_node_pb2
from kube_node.controlplane import ControlPlane
from nodeset_controller.kube import NODECLASSES, NODES, NODESETS, STRATEGIC_MERGE_PATCH, KubeClient
from tests.conftest import Provider, eventually, nodeset_manifest, simulator_nodeclass

pytestmark = pytest.mark.controlplane


def _read_field(data: bytes, wanted: int) -> bytes:
    """The bytes of length-delimited field ``wanted`` of a protobuf message (enough for runtime.Unknown)."""
    index = 0
    while index < len(data):
        key, index = _varint(data, index)
        field, wire = key >> 3, key & 7
        if wire == 2:
            length, index = _varint(data, index)
            if field == wanted:
                return data[index : index + length]
            index += length
        elif wire == 0:
            _, index = _varint(data, index)
        else:
            raise AssertionError(f"unexpected wire type {wire}")
    raise AssertionError(f"field {wanted} not found")


def _varint(data: bytes, index: int) -> tuple[int, int]:
    shift = result = 0
    while True:
        byte = data[index]
        index += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, index
        shift += 7


def test_our_node_subset_decodes_the_apiservers_own_protobuf_exactly(
    control_plane: ControlPlane, kube: KubeClient
) -> None:
    kube.create(
        NODES,
        {
            "metadata": {
                "name": "proto-check",
                "labels": {"a": "1", "kubernetes.io/os": "linux"},
                "annotations": {"note": "x"},
            },
            "spec": {
                "providerID": "kube-node://sim/proto-check",
                "unschedulable": True,
                "podCIDR": "10.1.0.0/24",
                "taints": [{"key": "k", "value": "v", "effect": "NoSchedule"}],
            },
        },
    )
    kube.patch(
        NODES,
        "proto-check",
        {
            "status": {
                "capacity": {"cpu": "4", "memory": "16Gi", "pods": "110"},
                "allocatable": {"cpu": "3800m", "memory": "15Gi", "pods": "110"},
                "conditions": [
                    {
                        "type": "Ready",
                        "status": "True",
                        "reason": "KubeletReady",
                        "message": "ok",
                        "lastHeartbeatTime": "2026-01-02T03:04:05Z",
                        "lastTransitionTime": "2026-01-02T03:04:05Z",
                    }
                ],
                "nodeInfo": {
                    "kubeletVersion": "v1.36.3",
                    "operatingSystem": "linux",
                    "architecture": "arm64",
                    "machineID": "m",
                    "systemUUID": "s",
                    "bootID": "b",
                    "kernelVersion": "6",
                    "osImage": "o",
                    "containerRuntimeVersion": "c",
                    "kubeProxyVersion": "",
                },
            }
        },
        subresource="status",
        content_type=STRATEGIC_MERGE_PATCH,
    )

    def same_version() -> tuple[dict[str, Any], k8s_node_pb2.Node] | None:
        # kube-controller-manager may annotate the Node between two reads: compare one version of it.
        wire = control_plane.get("/api/v1/nodes/proto-check", accept="application/vnd.kubernetes.protobuf")
        assert wire[:4] == b"k8s\x00"
        decoded = k8s_node_pb2.Node.FromString(_read_field(wire[4:], 2))  # runtime.Unknown.raw
        json_node: dict[str, Any] = kube.get(NODES, "proto-check")
        return (
            (json_node, decoded)
            if json_node["metadata"]["resourceVersion"] == decoded.metadata.resourceVersion
            else None
        )

    as_json, node = eventually(same_version, what="one version read both ways")

    meta = as_json["metadata"]
    assert (node.metadata.name, node.metadata.uid) == (meta["name"], meta["uid"])
    assert dict(node.metadata.labels) == meta["labels"]
    assert dict(node.metadata.annotations) == meta["annotations"]
    assert node.metadata.creationTimestamp.seconds > 0
    spec = as_json["spec"]
    assert (node.spec.providerID, node.spec.unschedulable, node.spec.podCIDR) == (
        spec["providerID"],
        True,
        spec["podCIDR"],
    )
    assert [(t.key, t.value, t.effect) for t in node.spec.taints] == [
        (t["key"], t.get("value", ""), t["effect"]) for t in spec["taints"]
    ]
    assert ("k", "v", "NoSchedule") in [(t.key, t.value, t.effect) for t in node.spec.taints]
    status = as_json["status"]
    assert {k: v.string for k, v in node.status.capacity.items()} == status["capacity"]
    assert {k: v.string for k, v in node.status.allocatable.items()} == status["allocatable"]
    assert [(c.type, c.status, c.reason, c.message) for c in node.status.conditions] == [
        (c["type"], c["status"], c["reason"], c["message"]) for c in status["conditions"]
    ]
    assert node.status.conditions[0].lastTransitionTime.seconds == 1767323045
    info = node.status.nodeInfo
    assert (info.kubeletVersion, info.operatingSystem, info.architecture, info.machineID) == (
        "v1.36.3",
        "linux",
        "arm64",
        "m",
    )
    # And what we encode, the server's codec reads back as the same fields: re-encode and compare.
    assert k8s_node_pb2.Node.FromString(node.SerializeToString()) == node


def _legacy_messages() -> tuple[type[Any], type[Any]]:
    """Message classes with only the legacy (<= 1.34) fields, built at run time from their field numbers."""
    file = descriptor_pb2.FileDescriptorProto(
        name="legacy_externalgrpc_test.proto", package="legacytest", dependency=["k8s_node.proto"], syntax="proto3"
    )
    template = file.message_type.add(name="TemplateResponse")
    template.field.add(
        name="nodeInfo",
        number=1,
        type=descriptor_pb2.FieldDescriptorProto.TYPE_MESSAGE,
        type_name=".k8s.io.api.core.v1.Node",
        label=descriptor_pb2.FieldDescriptorProto.LABEL_OPTIONAL,
    )
    duration = file.message_type.add(name="MetaDuration")
    duration.field.add(
        name="duration",
        number=1,
        type=descriptor_pb2.FieldDescriptorProto.TYPE_INT64,
        label=descriptor_pb2.FieldDescriptorProto.LABEL_OPTIONAL,
    )
    options = file.message_type.add(name="Options")
    scalar = {
        "scaleDownUtilizationThreshold": (1, descriptor_pb2.FieldDescriptorProto.TYPE_DOUBLE),
        "scaleDownGpuUtilizationThreshold": (2, descriptor_pb2.FieldDescriptorProto.TYPE_DOUBLE),
        "zeroOrMaxNodeScaling": (6, descriptor_pb2.FieldDescriptorProto.TYPE_BOOL),
        "ignoreDaemonSetsUtilization": (7, descriptor_pb2.FieldDescriptorProto.TYPE_BOOL),
    }
    for name, (number, kind) in scalar.items():
        options.field.add(name=name, number=number, type=kind, label=descriptor_pb2.FieldDescriptorProto.LABEL_OPTIONAL)
    for name, number in (("scaleDownUnneededTime", 3), ("scaleDownUnreadyTime", 4), ("MaxNodeProvisionTime", 5)):
        options.field.add(
            name=name,
            number=number,
            type=descriptor_pb2.FieldDescriptorProto.TYPE_MESSAGE,
            type_name=".legacytest.MetaDuration",
            label=descriptor_pb2.FieldDescriptorProto.LABEL_OPTIONAL,
        )
    response = file.message_type.add(name="OptionsResponse")
    response.field.add(
        name="nodeGroupAutoscalingOptions",
        number=1,
        type=descriptor_pb2.FieldDescriptorProto.TYPE_MESSAGE,
        type_name=".legacytest.Options",
        label=descriptor_pb2.FieldDescriptorProto.LABEL_OPTIONAL,
    )
    pool = descriptor_pool.Default()
    try:
        pool.FindFileByName(file.name)
    except KeyError:
        pool.Add(file)
    return (
        message_factory.GetMessageClass(pool.FindMessageTypeByName("legacytest.TemplateResponse")),
        message_factory.GetMessageClass(pool.FindMessageTypeByName("legacytest.OptionsResponse")),
    )


def test_a_legacy_client_reads_the_same_template_and_options(kube: KubeClient, provider: Provider) -> None:
    legacy_template, legacy_options = _legacy_messages()
    kube.create(NODECLASSES, simulator_nodeclass())
    kube.create(
        NODESETS,
        nodeset_manifest(
            "old", 0, autoscaling={"mode": "ClusterAutoscaler", "options": {"scaleDownUnneededTime": "90s"}}
        ),
    )
    eventually(lambda: provider.stub.NodeGroups(pb.NodeGroupsRequest()).nodeGroups)
    current = provider.stub.NodeGroupTemplateNodeInfo(pb.NodeGroupTemplateNodeInfoRequest(id="old"))
    old = legacy_template.FromString(current.SerializeToString())
    assert old.nodeInfo == k8s_node_pb2.Node.FromString(current.nodeBytes)
    assert old.nodeInfo.status.allocatable["cpu"].string == "4"

    defaults = pb.NodeGroupAutoscalingOptions(
        old_scaleDownUnneededTime=pb.LegacyDuration(duration=600 * 10**9),
        old_scaleDownUnreadyTime=pb.LegacyDuration(duration=1200 * 10**9),
        old_MaxNodeProvisionTime=pb.LegacyDuration(duration=900 * 10**9),
        scaleDownUtilizationThreshold=0.5,
    )
    answer = provider.stub.NodeGroupGetOptions(pb.NodeGroupAutoscalingOptionsRequest(id="old", defaults=defaults))
    options = legacy_options.FromString(answer.SerializeToString()).nodeGroupAutoscalingOptions
    assert options.scaleDownUnneededTime.duration == 90 * 10**9  # the NodeSet's override
    assert options.scaleDownUnreadyTime.duration == 1200 * 10**9  # the legacy default, echoed
    assert options.MaxNodeProvisionTime.duration == 900 * 10**9
    assert options.scaleDownUtilizationThreshold == pytest.approx(0.5)
    current_options = answer.nodeGroupAutoscalingOptions
    assert current_options.scaleDownUnneededDuration.seconds == 90
    assert current_options.scaleDownUnreadyDuration.seconds == 1200
