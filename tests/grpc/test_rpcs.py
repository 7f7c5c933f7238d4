"""Every RPC of the CloudProvider against NodeSets and simulated machines on the real control plane."""

from __future__ import annotations

import concurrent.futures
import time
from typing import Any

import grpc
import pytest
from google.protobuf import duration_pb2, timestamp_pb2

from autoscaler_provider import DEFAULT_MAX_SIZE, CloudProviderService, DurationError, ProviderServer, parse_go_duration
from autoscaler_provider._proto import externalgrpc_pb2 as pb
from autoscaler_provider._proto import externalgrpc_pb2_grpc, k8s_node_pb2
from nodeset_controller.api import ANNOTATION_DELETE_REQUESTED_NODES, LABEL_GPU, LABEL_NODESET
from nodeset_controller.controllers import Manager
from nodeset_controller.kube import NODECLASSES, NODES, NODESETS, KubeClient, Resource, nodeset_from_json
from tests.conftest import Provider, create_or_none, eventually, nodeset_manifest, schema_relaxed, simulator_nodeclass

pytestmark = pytest.mark.controlplane

CA = {"autoscaling": {"mode": "ClusterAutoscaler"}}


def status_of(call: Any) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.RpcError) as caught:
        call()
    return caught.value.code(), caught.value.details()


def members(kube: KubeClient, nodeset: str) -> list[dict[str, Any]]:
    items = kube.list(NODES, labelSelector=f"{LABEL_NODESET}={nodeset}")["items"]
    return [n for n in items if not n["metadata"].get("deletionTimestamp")]


def grpc_node(node: dict[str, Any]) -> pb.ExternalGrpcNode:
    return pb.ExternalGrpcNode(
        providerID=node["spec"].get("providerID", ""),
        name=node["metadata"]["name"],
        labels=node["metadata"].get("labels", {}),
    )


def ready_members(kube: KubeClient, nodeset: str, count: int) -> list[dict[str, Any]] | None:
    nodes = members(kube, nodeset)
    running = [n for n in nodes if n["metadata"].get("annotations", {}).get("kube-node.io/machine-phase") == "Running"]
    return nodes if len(nodes) == count and len(running) == count else None


def test_node_groups_are_the_nodesets_handed_to_the_autoscaler(kube: KubeClient, provider: Provider) -> None:
    kube.create(NODECLASSES, simulator_nodeclass())
    kube.create(NODESETS, nodeset_manifest("ca-b", 0, minReplicas=1, maxReplicas=7, **CA))
    kube.create(NODESETS, nodeset_manifest("ca-a", 0, **CA))
    kube.create(NODESETS, nodeset_manifest("manual", 0))
    groups = eventually(
        lambda: (r := provider.stub.NodeGroups(pb.NodeGroupsRequest())).nodeGroups and len(r.nodeGroups) == 2 and r
    )
    assert [(g.id, g.minSize, g.maxSize) for g in groups.nodeGroups] == [("ca-a", 0, DEFAULT_MAX_SIZE), ("ca-b", 1, 7)]
    assert "NodeClass sim" in groups.nodeGroups[1].debug


def test_node_group_for_node_resolves_by_provider_id_and_answers_empty_for_the_rest(
    kube: KubeClient, provider: Provider, manager: Manager
) -> None:
    kube.create(NODECLASSES, simulator_nodeclass())
    kube.create(NODESETS, nodeset_manifest("grp", 1, minReplicas=1, maxReplicas=4, **CA))
    kube.create(NODESETS, nodeset_manifest("manual", 1))
    grp = eventually(lambda: ready_members(kube, "grp", 1))[0]
    manual = eventually(lambda: ready_members(kube, "manual", 1))[0]
    kube.create(NODES, {"metadata": {"name": "foreign"}, "spec": {"providerID": "aws:///us-east-1a/i-123"}})

    answer = provider.stub.NodeGroupForNode(pb.NodeGroupForNodeRequest(node=grpc_node(grp))).nodeGroup
    assert (answer.id, answer.minSize, answer.maxSize) == ("grp", 1, 4)
    assert answer.debug
    # The client's fake node for an instance: name = providerID = instance id.
    pid = grp["spec"]["providerID"]
    fake = pb.ExternalGrpcNode(
        providerID=pid, name=pid, annotations={"k8s.io/cluster-autoscaler/fake-node-reason": "unregistered"}
    )
    assert provider.stub.NodeGroupForNode(pb.NodeGroupForNodeRequest(node=fake)).nodeGroup.id == "grp"
    template = pb.ExternalGrpcNode(
        name="template-grp-123", labels={"cluster-autoscaler.kubernetes.io/template-node": "true", LABEL_NODESET: "grp"}
    )
    for node in (
        grpc_node(manual),
        pb.ExternalGrpcNode(providerID="aws:///us-east-1a/i-123", name="foreign"),
        pb.ExternalGrpcNode(name="no-provider-id"),
        template,
        pb.ExternalGrpcNode(providerID="kube-node://sim/gone", name="gone"),
    ):
        empty = provider.stub.NodeGroupForNode(pb.NodeGroupForNodeRequest(node=node)).nodeGroup
        assert empty == pb.NodeGroup(), node


