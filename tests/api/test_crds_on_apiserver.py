"""The NodeClass and NodeSet CRDs on a real kube-apiserver: they install, validate, scale and document."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from autoscaler_provider import parse_go_duration
from kube_node._samples import SAMPLE_FILES, apply_samples, sample_manifests
from nodeset_controller.api import (
    AutoscalingSettings,
    ClusterAutoscalerOptions,
    ExtraArgument,
    NodeClass,
    NodeClassSpec,
    NodeSet,
    NodeSetSpec,
    NodeTemplate,
    NodeTemplateMetadata,
    NodeTemplateSpec,
    ObjectMeta,
    QuantityError,
    SecretReference,
    Taint,
    crd_manifests,
    resource_units,
)
from nodeset_controller.kube import CRDS, NODECLASSES, NODESETS, ApiError, KubeClient, Resource, install_crds
from tests.conftest import REPO, Kubectl
from tests.providers.libcloud import _docs as doc_examples

pytestmark = pytest.mark.controlplane

RESOURCE_QUOTAS = Resource("", "v1", "resourcequotas", namespaced=True)


def nodeclass(**spec: Any) -> dict[str, Any]:
    body = {"provider": "simulator", "capacity": {"cpu": "4", "memory": "16Gi"}, **spec}
    return {"apiVersion": "kube-node.io/v1alpha1", "kind": "NodeClass", "metadata": {"name": "bad"}, "spec": body}


def nodeset(**spec: Any) -> dict[str, Any]:
    body = {"nodeClassName": "small", **spec}
    return {"apiVersion": "kube-node.io/v1alpha1", "kind": "NodeSet", "metadata": {"name": "bad"}, "spec": body}


def test_crds_are_established_and_reinstalling_them_is_harmless(kube: KubeClient) -> None:
    names = install_crds(kube)
    assert names == ["nodeclasses.kube-node.io", "nodesets.kube-node.io"]
    for name in names:
        crd = kube.get(CRDS, name)
        established = [c for c in crd["status"]["conditions"] if c["type"] == "Established"]
        assert established and established[0]["status"] == "True"
        assert crd["spec"]["scope"] == "Cluster"
    assert kube.get(CRDS, "nodesets.kube-node.io")["spec"]["names"]["shortNames"] == ["nset"]
    assert kube.get(CRDS, "nodeclasses.kube-node.io")["spec"]["names"]["shortNames"] == ["nc"]


def test_samples_apply_with_kubectl(kubectl: Kubectl, kube: KubeClient) -> None:
    for name in SAMPLE_FILES:
        kubectl.run("apply", "-f", str(REPO / "kube_node" / "samples" / name))
    assert kube.get(NODESETS, "demo")["spec"]["nodeClassName"] == "simulated-4cpu"
    assert kube.get(NODECLASSES, "simulated-4cpu")["spec"]["provider"] == "simulator"


def test_apply_samples_leaves_existing_objects_alone(kube: KubeClient) -> None:
    assert apply_samples(kube) == ["NodeClass/simulated-4cpu", "NodeSet/demo", "NodeSet/auto"]
    kube.patch(NODESETS, "demo", {"spec": {"replicas": 7}})
    assert apply_samples(kube) == []
    assert kube.get(NODESETS, "demo")["spec"]["replicas"] == 7
    assert [doc["kind"] for doc in sample_manifests()] == ["NodeClass", "NodeSet", "NodeSet"]


INVALID_OBJECTS = [
    pytest.param(
        NODESETS,
        nodeset(replicas=-1),
        "spec.replicas in body should be greater than or equal to 0",
        id="negative-replicas",
    ),
    pytest.param(
        NODESETS,
        nodeset(minReplicas=5, maxReplicas=2),
        "minReplicas must not be greater than maxReplicas",
        id="min-above-max",
    ),
    pytest.param(
        NODESETS,
        nodeset(replicas=9, maxReplicas=3),
        "replicas must not be greater than maxReplicas",
        id="replicas-above-max",
    ),
    pytest.param(
        NODESETS,
        nodeset(nodeClassName=""),
        "spec.nodeClassName in body should be at least 1 chars long",
        id="empty-class-name",
    ),
    pytest.param(NODESETS, nodeset(deletePolicy="Largest"), 'Unsupported value: "Largest"', id="bad-delete-policy"),
    pytest.param(NODESETS, nodeset(autoscaling={"mode": "Both"}), 'Unsupported value: "Both"', id="bad-mode"),
    pytest.param(
        NODESETS,
        nodeset(autoscaling={"options": {"scaleDownUnneededTime": "ten minutes"}}),
        'scaleDownUnneededTime: Invalid value: "ten minutes": must be a Go duration such as 10m',
        id="bad-duration",
    ),
    pytest.param(
        NODESETS,
        nodeset() | {"metadata": {"name": "n" * 58}},
        "NodeSet names are at most 57 characters",
        id="name-too-long",
    ),
    pytest.param(
        NODESETS,
        nodeset(autoscaling={"options": {"scaleDownUnneededTime": "99999999999999999h"}}),
        'scaleDownUnneededTime: Invalid value: "99999999999999999h": must be a Go duration',
        id="duration-too-large",
    ),
    pytest.param(
        NODESETS,
        nodeset(autoscaling={"options": {"scaleDownUnneededTime": "1h" * 11}}),
        "spec.autoscaling.options.scaleDownUnneededTime: Too long: may not be more than 20 bytes",
        id="duration-too-long",
    ),
    pytest.param(
        NODESETS,
        nodeset(autoscaling={"options": {"scaleDownUnreadyTime": "9999999h"}}),
        'scaleDownUnreadyTime: Invalid value: "9999999h": must be a Go duration',
        id="duration-component-too-large",
    ),
    pytest.param(
        NODESETS,
        nodeset(autoscaling={"options": {"maxNodeProvisionTime": "8761h"}}),
        'maxNodeProvisionTime: Invalid value: "8761h": must be at most 8760h (a year)',
        id="duration-above-a-year",
    ),
    pytest.param(
        NODESETS,
        nodeset(replicas=10001, maxReplicas=20000),
        "spec.replicas: Invalid value: 10001: spec.replicas in body should be less than or equal to 10000",
        id="replicas-above-10000",
    ),
    pytest.param(
        NODESETS,
        nodeset(replicas=0, maxReplicas=20000),
        "spec.maxReplicas in body should be less than or equal to 10000",
        id="max-replicas-above-10000",
    ),
    pytest.param(
        NODESETS,
        nodeset(replicas=0, minReplicas=10001),
        "spec.minReplicas in body should be less than or equal to 10000",
        id="min-replicas-above-10000",
    ),
    pytest.param(
        NODESETS,
        nodeset(template={"metadata": {"labels": {"team": "a", "kube-node.io/nodeset": "x"}}}),
        "label kube-node.io/nodeset is reserved for kube-node",
        id="reserved-label",
    ),
    pytest.param(
        NODESETS,
        nodeset(template={"metadata": {"labels": {"gpu.kube-node.io/model": "x"}}}),
        "label gpu.kube-node.io/model is reserved for kube-node",
        id="reserved-label-subdomain",
    ),
    pytest.param(
        NODESETS,
        nodeset(template={"metadata": {"labels": {"node-role.kubernetes.io/control-plane": ""}}}),
        "label node-role.kubernetes.io/control-plane cannot be set by a NodeSet",
        id="node-role-label",
    ),
    pytest.param(
        NODESETS,
        nodeset(template={"metadata": {"labels": {"node-restriction.kubernetes.io/pci": "true"}}}),
        "label node-restriction.kubernetes.io/pci cannot be set by a NodeSet",
        id="node-restriction-label",
    ),
    pytest.param(
        NODESETS,
        nodeset(template={"metadata": {"labels": {"example.node-restriction.kubernetes.io/pci": "true"}}}),
        "label example.node-restriction.kubernetes.io/pci cannot be set by a NodeSet",
        id="node-restriction-label-subdomain",
    ),
    pytest.param(
        NODESETS,
        nodeset(template={"metadata": {"labels": {"kubernetes.io/hostname": "db-0"}}}),
        "label kubernetes.io/hostname cannot be set by a NodeSet",
        id="hostname-label",
    ),
    pytest.param(
        NODESETS,
        nodeset(template={"metadata": {"annotations": {"note": "x", "kube-node.io/machine-id": "i-123"}}}),
        "annotation kube-node.io/machine-id is reserved for kube-node",
        id="machine-id-annotation",
    ),
    pytest.param(
        NODESETS,
        nodeset(template={"metadata": {"annotations": {"kube-node.io/drain-started": "2026-01-01T00:00:00Z"}}}),
        "annotation kube-node.io/drain-started is reserved for kube-node",
        id="drain-started-annotation",
    ),
    pytest.param(
        NODECLASSES,
        nodeclass(provider=""),
        "spec.provider in body should be at least 1 chars long",
        id="empty-provider",
    ),
    pytest.param(
        NODECLASSES,
        nodeclass(capacity={"cpu": "4 cores", "memory": "16Gi"}),
        'spec.capacity[cpu]: Invalid value: "4 cores": must be a quantity',
        id="malformed-quantity",
    ),
    pytest.param(
        NODECLASSES,
        nodeclass(capacity={"cpu": "4", "memory": "1e1.5"}),
        'spec.capacity[memory]: Invalid value: "1e1.5": must be a quantity',
        id="fractional-exponent",
    ),
    pytest.param(
        NODECLASSES,
        nodeclass(capacity={"cpu": "4", "memory": "16Gi", "ephemeral-storage": "1e999999999"}),
        'spec.capacity[ephemeral-storage]: Invalid value: "1e999999999": must be a quantity',
        id="huge-exponent",
    ),
    pytest.param(
        NODECLASSES,
        nodeclass(capacity={"cpu": "1e16", "memory": "16Gi"}),
        'spec.capacity[cpu]: Invalid value: "1e16": must be at most 8Pi',
        id="quantity-above-8Pi",
    ),
    pytest.param(
        NODECLASSES,
        nodeclass(capacity={"cpu": "4", "memory": "16Gi", "pods": 2**53 + 1}),
        "should be less than or equal to 9007199254740992",
        id="integer-quantity-above-8Pi",
    ),
    pytest.param(
        NODECLASSES,
        nodeclass(capacity={"memory": "16Gi"}),
        "spec.capacity.cpu: Required value",
        id="capacity-without-cpu",
    ),
    pytest.param(
        NODECLASSES,
        nodeclass(taints=[{"key": "a", "effect": "Sometimes"}]),
        'spec.taints[0].effect: Unsupported value: "Sometimes"',
        id="bad-taint-effect",
    ),
    pytest.param(
        NODECLASSES,
        nodeclass(provider="openstack", size="m1.small", image="ubuntu"),
        "credentialsSecretRef is required for every provider except simulator",
        id="cloud-without-credentials",
    ),
    pytest.param(
        NODECLASSES,
        nodeclass(extraCreateArgs=[{"name": "security_groups", "value": ["a"]}]),
        "spec.extraCreateArgs[0].name in body should match",
        id="extra-arg-without-ex-prefix",
    ),
]


@pytest.mark.parametrize(("resource", "body", "message"), INVALID_OBJECTS)
def test_invalid_objects_are_rejected_by_the_apiserver(
    kube: KubeClient, resource: Any, body: dict[str, Any], message: str
) -> None:
    with pytest.raises(ApiError) as caught:
        kube.create(resource, body)
    assert caught.value.invalid, caught.value
    assert message in caught.value.message
    assert not kube.list(resource)["items"]


@pytest.mark.parametrize("provider", sorted(doc_examples.HEADINGS))
def test_the_nodeclass_examples_of_the_docs_pass_the_schema(kube: KubeClient, provider: str) -> None:
    """Each cloud's example in docs/nodeclasses.md, read from the doc (tests/providers/libcloud/test_doc_examples.py
    makes each one's machine against libcloud's fakes)."""
    manifest = doc_examples.example(provider).manifest
    created = kube.create(NODECLASSES, manifest, fieldValidation="Strict")
    assert created["spec"].get("extraCreateArgs") == manifest["spec"].get("extraCreateArgs")


@pytest.mark.parametrize(
    ("provider", "size", "image"), [("ec2", "m5.large", "ami-1"), ("gce", "e2-medium", "debian-12")]
)
def test_ec2_and_gce_may_go_without_a_credentials_secret(
    kube: KubeClient, provider: str, size: str, image: str
) -> None:
    """Their drivers can use kube-node's own identity (IRSA or EKS Pod Identity; the GCE metadata server)."""
    created = kube.create(NODECLASSES, nodeclass(provider=provider, size=size, image=image))
    assert "credentialsSecretRef" not in created["spec"]


