"""The labels and taints of a NodeSet's Nodes: the NodeClass (written by administrators) wins over the NodeSet's
template (written by whoever may create NodeSets), and kube-node's own labels win over both."""

from __future__ import annotations

from nodeset_controller.api import (
    NodeClass,
    NodeClassSpec,
    NodeSet,
    NodeSetSpec,
    NodeTemplate,
    NodeTemplateMetadata,
    NodeTemplateSpec,
    ObjectMeta,
    Taint,
    node_labels,
    node_taints,
)


def _nodeclass(labels: dict[str, str]) -> NodeClass:
    spec = NodeClassSpec(
        provider="ec2",
        capacity={"cpu": "4", "memory": "16Gi"},
        size="m6i.xlarge",
        location="eu-west-1a",
        region="eu-west-1",
        labels=labels,
    )
    return NodeClass(ObjectMeta(name="general"), spec)


def _nodeset(labels: dict[str, str]) -> NodeSet:
    template = NodeTemplate(metadata=NodeTemplateMetadata(labels=labels))
    return NodeSet(ObjectMeta(name="web"), NodeSetSpec(node_class_name="general", template=template))


def test_nodeclass_labels_win_over_the_template() -> None:
    labels = node_labels(
        _nodeset({"tier": "cheap", "team": "a"}), _nodeclass({"tier": "restricted", "pool": "x"}), "web-abcde"
    )
    assert labels["tier"] == "restricted"
    assert labels["team"] == "a"
    assert labels["pool"] == "x"


def test_the_template_cannot_override_what_the_nodeclass_says_about_the_machine() -> None:
    # The NodeSet CRD rejects kubernetes.io/hostname and kube-node.io/ keys; these are what a template could
    # still name, and the class's machine (size, zone, region) must not be misrepresented to the scheduler.
    template = {
        "node.kubernetes.io/instance-type": "p5.48xlarge",
        "topology.kubernetes.io/zone": "us-east-1a",
        "topology.kubernetes.io/region": "us-east-1",
        "kubernetes.io/arch": "arm64",
    }
    labels = node_labels(_nodeset(template), _nodeclass({}), "web-abcde")
    assert labels["node.kubernetes.io/instance-type"] == "m6i.xlarge"
    assert labels["topology.kubernetes.io/zone"] == "eu-west-1a"
    assert labels["topology.kubernetes.io/region"] == "eu-west-1"
    assert labels["kubernetes.io/arch"] == "amd64"


def test_kube_nodes_own_labels_and_the_hostname_win_over_the_nodeclass() -> None:
    nodeclass = _nodeclass({"kubernetes.io/hostname": "same-for-all", "kube-node.io/nodeset": "other"})
    labels = node_labels(_nodeset({}), nodeclass, "web-abcde")
    assert labels["kubernetes.io/hostname"] == "web-abcde"
    assert labels["kube-node.io/nodeset"] == "web"
    assert labels["kube-node.io/nodeclass"] == "general"


def test_a_template_taint_with_the_key_and_effect_of_a_class_taint_is_left_out() -> None:
    # A Node with two taints of one key and effect is refused by the API server; each CRD refuses such a
    # list, but a class's and a template's may still meet.
    nodeclass = _nodeclass({})
    nodeclass.spec.taints = [Taint("dedicated", "NoSchedule", "ml"), Taint("gpu", "NoSchedule")]
    nodeset = _nodeset({})
    assert nodeset.spec.template is not None
    nodeset.spec.template.spec = NodeTemplateSpec(
        taints=[
            Taint("dedicated", "NoSchedule", "web"),
            Taint("dedicated", "NoExecute"),
            Taint("spot", "NoSchedule", ""),
        ]
    )
    assert node_taints(nodeset, nodeclass) == (
        Taint("dedicated", "NoSchedule", "ml"),
        Taint("gpu", "NoSchedule"),
        Taint("dedicated", "NoExecute"),
        Taint("spot", "NoSchedule"),
    )