def test_target_size_and_precise_errors_for_bad_ids(kube: KubeClient, provider: Provider) -> None:
    kube.create(NODECLASSES, simulator_nodeclass())
    kube.create(NODESETS, nodeset_manifest("grp", 2, maxReplicas=3, **CA))
    kube.create(NODESETS, nodeset_manifest("manual", 0))
    eventually(lambda: provider.stub.NodeGroups(pb.NodeGroupsRequest()).nodeGroups)
    assert provider.stub.NodeGroupTargetSize(pb.NodeGroupTargetSizeRequest(id="grp")).targetSize == 2
    code, details = status_of(lambda: provider.stub.NodeGroupTargetSize(pb.NodeGroupTargetSizeRequest(id="nope")))
    assert code == grpc.StatusCode.NOT_FOUND and "no NodeSet of that name" in details
    code, details = status_of(lambda: provider.stub.NodeGroupTargetSize(pb.NodeGroupTargetSizeRequest(id="manual")))
    assert code == grpc.StatusCode.NOT_FOUND and "autoscaling.mode Manual" in details
    code, _ = status_of(lambda: provider.stub.NodeGroupTargetSize(pb.NodeGroupTargetSizeRequest(id="")))
    assert code == grpc.StatusCode.INVALID_ARGUMENT


def test_increase_size_validates_and_is_visible_when_it_returns(kube: KubeClient, provider: Provider) -> None:
    kube.create(NODECLASSES, simulator_nodeclass())
    kube.create(NODESETS, nodeset_manifest("grp", 0, maxReplicas=3, **CA))
    eventually(lambda: provider.stub.NodeGroups(pb.NodeGroupsRequest()).nodeGroups)
    for delta in (0, -1):
        code, details = status_of(
            lambda d=delta: provider.stub.NodeGroupIncreaseSize(pb.NodeGroupIncreaseSizeRequest(id="grp", delta=d))
        )
        assert code == grpc.StatusCode.INVALID_ARGUMENT and "delta must be positive" in details
    code, details = status_of(
        lambda: provider.stub.NodeGroupIncreaseSize(pb.NodeGroupIncreaseSizeRequest(id="grp", delta=4))
    )
    assert code == grpc.StatusCode.OUT_OF_RANGE and "exceeds maxSize 3" in details
    provider.stub.NodeGroupIncreaseSize(pb.NodeGroupIncreaseSizeRequest(id="grp", delta=2))
    assert provider.stub.NodeGroupTargetSize(pb.NodeGroupTargetSizeRequest(id="grp")).targetSize == 2
    assert kube.get(NODESETS, "grp")["spec"]["replicas"] == 2
    eventually(lambda: ready_members(kube, "grp", 2), timeout=60)


def test_fifty_concurrent_increases_of_one_raise_replicas_by_exactly_fifty(
    kube: KubeClient, provider: Provider
) -> None:
    kube.create(NODESETS, nodeset_manifest("many", 0, maxReplicas=100, **CA))  # no class: no Nodes to make
    eventually(lambda: provider.stub.NodeGroups(pb.NodeGroupsRequest()).nodeGroups)
    request = pb.NodeGroupIncreaseSizeRequest(id="many", delta=1)
    with concurrent.futures.ThreadPoolExecutor(50) as pool:
        list(pool.map(lambda _: provider.stub.NodeGroupIncreaseSize(request), range(50)))
    assert kube.get(NODESETS, "many")["spec"]["replicas"] == 50
    assert provider.stub.NodeGroupTargetSize(pb.NodeGroupTargetSizeRequest(id="many")).targetSize == 50