def test_a_template_may_set_other_labels_and_annotations(kube: KubeClient) -> None:
    labels = {
        "team": "a",
        "example.com/tier": "web",
        "node.kubernetes.io/exclude-from-external-load-balancers": "true",
        "kube-node.io.example.com/x": "y",  # another domain that merely starts like kube-node's
    }
    annotations = {"example.com/owner": "team-a", "cluster-autoscaler.kubernetes.io/scale-down-disabled": "true"}
    kube.create(NODESETS, nodeset(template={"metadata": {"labels": labels, "annotations": annotations}}))
    assert kube.get(NODESETS, "bad")["spec"]["template"]["metadata"]["labels"] == labels


def test_what_a_node_accepts_passes_the_schema(kube: KubeClient) -> None:
    """The edges of the label, taint, Secret and capacity checks: all of this a Node (or a Secret) takes."""
    name = "c" * 30 + "." + "d" * 32  # a NodeClass name of 63, the most a label value holds
    labels = {
        "Tier_1.x": "",  # upper case and "_" in the name part, an empty value
        "example.com/" + "n" * 63: "v" * 63,
        "a" * 253 + "/b": "A-1_b.C",
    }
    taints = [
        {"key": "dedicated", "value": "ml", "effect": "NoSchedule"},
        {"key": "dedicated", "effect": "NoExecute"},  # the same key with another effect
        {"key": "example.com/gpu", "value": "", "effect": "PreferNoSchedule"},
    ]
    capacity = {
        "cpu": "1n",  # the least above 0
        "memory": "1",
        "pods": "1.0",  # whole, written with a fraction
        "ephemeral-storage": "0",
        "hugepages-2Mi": "0",
        "hugepages-1Gi": "2Gi",
        "nvidia.com/gpu": 0,  # a GPU node whose device plugin is not up reports 0
        "example.com/widgets": "1k",
        "kubernetes.io/batteries": "1.5",  # Kubernetes' own prefix: not an extended resource, so not counted
    }
    body = nodeclass(labels=labels, taints=taints, capacity=capacity) | {"metadata": {"name": name}}
    body["spec"] |= {"credentialsSecretRef": {"name": "aws.creds-1", "namespace": "kube-node-system"}}
    kube.create(NODECLASSES, body)
    assert kube.get(NODECLASSES, name)["spec"]["capacity"] == capacity
    kube.create(
        NODESETS,
        nodeset(nodeClassName=name, template={"metadata": {"labels": labels}, "spec": {"taints": taints}}),
    )


