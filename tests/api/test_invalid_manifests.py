"""A corpus of invalid NodeClass and NodeSet manifests: each is refused by the API server's schema, through
kubectl (which validates strictly, so unknown fields are errors too), with a message naming the field.

Only what the current schema refuses; tests/api/test_crds_on_apiserver.py has the first cases (negative
replicas, min > max, replicas > max, an empty class name or provider, a bad delete policy, mode, duration word,
quantity, taint effect, extraCreateArgs name, a reserved template label, a cloud class without credentials, a
misspelled spec.replicas), which are not repeated here.
"""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from nodeset_controller.kube import NODECLASSES, NODESETS, KubeClient
from tests.conftest import Kubectl

pytestmark = pytest.mark.controlplane


def nodeclass(**spec: Any) -> dict[str, Any]:
    body = {"provider": "simulator", "capacity": {"cpu": "4", "memory": "16Gi"}, **spec}
    return {"apiVersion": "kube-node.io/v1alpha1", "kind": "NodeClass", "metadata": {"name": "bad"}, "spec": body}


def nodeset(**spec: Any) -> dict[str, Any]:
    body = {"nodeClassName": "small", **spec}
    return {"apiVersion": "kube-node.io/v1alpha1", "kind": "NodeSet", "metadata": {"name": "bad"}, "spec": body}


def condition(**fields: Any) -> dict[str, Any]:
    return {
        "healthCheck": {"unhealthyConditions": [{"type": "Ready", "status": "False", "timeoutSeconds": 5} | fields]}
    }


def options(**fields: Any) -> dict[str, Any]:
    return {"autoscaling": {"options": fields}}


def labels(**labels: Any) -> dict[str, Any]:
    return {"template": {"metadata": {"labels": labels}}}


def template_taints(*taints: dict[str, Any]) -> dict[str, Any]:
    return {"template": {"spec": {"taints": list(taints)}}}


def secret(name: str = "creds", namespace: str = "kube-node-system") -> dict[str, Any]:
    return {"credentialsSecretRef": {"name": name, "namespace": namespace}}


def capacity(**more: Any) -> dict[str, Any]:
    return {"capacity": {"cpu": "4", "memory": "16Gi", **more}}