def test_delete_nodes_removes_exactly_those_and_lowers_the_target_once(kube: KubeClient, provider: Provider) -> None:
    kube.create(NODECLASSES, simulator_nodeclass())
    kube.create(NODESETS, nodeset_manifest("grp", 3, minReplicas=2, maxReplicas=5, **CA))
    kube.create(NODESETS, nodeset_manifest("other", 1, **CA))
    nodes = eventually(lambda: ready_members(kube, "grp", 3), timeout=60)
    other = eventually(lambda: ready_members(kube, "other", 1), timeout=60)[0]

    # One node of another group in the request: an error, and nothing changes.
    bad = pb.NodeGroupDeleteNodesRequest(id="grp", nodes=[grpc_node(nodes[0]), grpc_node(other)])
    code, details = status_of(lambda: provider.stub.NodeGroupDeleteNodes(bad))
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert other["metadata"]["name"] in details and "nothing was deleted" in details
    assert kube.get(NODESETS, "grp")["spec"]["replicas"] == 3
    assert ANNOTATION_DELETE_REQUESTED_NODES not in kube.get(NODESETS, "grp")["metadata"].get("annotations", {})

    victims = [grpc_node(nodes[0]), grpc_node(nodes[1])]
    request = pb.NodeGroupDeleteNodesRequest(id="grp", nodes=victims)
    provider.stub.NodeGroupDeleteNodes(request)  # below minSize (2 -> 1) is allowed
    states = {
        i.id: i.status.instanceState for i in provider.stub.NodeGroupNodes(pb.NodeGroupNodesRequest(id="grp")).instances
    }
    assert (
        states.get(nodes[0]["spec"]["providerID"], pb.InstanceStatus.instanceDeleting)
        == pb.InstanceStatus.instanceDeleting
    )
    provider.stub.NodeGroupDeleteNodes(request)  # a retry changes nothing
    assert kube.get(NODESETS, "grp")["spec"]["replicas"] == 1
    assert provider.stub.NodeGroupTargetSize(pb.NodeGroupTargetSizeRequest(id="grp")).targetSize == 1
    remaining = eventually(lambda: len(m := members(kube, "grp")) == 1 and m, timeout=60)
    assert remaining[0]["metadata"]["name"] == nodes[2]["metadata"]["name"]
    eventually(
        lambda: (
            [i.id for i in provider.stub.NodeGroupNodes(pb.NodeGroupNodesRequest(id="grp")).instances]
            == [nodes[2]["spec"]["providerID"]]
        ),
        what="only the kept Node listed",
    )


def test_decrease_target_size_cancels_only_nodes_that_do_not_exist(kube: KubeClient, provider: Provider) -> None:
    kube.create(NODECLASSES, simulator_nodeclass())
    kube.create(NODESETS, nodeset_manifest("grp", 1, **CA))
    eventually(lambda: ready_members(kube, "grp", 1), timeout=60)
    code, _ = status_of(
        lambda: provider.stub.NodeGroupDecreaseTargetSize(pb.NodeGroupDecreaseTargetSizeRequest(id="grp", delta=1))
    )
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    code, details = status_of(
        lambda: provider.stub.NodeGroupDecreaseTargetSize(pb.NodeGroupDecreaseTargetSizeRequest(id="grp", delta=-1))
    )
    assert code == grpc.StatusCode.FAILED_PRECONDITION and "existing Nodes" in details
    # A NodeSet whose Nodes cannot be made yet (no class): requested capacity can be cancelled.
    kube.create(NODESETS, nodeset_manifest("pending", 3, **CA | {"nodeClassName": "later"}))
    eventually(lambda: "pending" in [g.id for g in provider.stub.NodeGroups(pb.NodeGroupsRequest()).nodeGroups])
    assert provider.stub.NodeGroupTargetSize(pb.NodeGroupTargetSizeRequest(id="pending")).targetSize == 3
    provider.stub.NodeGroupDecreaseTargetSize(pb.NodeGroupDecreaseTargetSizeRequest(id="pending", delta=-2))
    assert kube.get(NODESETS, "pending")["spec"]["replicas"] == 1