def test_a_nodeset_name_of_57_characters_makes_node_names_that_fit_in_63(kube: KubeClient) -> None:
    name = "a" * 28 + "." + "b" * 28
    kube.create(NODESETS, nodeset() | {"metadata": {"name": name}})
    assert len(f"{name}-abcde") == 63


def test_durations_kubernetes_and_kube_node_parse_alike_are_accepted(kube: KubeClient) -> None:
    options = {
        "scaleDownUnneededTime": "1h30m",
        "scaleDownUnreadyTime": "8760h",
        "maxNodeProvisionTime": "999999.999999999ms",
    }
    kube.create(NODESETS, nodeset(autoscaling={"options": options}))
    assert kube.get(NODESETS, "bad")["spec"]["autoscaling"]["options"] == options
    assert parse_go_duration("999999.999999999ms") == 999_999_999_999


#: Capacity values and whether the NodeClass schema takes them (as ephemeral-storage, which may be a fraction:
#: pods and extended resources are whole numbers). Every one it takes must be a quantity the API server itself
#: parses, to the value kube-node's parser reads.
QUANTITIES: dict[str | int, bool] = {
    "4": True,
    "0": True,
    "500m": True,
    "1.5": True,
    "1.": True,
    ".5": True,
    "16Gi": True,
    "100M": True,
    "1e3": True,
    "1E3": True,
    "1e+2": True,
    "1e-3": True,
    "1e-99": True,
    "250u": True,
    "3n": True,
    "8Pi": True,
    "9007199254740992": True,
    "1.0000000000000000000000000001": True,  # more digits than Python's default decimal precision
    "7.99999999999999999999Pi": True,
    110: True,
    2**53: True,
    "1e1.5": False,
    "1e999999999": False,
    "1e-999999999": False,
    "1e100": False,
    "1e16": False,
    "9Pi": False,
    "1Ei": False,
    "9007199254740993": False,
    ".": False,
    "-1": False,
    "+1": False,
    "1K": False,
    "1k1": False,
    "e3": False,
    "1e": False,
    "0x10": False,
    " 1": False,
    "": False,
    "1" * 65: False,
    2**53 + 1: False,
}