INT32_OVER = 2**31
WITHOUT_MEMORY = {"cpu": "4"}
#: (id, manifest, the field the message must name, what it must say about it)
CORPUS: list[tuple[str, dict[str, Any], str, str]] = [
    # wrong types
    ("replicas-string", nodeset(replicas="3"), "spec.replicas", "must be of type integer"),
    ("replicas-float", nodeset(replicas=1.5), "spec.replicas", "must be of type int32"),
    ("class-name-number", nodeset(nodeClassName=123), "spec.nodeClassName", "must be of type string"),
    ("drain-timeout-with-unit", nodeset(drain={"timeoutSeconds": "600s"}), "spec.drain.timeoutSeconds", "type integer"),
    ("bool-as-string", nodeset(**options(zeroOrMaxNodeScaling="yes")), "zeroOrMaxNodeScaling", "type boolean"),
    ("label-value-number", nodeset(template={"metadata": {"labels": {"a": 5}}}), "labels.a", "type string"),
    ("annotation-number", nodeset(template={"metadata": {"annotations": {"a": 1}}}), "annotations.a", "type string"),
    ("capacity-bool", nodeclass(capacity={"cpu": True, "memory": "16Gi"}), "spec.capacity.cpu", "integer,string"),
    ("capacity-list", nodeclass(capacity=["4", "16Gi"]), "spec.capacity", "must be of type object"),
    ("price-word", nodeclass(pricePerHour="cheap"), "spec.pricePerHour", "must be of type number"),
    # negative and out-of-range values
    ("min-negative", nodeset(minReplicas=-1), "spec.minReplicas", "greater than or equal to 0"),
    ("max-negative", nodeset(maxReplicas=-1), "spec.maxReplicas", "greater than or equal to 0"),
    (
        "drain-negative",
        nodeset(drain={"timeoutSeconds": -1}),
        "spec.drain.timeoutSeconds",
        "greater than or equal to 0",
    ),
    ("grace-negative", nodeset(drain={"podGracePeriodSeconds": -5}), "podGracePeriodSeconds", "greater than or equal"),
    (
        "registration-zero",
        nodeset(replacement={"registrationTimeoutSeconds": 0}),
        "spec.replacement.registrationTimeoutSeconds",
        "greater than or equal to 1",
    ),
    (
        "in-flight-zero",
        nodeset(replacement={"maxInFlight": 0}),
        "spec.replacement.maxInFlight",
        "greater than or equal",
    ),
    ("unhealthy-150%", nodeset(healthCheck={"maxUnhealthy": "150%"}), "spec.healthCheck.maxUnhealthy", "0% to 100%"),
    ("unhealthy-negative", nodeset(healthCheck={"maxUnhealthy": -1}), "spec.healthCheck.maxUnhealthy", "a count >= 0"),
    ("unhealthy-word", nodeset(healthCheck={"maxUnhealthy": "half"}), "spec.healthCheck.maxUnhealthy", "a percentage"),
    ("condition-timeout-zero", nodeset(**condition(timeoutSeconds=0)), "[0].timeoutSeconds", "greater than or equal"),
    ("threshold-above-one", nodeset(**options(scaleDownUtilizationThreshold=1.5)), "UtilizationThreshold", "less than"),
    ("gpu-threshold-negative", nodeset(**options(scaleDownGpuUtilizationThreshold=-0.1)), "Gpu", "greater than or"),
    ("cpu-negative", nodeclass(capacity={"cpu": -1, "memory": "16Gi"}), "spec.capacity", "cpu must be greater than 0"),
    ("price-negative", nodeclass(pricePerHour=-1), "spec.pricePerHour", "greater than or equal to 0"),
    # overflowing integers (int32)
    ("replicas-overflow", nodeset(replicas=INT32_OVER), "spec.replicas", "less than or equal to 2147483647"),
    ("max-overflow", nodeset(maxReplicas=INT32_OVER), "spec.maxReplicas", "format int32"),
    ("priority-overflow", nodeset(autoscaling={"priority": INT32_OVER}), "spec.autoscaling.priority", "format int32"),
    # unknown fields (kubectl's strict validation)
    (
        "unknown-template-field",
        nodeset(template={"metadata": {"labelz": {}}}),
        "spec.template.metadata.labelz",
        "unknown",
    ),
    ("unknown-drain-field", nodeset(drain={"timeout": 5}), "spec.drain.timeout", "unknown field"),
    ("unknown-option", nodeset(**options(scaleDownDelay="1m")), "spec.autoscaling.options.scaleDownDelay", "unknown"),
    ("unknown-class-field", nodeclass(instanceType="m5.large"), "spec.instanceType", "unknown field"),
    ("driver-option-object", nodeclass(driverOptions={"a": {"b": 1}}), "spec.driverOptions.a.b", "unknown field"),
    # missing, empty, too long, too many
    ("no-class-name", {**nodeset(), "spec": {"replicas": 1}}, "spec.nodeClassName", "Required value"),
    ("no-provider", {**nodeclass(), "spec": {"capacity": {"cpu": "4", "memory": "1Gi"}}}, "spec.provider", "Required"),
    ("no-memory", nodeclass(capacity=WITHOUT_MEMORY), "spec.capacity.memory", "Required value"),
    ("condition-without-type", nodeset(**condition(type=None)), "unhealthyConditions[0].type", "Required value"),
    (
        "secret-without-namespace",
        nodeclass(credentialsSecretRef={"name": "x"}),
        "credentialsSecretRef.namespace",
        "Req",
    ),
    ("secret-empty-name", nodeclass(credentialsSecretRef={"name": "", "namespace": "n"}), "Ref.name", "at least 1"),
    ("extra-arg-without-value", nodeclass(extraCreateArgs=[{"name": "ex_a"}]), "extraCreateArgs[0].value", "Required"),
    (
        "extra-arg-not-ex-nor-allowed",  # only ex_* and a driver's documented others (networks) pass
        nodeclass(extraCreateArgs=[{"name": "network", "value": ["a"]}]),
        "spec.extraCreateArgs[0].name",
        "should match",
    ),
    (
        "template-taint-empty-key",
        nodeset(template={"spec": {"taints": [{"key": "", "effect": "NoSchedule"}]}}),
        "spec.template.spec.taints[0].key",
        "at least 1 chars",
    ),
    (
        "template-taint-no-effect",
        nodeset(template={"spec": {"taints": [{"key": "a"}]}}),
        "taints[0].effect",
        "Required",
    ),
    (
        "class-taint-empty-key",
        nodeclass(taints=[{"key": "", "effect": "NoSchedule"}]),
        "spec.taints[0].key",
        "at least",
    ),
    ("class-name-too-long", nodeset(nodeClassName="a" * 64), "spec.nodeClassName", "may not be more than 63"),
    (
        "nodeclass-name-too-long",
        nodeclass() | {"metadata": {"name": "a" * 64}},
        "metadata.name",
        "NodeClass names are at most 63 characters",
    ),
    ("provider-too-long", nodeclass(provider="a" * 64), "spec.provider", "may not be more than 63"),
    ("size-too-long", nodeclass(size="s" * 254), "spec.size", "may not be more than 253"),
    ("user-data-too-long", nodeclass(userData="x" * 65537), "spec.userData", "may not be more than 65536"),
    ("gpu-type-too-long", nodeclass(gpuType="g" * 64), "spec.gpuType", "may not be more than 63"),
    ("template-label-too-long", nodeset(template={"metadata": {"labels": {"a": "v" * 64}}}), "labels.a", "Too long"),
    ("class-label-too-long", nodeclass(labels={"a": "v" * 64}), "spec.labels.a", "Too long"),
    (
        "template-65-labels",
        nodeset(template={"metadata": {"labels": {f"k{i}": "v" for i in range(65)}}}),
        "spec.template.metadata.labels",
        "must have at most 64 items",
    ),
    (
        "template-65-taints",
        nodeset(template={"spec": {"taints": [{"key": f"k{i}", "effect": "NoSchedule"} for i in range(65)]}}),
        "spec.template.spec.taints",
        "must have at most 64 items",
    ),
    ("class-65-labels", nodeclass(labels={f"k{i}": "v" for i in range(65)}), "spec.labels", "at most 64 items"),
    (
        "65-extra-args",
        nodeclass(extraCreateArgs=[{"name": f"ex_{i}", "value": 1} for i in range(65)]),
        "spec.extraCreateArgs",
        "must have at most 64 items",
    ),
    (
        "duplicate-extra-arg",
        nodeclass(extraCreateArgs=[{"name": "ex_a", "value": 1}, {"name": "ex_a", "value": 2}]),
        "spec.extraCreateArgs[1]",
        "Duplicate value",
    ),
    # patterns and enums
    ("class-name-pattern", nodeset(nodeClassName="Bad_Name"), "spec.nodeClassName", "should match"),
    (
        "mode-lowercase",
        nodeset(autoscaling={"mode": "clusterautoscaler"}),
        "spec.autoscaling.mode",
        "Unsupported value",
    ),
    ("condition-status-maybe", nodeset(**condition(status="Maybe")), "unhealthyConditions[0].status", "Unsupported"),
    ("provider-uppercase", nodeclass(provider="AWS"), "spec.provider", "should match"),
    (
        "cloud-without-size-and-image",
        nodeclass(provider="ec2", credentialsSecretRef={"name": "a", "namespace": "b"}),
        "spec",
        "size and image are required",
    ),
    # only ec2 and gce have credentials of kube-node's own identity; every other cloud needs a Secret
    (
        "digitalocean-without-credentials",
        nodeclass(provider="digitalocean", size="s-2vcpu-4gb", image="ubuntu-24-04-x64"),
        "spec",
        "credentialsSecretRef is required for every provider except simulator and local, and ec2 and gce",
    ),
    (
        "azure-without-credentials",
        nodeclass(provider="azure_arm", size="Standard_D2s_v5", image="ubuntu"),
        "spec",
        "credentialsSecretRef is required",
    ),
    (
        "ec2-alike-without-credentials",
        nodeclass(provider="ec2_compatible", size="m5.large", image="ami-1"),
        "spec",
        "credentialsSecretRef is required",
    ),
    # label keys and values, annotation keys (what a Node would refuse, so a NodeSet could never make one)
    ("label-key-space", nodeset(**labels(**{"bad key": "x"})), "spec.template.metadata.labels", 'key "bad key"'),
    (
        "label-key-uppercase-prefix",
        nodeset(**labels(**{"Example.com/tier": "x"})),
        "spec.template.metadata.labels",
        'key "Example.com/tier" is not a qualified name',
    ),
    (
        "label-key-name-too-long",
        nodeset(**labels(**{"example.com/" + "n" * 64: "x"})),
        "spec.template.metadata.labels",
        "is not a qualified name",
    ),
    (
        "label-key-prefix-too-long",
        nodeset(**labels(**{"p" * 254 + "/a": "x"})),
        "spec.template.metadata.labels",
        "is not a qualified name",
    ),
    ("label-key-empty-prefix", nodeset(**labels(**{"/a": "x"})), "spec.template.metadata.labels", 'key "/a"'),
    ("label-key-two-slashes", nodeset(**labels(**{"a/b/c": "x"})), "spec.template.metadata.labels", 'key "a/b/c"'),
    ("label-key-trailing-dot", nodeset(**labels(**{"tier.": "x"})), "spec.template.metadata.labels", 'key "tier."'),
    ("label-value-space", nodeset(**labels(tier="web app")), "spec.template.metadata.labels[tier]", "label value"),
    ("label-value-leading-dash", nodeset(**labels(tier="-web")), "spec.template.metadata.labels[tier]", "label value"),
    ("class-label-key-bad", nodeclass(labels={"a b": "x"}), "spec.labels", 'label key "a b" is not a qualified'),
    ("class-label-value-bad", nodeclass(labels={"gpu": "t4/x"}), "spec.labels[gpu]", "must be a label value"),
    (
        "annotation-key-bad",
        nodeset(template={"metadata": {"annotations": {"owner name": "x"}}}),
        "spec.template.metadata.annotations",
        'annotation key "owner name" is not a qualified name',
    ),
    (
        "annotation-key-uppercase-prefix",
        nodeset(template={"metadata": {"annotations": {"Example.com/owner": "x"}}}),
        "spec.template.metadata.annotations",
        'annotation key "Example.com/owner"',
    ),
    # taints: as a Node's, and never twice with the same key and effect
    (
        "template-taint-key-bad",
        nodeset(**template_taints({"key": "dedicated team", "effect": "NoSchedule"})),
        "spec.template.spec.taints[0].key",
        'taint key "dedicated team" is not a qualified name',
    ),
    (
        "class-taint-key-bad",
        nodeclass(taints=[{"key": "Example.com/gpu", "effect": "NoSchedule"}]),
        "spec.taints[0].key",
        "is not a qualified name",
    ),
    (
        "template-taint-value-bad",
        nodeset(**template_taints({"key": "dedicated", "value": "team a", "effect": "NoSchedule"})),
        "spec.template.spec.taints[0].value",
        "must be a label value",
    ),
    (
        "class-taint-value-bad",
        nodeclass(taints=[{"key": "gpu", "value": "yes/no", "effect": "NoSchedule"}]),
        "spec.taints[0].value",
        "must be a label value",
    ),
    (
        "template-taint-effect",
        nodeset(**template_taints({"key": "a", "effect": "noschedule"})),
        "spec.template.spec.taints[0].effect",
        "Unsupported value",
    ),
    (
        "template-taint-twice",
        nodeset(
            **template_taints(
                {"key": "a", "effect": "NoSchedule"},
                {"key": "a", "effect": "NoExecute"},
                {"key": "a", "value": "x", "effect": "NoSchedule"},
            )
        ),
        "spec.template.spec.taints",
        "a:NoSchedule appears more than once",
    ),
    (
        "class-taint-twice",
        nodeclass(taints=[{"key": "gpu", "effect": "NoExecute"}, {"key": "gpu", "value": "", "effect": "NoExecute"}]),
        "spec.taints",
        "gpu:NoExecute appears more than once",
    ),
    (
        "template-startup-taint",
        nodeset(
            **template_taints(
                {"key": "startup-taint.cluster-autoscaler.kubernetes.io/kube-node", "effect": "NoExecute"}
            )
        ),
        "spec.template.spec.taints[0].key",
        "kube-node's startup taint",
    ),
    (
        "class-startup-taint",
        nodeclass(taints=[{"key": "startup-taint.cluster-autoscaler.kubernetes.io/kube-node", "effect": "NoSchedule"}]),
        "spec.taints[0].key",
        "kube-node's startup taint",
    ),
    # the credentials' Secret: a Secret's name and namespace
    ("secret-name-uppercase", nodeclass(**secret(name="AWS")), "spec.credentialsSecretRef.name", "DNS subdomain"),
    ("secret-name-too-long", nodeclass(**secret(name="s" * 254)), "spec.credentialsSecretRef.name", "more than 253"),
    (
        "secret-name-underscore",
        nodeclass(**secret(name="aws_creds")),
        "spec.credentialsSecretRef.name",
        '"aws_creds"',
    ),
    (
        "secret-namespace-dot",
        nodeclass(**secret(namespace="kube.system")),
        "spec.credentialsSecretRef.namespace",
        "DNS label",
    ),
    (
        "secret-namespace-too-long",
        nodeclass(**secret(namespace="n" * 64)),
        "spec.credentialsSecretRef.namespace",
        "more than 63",
    ),
    # capacity: resource names a pod can request, counts where Kubernetes counts, no empty node
    ("capacity-unknown-name", nodeclass(**capacity(gpu=1)), "spec.capacity", 'resource name "gpu"'),
    ("capacity-name-cpus", nodeclass(**capacity(cpus=4)), "spec.capacity", 'resource name "cpus"'),
    (
        "capacity-name-bad-prefix",
        nodeclass(**capacity(**{"NVIDIA.com/gpu": 1})),
        "spec.capacity",
        'resource name "NVIDIA.com/gpu"',
    ),
    ("capacity-name-space", nodeclass(**capacity(**{"example.com/a b": 1})), "spec.capacity", '"example.com/a b"'),
    (
        "capacity-hugepages-without-size",
        nodeclass(**capacity(**{"hugepages-": "1Gi"})),
        "spec.capacity",
        'resource name "hugepages-"',
    ),
    (
        "capacity-requests-prefix",
        nodeclass(**capacity(**{"requests.example.com/gpu": 1})),
        "spec.capacity",
        'resource name "requests.example.com/gpu"',
    ),
    ("cpu-zero", nodeclass(capacity={"cpu": "0", "memory": "16Gi"}), "spec.capacity", "cpu must be greater than 0"),
    ("cpu-int-zero", nodeclass(capacity={"cpu": 0, "memory": "16Gi"}), "spec.capacity", "cpu must be greater than"),
    ("memory-zero", nodeclass(capacity={"cpu": "4", "memory": "0Gi"}), "spec.capacity", "memory must be greater"),
    ("pods-zero", nodeclass(**capacity(pods=0)), "spec.capacity", "pods must be greater than 0"),
    ("pods-fraction", nodeclass(**capacity(pods="1.5")), "spec.capacity", 'pods must be a whole number, not "1.5"'),
    (
        "gpu-fraction",
        nodeclass(**capacity(**{"nvidia.com/gpu": "500m"})),
        "spec.capacity",
        'nvidia.com/gpu must be a whole number, not "500m"',
    ),
    # bad quantities and durations
    (
        "quantity-negative",
        nodeclass(capacity={"cpu": "-1", "memory": "16Gi"}),
        "spec.capacity[cpu]",
        "must be a quantity",
    ),
    ("quantity-gb", nodeclass(capacity={"cpu": "4", "memory": "16GB"}), "spec.capacity[memory]", "must be a quantity"),
    (
        "quantity-two-dots",
        nodeclass(capacity={"cpu": "4", "memory": "1Gi", "pods": "1.5.5"}),
        "capacity[pods]",
        "must be a quantity",
    ),
    (
        "duration-without-unit",
        nodeset(**options(maxNodeProvisionTime="15")),
        "maxNodeProvisionTime",
        "must be a Go duration",
    ),
    (
        "duration-negative",
        nodeset(**options(scaleDownUnreadyTime="-5m")),
        "scaleDownUnreadyTime",
        "must be a Go duration",
    ),
    (
        "duration-in-days",
        nodeset(**options(scaleDownUnreadyTime="1d")),
        "scaleDownUnreadyTime",
        "must be a Go duration",
    ),
]


def _strip_none(body: Any) -> Any:
    if isinstance(body, dict):
        return {k: _strip_none(v) for k, v in body.items() if v is not None}
    if isinstance(body, list):
        return [_strip_none(v) for v in body]
    return body


@pytest.mark.parametrize(("manifest", "field", "why"), [pytest.param(m, f, w, id=i) for i, m, f, w in CORPUS])
def test_an_invalid_manifest_is_refused_naming_its_field(
    kube: KubeClient, kubectl: Kubectl, manifest: dict[str, Any], field: str, why: str
) -> None:
    result = kubectl.run("create", "-f", "-", input=yaml.safe_dump(_strip_none(manifest)), check=False)
    assert result.returncode != 0, f"accepted: {result.stdout}"
    assert field in result.stderr and why in result.stderr, result.stderr
    assert not kube.list(NODESETS)["items"] and not kube.list(NODECLASSES)["items"]