def test_node_group_nodes_reports_states_and_quota_errors(kube: KubeClient, provider: Provider) -> None:
    kube.create(NODECLASSES, simulator_nodeclass())
    kube.create(NODECLASSES, simulator_nodeclass("starved", createFailureRate=1))
    kube.create(NODESETS, nodeset_manifest("ok", 1, **CA))
    kube.create(NODESETS, nodeset_manifest("bad", 1, nodeclass="starved", **CA))
    node = eventually(lambda: ready_members(kube, "ok", 1), timeout=60)[0]
    instance = provider.stub.NodeGroupNodes(pb.NodeGroupNodesRequest(id="ok")).instances[0]
    assert instance.id == node["spec"]["providerID"]
    assert instance.status.instanceState == pb.InstanceStatus.instanceRunning
    assert not instance.status.HasField("errorInfo")

    def errored() -> pb.Instance | None:
        found = provider.stub.NodeGroupNodes(pb.NodeGroupNodesRequest(id="bad")).instances
        return found[0] if found and found[0].status.HasField("errorInfo") else None

    failed = eventually(errored, timeout=30)
    assert failed.status.instanceState == pb.InstanceStatus.instanceCreating
    assert failed.status.errorInfo.instanceErrorClass == 1
    assert failed.status.errorInfo.errorCode == "QUOTA_EXCEEDED"
    assert "quota exceeded" in failed.status.errorInfo.errorMessage


def test_a_create_that_fails_slower_than_the_ttl_is_still_shown_for_the_ttl_from_its_failure(
    kube: KubeClient, provider: Provider
) -> None:
    """A failed instance stays in NodeGroupNodes for failed_instance_ttl (2 s here) from its error, not from the
    Node's creation: a create that took 3 s to be refused used to be given back at once, before the
    cluster-autoscaler could see its error and back the group off."""
    kube.create(NODECLASSES, simulator_nodeclass("slow-starved", createFailureRate=1, createDelaySeconds=3))
    kube.create(NODESETS, nodeset_manifest("slow-bad", 1, nodeclass="slow-starved", **CA))

    def errored() -> pb.Instance | None:
        found = provider.stub.NodeGroupNodes(pb.NodeGroupNodesRequest(id="slow-bad")).instances
        return found[0] if found and found[0].status.HasField("errorInfo") else None

    failed = eventually(errored, timeout=30, interval=0.05)
    seen = time.monotonic()
    assert failed.status.errorInfo.errorCode == "QUOTA_EXCEEDED"
    while time.monotonic() - seen < 1.0:  # the TTL is 2 s from the error, written just before it was seen
        instances = provider.stub.NodeGroupNodes(pb.NodeGroupNodesRequest(id="slow-bad")).instances
        assert [i.id for i in instances] == [failed.id], "the failed instance was given back before its TTL"
        time.sleep(0.05)
    # Then it is given back: the Node goes and replicas with it.
    eventually(lambda: kube.get(NODESETS, "slow-bad")["spec"]["replicas"] == 0, timeout=30)


def test_template_node_info_is_a_full_node_in_both_fields(kube: KubeClient, provider: Provider) -> None:
    nodeclass = simulator_nodeclass()
    nodeclass["spec"] |= {
        "size": "sim-4cpu",
        "location": "zone-a",
        "region": "region-1",
        "gpuType": "sim-gpu",
        "labels": {"pool": "p"},
        "taints": [{"key": "gpu", "value": "yes", "effect": "NoSchedule"}],
    }
    nodeclass["spec"]["capacity"]["nvidia.com/gpu"] = "1"
    kube.create(NODECLASSES, nodeclass)
    kube.create(
        NODESETS,
        nodeset_manifest(
            "zero",
            0,
            template={"metadata": {"labels": {"tier": "t"}}, "spec": {"taints": [{"key": "t", "effect": "NoExecute"}]}},
            **CA,
        ),
    )
    kube.create(NODESETS, nodeset_manifest("classless", 0, **CA | {"nodeClassName": "absent"}))
    eventually(lambda: len(provider.stub.NodeGroups(pb.NodeGroupsRequest()).nodeGroups) == 2)
    response = provider.stub.NodeGroupTemplateNodeInfo(pb.NodeGroupTemplateNodeInfoRequest(id="zero"))
    assert response.nodeBytes and response.old_nodeInfo == response.nodeBytes
    node = k8s_node_pb2.Node.FromString(response.nodeBytes)
    labels = dict(node.metadata.labels)
    assert {
        "kubernetes.io/os": "linux",
        "kubernetes.io/arch": "amd64",
        "kubernetes.io/hostname": node.metadata.name,
        "node.kubernetes.io/instance-type": "sim-4cpu",
        "topology.kubernetes.io/zone": "zone-a",
        "topology.kubernetes.io/region": "region-1",
        "pool": "p",
        "tier": "t",
        LABEL_NODESET: "zero",
        LABEL_GPU: "sim-gpu",
    }.items() <= labels.items()
    assert {k: v.string for k, v in node.status.allocatable.items()} == {
        "cpu": "4",
        "memory": "16Gi",
        "pods": "110",
        "nvidia.com/gpu": "1",
    }
    assert dict(node.status.capacity) == dict(node.status.allocatable)
    assert [(c.type, c.status) for c in node.status.conditions] == [("Ready", "True")]
    assert [(t.key, t.value, t.effect) for t in node.spec.taints] == [
        ("gpu", "yes", "NoSchedule"),
        ("t", "", "NoExecute"),
    ]
    code, details = status_of(
        lambda: provider.stub.NodeGroupTemplateNodeInfo(pb.NodeGroupTemplateNodeInfoRequest(id="classless"))
    )
    assert code == grpc.StatusCode.FAILED_PRECONDITION and "NodeClass absent does not exist" in details