def test_capacity_takes_only_quantities_the_apiserver_and_kube_node_read_alike(kube: KubeClient) -> None:
    wrong = []
    for value, expected in QUANTITIES.items():
        body = nodeclass(capacity={"cpu": "4", "memory": "16Gi", "ephemeral-storage": value})
        try:
            kube.create(NODECLASSES, body, dryRun="All")
            accepted = True
        except ApiError as error:
            assert error.invalid, error
            accepted = False
        if accepted != expected:
            wrong.append((value, f"schema accepted: {accepted}"))
        if not (accepted and expected):
            continue  # never hand the API server the absurd ones: parsing 1e-999999999 outlasts a request
        # The API server's own quantity parsing: a ResourceQuota's hard limit, returned in canonical form.
        quota = {"metadata": {"name": "q"}, "spec": {"hard": {"requests.memory": value}}}
        try:
            created = kube.create(RESOURCE_QUOTAS, quota, "default", dryRun="All")
        except ApiError as error:
            wrong.append((value, f"the schema accepts what the API server cannot parse: {error.message}"))
            continue
        canonical = created["spec"]["hard"]["requests.memory"]
        for resource in ("cpu", "memory"):
            try:
                ours = resource_units(resource, value)
            except (QuantityError, ArithmeticError) as error:
                wrong.append((value, f"kube-node cannot parse it: {error!r}"))
                break
            if ours != resource_units(resource, canonical):
                wrong.append((value, f"{resource}: kube-node reads {ours}, the API server {canonical}"))
    assert not wrong


