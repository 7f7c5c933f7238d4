"""The typed models read and write the same JSON the CRDs describe."""

from __future__ import annotations

import pytest

from nodeset_controller.api import (
    AutoscalingSettings,
    ClusterAutoscalerOptions,
    ExtraArgument,
    ModelError,
    NodeClass,
    NodeClassSpec,
    NodeSet,
    NodeSetSpec,
    ObjectMeta,
    SecretReference,
    Taint,
    crd_manifests,
    nodeset_selector,
    provider_id,
)


def test_nodeset_to_dict_uses_camel_case_and_leaves_out_unset_fields() -> None:
    nodeset = NodeSet(ObjectMeta(name="web"), NodeSetSpec(node_class_name="small", replicas=3, max_replicas=5))
    body = nodeset.to_dict()
    assert body["apiVersion"] == "kube-node.io/v1alpha1"
    assert body["kind"] == "NodeSet"
    assert body["spec"]["nodeClassName"] == "small"
    assert body["spec"]["maxReplicas"] == 5
    assert "template" not in body["spec"]
    assert "status" not in body
    assert body["spec"]["autoscaling"] == {"mode": "Manual", "priority": 0}


def test_nodeclass_round_trips_through_dict() -> None:
    nodeclass = NodeClass(
        ObjectMeta(name="gpu", labels={"team": "ml"}),
        NodeClassSpec(
            provider="ec2",
            capacity={"cpu": "8", "memory": "32Gi", "nvidia.com/gpu": 1},
            credentials_secret_ref=SecretReference("aws", "kube-node-system"),
            size="g4dn.2xlarge",
            image="ami-1",
            location="us-east-1a",
            extra_create_args=[ExtraArgument("ex_security_groups", ["a", "b"])],
            taints=[Taint("nvidia.com/gpu", "NoSchedule", "present")],
            gpu_type="nvidia-tesla-t4",
            price_per_hour=0.75,
        ),
    )
    assert NodeClass.from_dict(nodeclass.to_dict()) == nodeclass


def test_nodeset_options_round_trip_through_dict() -> None:
    options = ClusterAutoscalerOptions(scale_down_unneeded_time="2m", zero_or_max_node_scaling=True)
    nodeset = NodeSet(
        ObjectMeta(name="ca"),
        NodeSetSpec(
            node_class_name="small", autoscaling=AutoscalingSettings(mode="ClusterAutoscaler", options=options)
        ),
    )
    body = nodeset.to_dict()
    assert body["spec"]["autoscaling"]["options"] == {"scaleDownUnneededTime": "2m", "zeroOrMaxNodeScaling": True}
    assert NodeSet.from_dict(body) == nodeset


def test_from_dict_names_the_field_that_has_the_wrong_shape() -> None:
    with pytest.raises(ModelError, match=r"NodeSet\.spec\.template: expected an object"):
        NodeSet.from_dict({"metadata": {"name": "x"}, "spec": {"nodeClassName": "c", "template": ["oops"]}})


def test_model_defaults_equal_the_crd_schema_defaults() -> None:
    """A model written without optional fields must read back equal after the server applies defaults."""
    nodeset_schema = crd_manifests()[1]["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    spec = nodeset_schema["properties"]["spec"]["properties"]
    defaults = NodeSetSpec(node_class_name="x")
    assert spec["replicas"]["default"] == defaults.replicas
    assert spec["minReplicas"]["default"] == defaults.min_replicas
    assert spec["deletePolicy"]["default"] == defaults.delete_policy
    assert spec["drain"]["properties"]["timeoutSeconds"]["default"] == defaults.drain.timeout_seconds
    replacement = spec["replacement"]["properties"]
    assert replacement["registrationTimeoutSeconds"]["default"] == defaults.replacement.registration_timeout_seconds
    assert replacement["maxInFlight"]["default"] == defaults.replacement.max_in_flight
    assert spec["autoscaling"]["properties"]["mode"]["default"] == defaults.autoscaling.mode


def test_provider_id_and_selector_follow_the_public_contract() -> None:
    assert provider_id("small", "web-abc12") == "kube-node://small/web-abc12"
    assert nodeset_selector("web") == "kube-node.io/nodeset=web"