def test_template_node_info_of_a_capacity_kubernetes_would_refuse_is_a_precise_status(
    kube: KubeClient, provider: Provider, manager: Manager
) -> None:
    # Both pass the NodeClass schema's pattern; the cluster-autoscaler could not read either in a template.
    with schema_relaxed(kube, "nodeclasses", "capacity"):  # stored before the schema refused them
        for name, resource, value in (("fractional", "cpu", "1e1.5"), ("huge", "memory", "1e999999999")):
            nodeclass = simulator_nodeclass(name)
            nodeclass["spec"]["capacity"][resource] = value
            eventually(lambda nc=nodeclass: create_or_none(kube, NODECLASSES, nc), what="the relaxed schema")
    for name in ("fractional", "huge"):
        kube.create(NODESETS, nodeset_manifest(name, 0, nodeclass=name, **CA))
    eventually(lambda: len(provider.stub.NodeGroups(pb.NodeGroupsRequest()).nodeGroups) == 2)
    # The CRD's update ends kube-node's watch of NodeClasses; it resumes from where it was.
    eventually(lambda: all(manager.nodeclasses.get(n) for n in ("fractional", "huge")), timeout=60)
    for name, resource, value in (("fractional", "cpu", "1e1.5"), ("huge", "memory", "1e999999999")):
        request = pb.NodeGroupTemplateNodeInfoRequest(id=name)
        code, details = status_of(lambda r=request: provider.stub.NodeGroupTemplateNodeInfo(r))
        assert code == grpc.StatusCode.FAILED_PRECONDITION, name
        assert f"node group {name}: NodeClass {name}: spec.capacity.{resource}: '{value}'" in details


EVENTS = Resource("", "v1", "events", namespaced=True)


def template_resources(provider: Provider, group: str) -> tuple[dict[str, str], dict[str, str]]:
    """(capacity, allocatable) of the template Node the gRPC server serves for ``group``."""
    data = provider.stub.NodeGroupTemplateNodeInfo(pb.NodeGroupTemplateNodeInfoRequest(id=group)).nodeBytes
    node = k8s_node_pb2.Node.FromString(data)
    return (
        {k: v.string for k, v in node.status.capacity.items()},
        {k: v.string for k, v in node.status.allocatable.items()},
    )


def capacity_condition(kube: KubeClient, nodeclass: str, status: str) -> dict[str, Any] | None:
    conditions = (kube.get(NODECLASSES, nodeclass).get("status") or {}).get("conditions") or []
    found = next((c for c in conditions if c["type"] == "CapacityMatches"), None)
    return found if found is not None and found["status"] == status else None


def mismatch_events(kube: KubeClient, nodeclass: str) -> list[dict[str, Any]]:
    items = kube.list(EVENTS, "default", fieldSelector=f"involvedObject.name={nodeclass}")["items"]
    return [e for e in items if e["reason"] == "CapacityMismatch"]