def test_unknown_fields_are_rejected_with_strict_field_validation(kube: KubeClient, kubectl: Kubectl) -> None:
    body = nodeset(replicaz=3)
    with pytest.raises(ApiError) as caught:
        kube.create(NODESETS, body, fieldValidation="Strict")
    assert caught.value.status == 400
    assert 'unknown field "spec.replicaz"' in caught.value.message
    # kubectl validates strictly by default, so a user's typo is an error, not silently dropped.
    result = kubectl.run("create", "-f", "-", input=yaml.safe_dump(body), check=False)
    assert result.returncode != 0
    assert 'unknown field "spec.replicaz"' in result.stderr


def test_nodeclassname_cannot_change(kube: KubeClient) -> None:
    kube.create(NODESETS, nodeset())
    with pytest.raises(ApiError) as caught:
        kube.patch(NODESETS, "bad", {"spec": {"nodeClassName": "other"}})
    assert caught.value.invalid
    assert "nodeClassName cannot be changed" in caught.value.message


def test_the_server_fills_in_the_documented_defaults(kube: KubeClient) -> None:
    created = kube.create(NODESETS, nodeset())
    spec = created["spec"]
    assert spec["replicas"] == 1
    assert spec["minReplicas"] == 0
    assert spec["deletePolicy"] == "Random"
    assert spec["drain"] == {"timeoutSeconds": 600}
    assert spec["replacement"] == {"registrationTimeoutSeconds": 900, "maxInFlight": 1}
    assert spec["autoscaling"] == {"mode": "Manual", "priority": 0}


def test_typed_models_round_trip_through_the_apiserver(kube: KubeClient) -> None:
    nodeclass_model = NodeClass(
        ObjectMeta(name="gpu", labels={"team": "ml"}, annotations={"note": "x"}),
        NodeClassSpec(
            provider="ec2",
            capacity={"cpu": "8", "memory": "32Gi", "nvidia.com/gpu": 1},
            credentials_secret_ref=SecretReference("aws", "kube-node-system"),
            driver_options={"region": "us-east-1", "timeout": 30},
            size="g4dn.2xlarge",
            image="ami-1",
            location="us-east-1a",
            region="us-east-1",
            extra_create_args=[
                ExtraArgument("ex_security_groups", ["a", "b"]),
                ExtraArgument("ex_metadata", {"k": "v"}),
            ],
            user_data="#cloud-config\nhostname: ${NODE_NAME}\n",
            labels={"gpu": "t4"},
            taints=[Taint("nvidia.com/gpu", "NoSchedule", "present")],
            gpu_type="nvidia-tesla-t4",
            price_per_hour=0.75,
        ),
    )
    nodeset_model = NodeSet(
        ObjectMeta(name="gpus"),
        NodeSetSpec(
            node_class_name="gpu",
            replicas=2,
            min_replicas=1,
            max_replicas=4,
            delete_policy="Oldest",
            template=NodeTemplate(
                NodeTemplateMetadata(labels={"tier": "ml"}, annotations={"a": "b"}),
                NodeTemplateSpec(taints=[Taint("dedicated", "NoExecute", "ml")]),
            ),
            autoscaling=AutoscalingSettings(
                mode="ClusterAutoscaler",
                priority=5,
                options=ClusterAutoscalerOptions(
                    scale_down_utilization_threshold=0.4,
                    scale_down_unneeded_time="2m",
                    ignore_daemon_sets_utilization=True,
                ),
            ),
        ),
    )
    for resource, model in ((NODECLASSES, nodeclass_model), (NODESETS, nodeset_model)):
        kube.create(resource, model.to_dict(), fieldValidation="Strict")
        read_back = type(model).from_dict(kube.get(resource, model.metadata.name))
        assert read_back.metadata.uid
        assert read_back.metadata.generation == 1
        assert read_back.without_server_fields() == model