def test_templates_and_the_nodeclass_follow_what_registered_nodes_report(
    kube: KubeClient, provider: Provider, manager: Manager
) -> None:
    nodeclass = simulator_nodeclass("declared")
    nodeclass["spec"]["capacity"] = {"cpu": "4", "memory": "4Gi"}
    kube.create(NODECLASSES, nodeclass)
    kube.create(NODESETS, nodeset_manifest("real", 0, nodeclass="declared", **CA))
    eventually(lambda: "real" in [g.id for g in provider.stub.NodeGroups(pb.NodeGroupsRequest()).nodeGroups])
    # No Node yet: the declaration.
    assert template_resources(provider, "real") == ({"cpu": "4", "memory": "4Gi", "pods": "110"},) * 2
    unknown = eventually(lambda: capacity_condition(kube, "declared", "Unknown"), what="CapacityMatches Unknown")
    assert unknown["reason"] == "NoNodeRegistered"

    kube.patch(NODESETS, "real", {"spec": {"replicas": 1}})
    node = eventually(lambda: ready_members(kube, "real", 1), timeout=60)[0]
    eventually(lambda: capacity_condition(kube, "declared", "True"), what="CapacityMatches True")

    # Its kubelet reports what the machine really has (the simulator's reports the declaration).
    name = node["metadata"]["name"]
    reported = {"cpu": "4", "memory": "24Gi", "pods": "110", "ephemeral-storage": "100Gi"}
    allocatable = {"cpu": "3800m", "memory": "23Gi", "pods": "110", "ephemeral-storage": "95Gi"}
    kube.patch(NODES, name, {"status": {"capacity": reported, "allocatable": allocatable}}, subresource="status")

    mismatch = eventually(lambda: capacity_condition(kube, "declared", "False"), what="CapacityMatches False")
    assert mismatch["reason"] == "Mismatch"
    assert "memory 24Gi where the class declares 4Gi" in mismatch["message"]
    assert "cpu" not in mismatch["message"]
    event = eventually(lambda: mismatch_events(kube, "declared"), what="the Warning Event")[0]
    assert event["type"] == "Warning" and "memory 24Gi where the class declares 4Gi" in event["message"]
    assert template_resources(provider, "real") == (reported, allocatable)

    # The same figures again (another reconcile, another status write): no second Event.
    kube.patch(NODECLASSES, "declared", {"metadata": {"labels": {"seen": "yes"}}})
    kube.patch(NODES, name, {"status": {"allocatable": {**allocatable, "cpu": "3900m"}}}, subresource="status")
    eventually(lambda: template_resources(provider, "real")[1]["cpu"] == "3900m", what="the new allocatable")
    time.sleep(2)
    assert [e["count"] for e in mismatch_events(kube, "declared")] == [1]
    # Other figures: the condition says so, with one more Event.
    kube.patch(NODES, name, {"status": {"capacity": {**reported, "memory": "32Gi"}}}, subresource="status")
    eventually(lambda: "memory 32Gi" in (capacity_condition(kube, "declared", "False") or {}).get("message", ""))
    eventually(lambda: len(mismatch_events(kube, "declared")) == 2, what="a second Event")


def _defaults() -> pb.NodeGroupAutoscalingOptions:
    return pb.NodeGroupAutoscalingOptions(
        scaleDownUtilizationThreshold=0.5,
        scaleDownGpuUtilizationThreshold=0.5,
        scaleDownUnneededDuration=duration_pb2.Duration(seconds=600),
        scaleDownUnreadyDuration=duration_pb2.Duration(seconds=1200),
        MaxNodeProvisionDuration=duration_pb2.Duration(seconds=900),
    )


def test_get_options_uses_defaults_unless_the_nodeset_overrides(kube: KubeClient, provider: Provider) -> None:
    kube.create(NODESETS, nodeset_manifest("plain", 0, **CA))
    kube.create(
        NODESETS,
        nodeset_manifest(
            "tuned",
            0,
            autoscaling={
                "mode": "ClusterAutoscaler",
                "options": {
                    "scaleDownUtilizationThreshold": 0.3,
                    "scaleDownUnneededTime": "2m",
                    "zeroOrMaxNodeScaling": True,
                },
            },
        ),
    )
    eventually(lambda: len(provider.stub.NodeGroups(pb.NodeGroupsRequest()).nodeGroups) == 2)
    plain = provider.stub.NodeGroupGetOptions(pb.NodeGroupAutoscalingOptionsRequest(id="plain", defaults=_defaults()))
    assert not plain.HasField("nodeGroupAutoscalingOptions")
    tuned = provider.stub.NodeGroupGetOptions(
        pb.NodeGroupAutoscalingOptionsRequest(id="tuned", defaults=_defaults())
    ).nodeGroupAutoscalingOptions
    assert tuned.scaleDownUtilizationThreshold == pytest.approx(0.3)
    assert tuned.scaleDownGpuUtilizationThreshold == pytest.approx(0.5)
    assert tuned.zeroOrMaxNodeScaling is True
    assert tuned.scaleDownUnneededDuration.seconds == 120
    assert tuned.old_scaleDownUnneededTime.duration == 120 * 10**9
    assert tuned.scaleDownUnreadyDuration.seconds == 1200
    assert tuned.old_scaleDownUnreadyTime.duration == 1200 * 10**9
    assert tuned.MaxNodeProvisionDuration.seconds == 900
    assert tuned.old_MaxNodeProvisionTime.duration == 900 * 10**9


def test_pricing_gpu_refresh_and_cleanup(kube: KubeClient, provider: Provider) -> None:
    priced = simulator_nodeclass("priced")
    priced["spec"] |= {"pricePerHour": 0.5, "gpuType": "sim-a100"}
    kube.create(NODECLASSES, priced)
    kube.create(NODECLASSES, simulator_nodeclass("free"))
    kube.create(NODESETS, nodeset_manifest("paid", 0, nodeclass="priced", **CA))
    kube.create(NODESETS, nodeset_manifest("unpaid", 0, nodeclass="free", **CA))
    eventually(lambda: len(provider.stub.NodeGroups(pb.NodeGroupsRequest()).nodeGroups) == 2)
    eventually(lambda: len(provider.stub.GetAvailableGPUTypes(pb.GetAvailableGPUTypesRequest()).gpuTypes) == 1)
    start, end = timestamp_pb2.Timestamp(seconds=1000), timestamp_pb2.Timestamp(seconds=1000 + 7200)
    template = pb.ExternalGrpcNode(name="t", labels={LABEL_NODESET: "paid"})
    price = provider.stub.PricingNodePrice(
        pb.PricingNodePriceRequest(node=template, startTimestamp=start, endTimestamp=end)
    ).price
    assert price == pytest.approx(1.0)
    code, _ = status_of(
        lambda: provider.stub.PricingNodePrice(
            pb.PricingNodePriceRequest(
                node=pb.ExternalGrpcNode(name="t", labels={LABEL_NODESET: "unpaid"}),
                startTimestamp=start,
                endTimestamp=end,
            )
        )
    )
    assert code == grpc.StatusCode.UNIMPLEMENTED
    code, _ = status_of(lambda: provider.stub.PricingPodPrice(pb.PricingPodPriceRequest()))
    assert code == grpc.StatusCode.UNIMPLEMENTED
    assert provider.stub.GPULabel(pb.GPULabelRequest()).label == LABEL_GPU
    assert list(provider.stub.GetAvailableGPUTypes(pb.GetAvailableGPUTypesRequest()).gpuTypes) == ["sim-a100"]
    provider.stub.Refresh(pb.RefreshRequest())
    provider.stub.Cleanup(pb.CleanupRequest())


def test_undecodable_requests_are_invalid_arguments_and_the_server_keeps_serving(provider: Provider) -> None:
    raw = provider.channel.unary_unary(
        "/clusterautoscaler.cloudprovider.v1.externalgrpc.CloudProvider/NodeGroupIncreaseSize",
        request_serializer=lambda b: b,
        response_deserializer=lambda b: b,
    )
    # Garbage, and an id (field 2) that is not UTF-8: the caller's fault, so not INTERNAL.
    for payload in (b"\xff\xff\xff\xff\x0f garbage", b"\x12\x02\xff\xfe"):
        with pytest.raises(grpc.RpcError) as caught:
            raw(payload)
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT, payload
        assert "not a valid NodeGroupIncreaseSizeRequest" in caught.value.details()
    assert provider.stub.NodeGroups(pb.NodeGroupsRequest()) is not None