def test_kubectl_scale_changes_replicas_and_scale_reports_the_selector(kube: KubeClient, kubectl: Kubectl) -> None:
    kube.create(NODESETS, nodeset(replicas=1, maxReplicas=10) | {"metadata": {"name": "web"}})
    kubectl.run("scale", "nodeset/web", "--replicas=5")
    assert kube.get(NODESETS, "web")["spec"]["replicas"] == 5
    scale = kube.get(NODESETS, "web", subresource="scale")
    assert scale["spec"]["replicas"] == 5
    assert "selector" not in scale["status"]
    # Once the controller has written status, the scale subresource reports its selector.
    kube.patch(
        NODESETS, "web", {"status": {"replicas": 2, "selector": "kube-node.io/nodeset=web"}}, subresource="status"
    )
    scale = kube.get(NODESETS, "web", subresource="scale")
    assert scale["status"] == {"replicas": 2, "selector": "kube-node.io/nodeset=web"}
    # The scale subresource enforces the same schema: no negative replicas, nothing above maxReplicas.
    for bad, message in ((-1, "greater than or equal to 0"), (11, "replicas must not be greater than maxReplicas")):
        with pytest.raises(ApiError) as caught:
            kube.patch(NODESETS, "web", {"spec": {"replicas": bad}}, subresource="scale")
        assert message in caught.value.message
    assert kube.get(NODESETS, "web")["spec"]["replicas"] == 5


def test_kubectl_get_nodesets_shows_the_printer_columns(kube: KubeClient, kubectl: Kubectl) -> None:
    kube.create(NODESETS, nodeset(replicas=3) | {"metadata": {"name": "web"}})
    kube.patch(NODESETS, "web", {"status": {"replicas": 2, "readyReplicas": 1}}, subresource="status")
    header, row = kubectl.run("get", "nodesets").stdout.splitlines()
    assert header.split() == ["NAME", "DESIRED", "CURRENT", "READY", "CLASS", "AGE"]
    assert row.split()[:5] == ["web", "3", "2", "1", "small"]
    wide_header = kubectl.run("get", "nset", "-o", "wide").stdout.splitlines()[0]
    assert wide_header.split() == ["NAME", "DESIRED", "CURRENT", "READY", "CLASS", "AUTOSCALING", "MIN", "MAX", "AGE"]
    kube.create(NODECLASSES, nodeclass() | {"metadata": {"name": "small"}})
    header, row = kubectl.run("get", "nc").stdout.splitlines()
    assert header.split() == ["NAME", "PROVIDER", "READY", "NODES", "SIZE", "LOCATION", "CPU", "MEMORY", "AGE"]
    assert row.split()[:2] == ["small", "simulator"]
    kube.patch(
        NODECLASSES,
        "small",
        {
            "status": {
                "nodes": 7,
                "conditions": [
                    {
                        "type": "Ready",
                        "status": "True",
                        "reason": "Resolved",
                        "message": "",
                        "lastTransitionTime": "2026-01-01T00:00:00Z",
                    }
                ],
            }
        },
        subresource="status",
    )
    assert kubectl.run("get", "nc").stdout.splitlines()[1].split()[:4] == ["small", "simulator", "True", "7"]


def test_kubectl_explain_documents_the_fields(kubectl: Kubectl) -> None:
    replicas = kubectl.run("explain", "nodeset.spec.replicas").stdout
    assert "The number of Nodes wanted" in replicas
    assert "kubectl scale" in replicas
    assert "How machines of this class are made" in kubectl.run("explain", "nodeclass.spec").stdout


def _schema_nodes(schema: dict[str, Any], path: str = "") -> list[tuple[str, dict[str, Any]]]:
    nodes = [(path, schema)]
    for name, child in schema.get("properties", {}).items():
        nodes += _schema_nodes(child, f"{path}.{name}")
    if "items" in schema:
        nodes += _schema_nodes(schema["items"], f"{path}[]")
    return nodes


def test_every_field_has_a_description() -> None:
    for crd in crd_manifests():
        schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
        undocumented = [
            path
            for path, node in _schema_nodes(schema)
            if path not in ("", ".metadata") and not node.get("description")
        ]
        assert not undocumented, f"{crd['metadata']['name']}: fields without description: {undocumented}"


def test_the_chart_ships_the_same_crds_as_the_package() -> None:
    chart_crds = sorted((REPO / "charts" / "kube-node" / "crds").glob("*.yaml"))
    assert [p.name for p in chart_crds] == ["nodeclasses.yaml", "nodesets.yaml"]
    assert [yaml.safe_load(Path(p).read_text()) for p in chart_crds] == crd_manifests()