def test_health_and_reflection_are_served(provider: Provider) -> None:
    from grpc_health.v1 import health_pb2, health_pb2_grpc
    from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

    health = health_pb2_grpc.HealthStub(provider.channel)
    service = "clusterautoscaler.cloudprovider.v1.externalgrpc.CloudProvider"
    assert health.Check(health_pb2.HealthCheckRequest(service=service)).status == health_pb2.HealthCheckResponse.SERVING
    stub = reflection_pb2_grpc.ServerReflectionStub(provider.channel)
    answer = next(iter(stub.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")]))))
    assert service in [s.name for s in answer.list_services_response.service]


def test_go_durations_parse() -> None:
    assert parse_go_duration("10m") == 600 * 10**9
    assert parse_go_duration("1h30m") == 5400 * 10**9
    assert parse_go_duration("2.5s") == 2_500_000_000
    assert parse_go_duration("300ms") == 300_000_000
    with pytest.raises(ValueError, match="without a unit"):
        parse_go_duration("10")


def test_go_durations_parse_as_go_does_up_to_the_longest_go_holds() -> None:
    # time.ParseDuration's results, to the nanosecond (floats would lose them).
    assert parse_go_duration("2562047h47m16.854775807s") == 2**63 - 1
    assert parse_go_duration("9223372036854775807ns") == 2**63 - 1
    assert parse_go_duration("1.000000001s") == 1_000_000_001
    assert parse_go_duration("0.1h") == 360 * 10**9
    assert parse_go_duration("1µs1us1μs") == 3_000
    assert parse_go_duration("0") == 0
    for text in (
        "99999999999999999h",
        "2562048h",
        "9223372036854775808ns",
        "2562047h47m16.854775808s",
        "1" * 30 + "s",
        "1" * 5000 + "h",
    ):
        with pytest.raises(DurationError, match="longer than a Go duration can be"):
            parse_go_duration(text)
    for text in ("", "h", "1x", "1.h5", "."):
        with pytest.raises(DurationError, match="not a Go duration"):
            parse_go_duration(text)


def test_get_options_names_the_nodeset_and_field_of_a_duration_go_cannot_hold(
    kube: KubeClient, provider: Provider
) -> None:
    too_long = {"mode": "ClusterAutoscaler", "options": {"maxNodeProvisionTime": "99999999999999999h"}}
    with schema_relaxed(kube, "nodesets", "autoscaling", "options"):  # stored before the schema refused it
        eventually(
            lambda: create_or_none(kube, NODESETS, nodeset_manifest("forever", 0, autoscaling=too_long)),
            what="the relaxed schema",
        )
    kube.create(
        NODESETS, nodeset_manifest("fine", 0, autoscaling={**too_long, "options": {"scaleDownUnneededTime": "1m"}})
    )
    eventually(lambda: len(provider.stub.NodeGroups(pb.NodeGroupsRequest()).nodeGroups) == 2)
    request = pb.NodeGroupAutoscalingOptionsRequest(id="forever", defaults=_defaults())
    code, details = status_of(lambda: provider.stub.NodeGroupGetOptions(request))
    assert code == grpc.StatusCode.FAILED_PRECONDITION
    assert "NodeSet forever: spec.autoscaling.options.maxNodeProvisionTime '99999999999999999h'" in details
    fine = provider.stub.NodeGroupGetOptions(pb.NodeGroupAutoscalingOptionsRequest(id="fine", defaults=_defaults()))
    assert fine.nodeGroupAutoscalingOptions.scaleDownUnneededDuration.seconds == 60


def test_get_options_of_a_stored_nodeset_a_stricter_schema_would_refuse_is_a_precise_status() -> None:
    """Objects written before a schema was tightened stay as they were: the handler must not rely on it."""
    nodeset = nodeset_from_json(
        {
            "metadata": {"name": "old", "uid": "u-old", "resourceVersion": "1"},
            "spec": {
                "nodeClassName": "sim",
                "replicas": 0,
                "autoscaling": {"mode": "ClusterAutoscaler", "options": {"scaleDownUnreadyTime": "1e3h"}},
            },
        }
    )
    cache = _Cache({"old": nodeset})
    service = CloudProviderService(None, cache, _Cache({}), _Cache({}))  # type: ignore[arg-type] # reads only
    server = ProviderServer(service, "127.0.0.1:0", tls=None)
    server.start()
    channel = grpc.insecure_channel(f"127.0.0.1:{server.port}")
    try:
        stub = externalgrpc_pb2_grpc.CloudProviderStub(channel)
        request = pb.NodeGroupAutoscalingOptionsRequest(id="old", defaults=_defaults())
        code, details = status_of(lambda: stub.NodeGroupGetOptions(request))
    finally:
        channel.close()
        server.stop(0)
    assert code == grpc.StatusCode.FAILED_PRECONDITION
    assert "NodeSet old: spec.autoscaling.options.scaleDownUnreadyTime '1e3h': not a Go duration" in details


class _Cache:
    """An informer's read side over fixed objects."""

    def __init__(self, items: dict[str, Any]) -> None:
        self._items = items

    def get(self, name: str) -> Any:
        return self._items.get(name)

    def list(self) -> list[Any]:
        return list(self._items.values())

    def by_index(self, index: str, value: str) -> list[Any]:
        return []
