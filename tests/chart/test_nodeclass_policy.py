"""Who may use a NodeClass: the chart's ValidatingAdmissionPolicies, on the real API server, let only subjects
allowed the verb ``use`` on a NodeClass set a Node's kube-node.io/nodeclass label to it (create, update,
status) or create a NodeSet of it. kube-node's own ServiceAccount may; Nodes without the label are
unaffected. Requests are made as impersonated users with kubectl ``--as``."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from kube_node.controlplane import Binaries, ControlPlane
from nodeset_controller.kube import KubeClient
from tests.conftest import Kubectl, eventually

from ._helm import CHART, Helm

pytestmark = pytest.mark.controlplane

USER = "alice"
LABEL = "kube-node.io/nodeclass"


@pytest.fixture
def helm(binaries: Binaries, control_plane: ControlPlane, tmp_path: Path) -> Helm:
    return Helm(binaries, control_plane, tmp_path / "helm")


@pytest.fixture
def release(helm: Helm, kube: KubeClient, kubectl: Kubectl) -> Iterator[tuple[str, str]]:
    """The chart installed (its pods never scheduled): (release name, namespace). ``alice`` may create and
    change Nodes and NodeSets but has no ``use`` on any NodeClass."""
    suffix = uuid.uuid4().hex[:6]
    name, namespace = f"pol{suffix}", f"kube-node-{suffix}"
    helm.run(
        "install",
        name,
        str(CHART),
        "--namespace",
        namespace,
        "--create-namespace",
        "--set",
        r"nodeSelector.kube-node\.io/test=never-scheduled",
    )
    rbac = f"""
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {{name: test-node-writer}}
rules:
  - apiGroups: [""]
    resources: [nodes, nodes/status]
    verbs: [get, list, create, update, patch]
  - apiGroups: [kube-node.io]
    resources: [nodesets]
    verbs: [get, list, create]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {{name: test-node-writer}}
roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: test-node-writer}}
subjects: [{{apiGroup: rbac.authorization.k8s.io, kind: User, name: {USER}}}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {{name: test-use-small}}
rules:
  - apiGroups: [kube-node.io]
    resources: [nodeclasses]
    resourceNames: [small]
    verbs: [use]
"""
    kubectl.run("apply", "-f", "-", input=rbac)
    try:
        yield name, namespace
    finally:
        helm.run("uninstall", name, "--namespace", namespace, check=False)
        for kind, obj in (
            ("clusterrolebinding", "test-use-small"),
            ("rolebinding", "test-use-small"),
            ("clusterrolebinding", "test-node-writer"),
            ("clusterrole", "test-use-small"),
            ("clusterrole", "test-node-writer"),
        ):
            kubectl.run("delete", kind, obj, "--ignore-not-found", "-n", "default")


def _node(name: str, nodeclass: str | None) -> str:
    labels = {LABEL: nodeclass} if nodeclass else {"team": "a"}
    return yaml.safe_dump({"apiVersion": "v1", "kind": "Node", "metadata": {"name": name, "labels": labels}})


def _as(kubectl: Kubectl, user: str, *args: str, input: str | None = None) -> tuple[bool, str]:
    result = kubectl.run(*args, f"--as={user}", input=input, check=False)
    return result.returncode == 0, result.stderr


def _denied(stderr: str, nodeclass: str) -> bool:
    # Forbidden (403), not Invalid: a kubelet registering a Node kube-node already made, with the class label in
    # its --node-labels, takes a Forbidden create as "get the existing Node" (Kubernetes 1.32+).
    return (
        "Error from server (Forbidden)" in stderr
        and f'may not use NodeClass "{nodeclass}": it needs the verb use on nodeclasses.kube-node.io "{nodeclass}"'
        in stderr
    )


def _wait_for_the_policy(kubectl: Kubectl) -> None:
    # A new policy takes a moment to be enforced; a server-side dry run changes nothing meanwhile.
    eventually(
        lambda: _denied(
            _as(kubectl, USER, "create", "--dry-run=server", "-f", "-", input=_node("probe", "small"))[1], "small"
        ),
        timeout=30,
        interval=0.5,
        what="the NodeClass policy to deny alice",
    )


def test_only_subjects_allowed_to_use_a_nodeclass_may_label_nodes_with_it(
    kubectl: Kubectl, release: tuple[str, str]
) -> None:
    _wait_for_the_policy(kubectl)

    # Without "use": no Node naming a class, on create, update or the status subresource.
    ok, stderr = _as(kubectl, USER, "create", "-f", "-", input=_node("n1", "small"))
    assert not ok and _denied(stderr, "small"), stderr
    ok, stderr = _as(kubectl, USER, "create", "-f", "-", input=_node("n2", None))
    assert ok, stderr  # Nodes without the label are unaffected
    ok, stderr = _as(kubectl, USER, "label", "node", "n2", f"{LABEL}=small")
    assert not ok and _denied(stderr, "small"), stderr
    status_patch = json.dumps({"metadata": {"labels": {LABEL: "small"}}})
    ok, stderr = _as(kubectl, USER, "patch", "node", "n2", "--subresource=status", "--type=merge", "-p", status_patch)
    assert not ok and _denied(stderr, "small"), stderr
    ok, stderr = _as(kubectl, USER, "label", "node", "n2", "team=b", "--overwrite")
    assert ok, stderr

    # A Node an administrator labelled: alice may change its other labels, not its class.
    kubectl.run("create", "-f", "-", input=_node("n3", "big"))
    ok, stderr = _as(kubectl, USER, "label", "node", "n3", "team=b")
    assert ok, stderr
    ok, stderr = _as(kubectl, USER, "label", "node", "n3", f"{LABEL}=small", "--overwrite")
    assert not ok and _denied(stderr, "small"), stderr

    # A RoleBinding cannot grant it: NodeClasses are cluster-scoped, so "use" is checked outside any namespace.
    kubectl.run(
        "create", "rolebinding", "test-use-small", "-n", "default", "--clusterrole=test-use-small", f"--user={USER}"
    )
    ok, stderr = _as(kubectl, USER, "create", "--dry-run=server", "-f", "-", input=_node("n4", "small"))
    assert not ok and _denied(stderr, "small"), stderr

    # "use" on the one NodeClass "small", granted by a ClusterRoleBinding: that class and no other.
    kubectl.run("create", "clusterrolebinding", "test-use-small", "--clusterrole=test-use-small", f"--user={USER}")
    eventually(
        lambda: _as(kubectl, USER, "auth", "can-i", "use", "nodeclasses.kube-node.io/small")[0],
        what="the ClusterRoleBinding to take effect",
    )
    ok, stderr = _as(kubectl, USER, "create", "-f", "-", input=_node("n1", "small"))
    assert ok, stderr
    ok, stderr = _as(kubectl, USER, "label", "node", "n2", f"{LABEL}=small")
    assert ok, stderr
    ok, stderr = _as(kubectl, USER, "label", "node", "n2", f"{LABEL}=big", "--overwrite")
    assert not ok and _denied(stderr, "big"), stderr
    ok, stderr = _as(kubectl, USER, "create", "-f", "-", input=_node("n5", "big"))
    assert not ok and _denied(stderr, "big"), stderr


def test_only_subjects_allowed_to_use_a_nodeclass_may_create_nodesets_of_it(
    kubectl: Kubectl, release: tuple[str, str]
) -> None:
    def nodeset(name: str, nodeclass: str) -> str:
        body = {"apiVersion": "kube-node.io/v1alpha1", "kind": "NodeSet", "metadata": {"name": name}}
        return yaml.safe_dump(body | {"spec": {"nodeClassName": nodeclass, "replicas": 0}})

    _wait_for_the_policy(kubectl)
    eventually(
        lambda: _denied(_as(kubectl, USER, "create", "-f", "-", input=nodeset("web", "small"))[1], "small"),
        timeout=30,
        interval=0.5,
        what="the NodeSet policy to deny alice",
    )
    kubectl.run("create", "clusterrolebinding", "test-use-small", "--clusterrole=test-use-small", f"--user={USER}")
    eventually(
        lambda: _as(kubectl, USER, "auth", "can-i", "use", "nodeclasses.kube-node.io/small")[0],
        what="the ClusterRoleBinding to take effect",
    )
    ok, stderr = _as(kubectl, USER, "create", "-f", "-", input=nodeset("web", "small"))
    assert ok, stderr
    ok, stderr = _as(kubectl, USER, "create", "-f", "-", input=nodeset("gpu", "big"))
    assert not ok and _denied(stderr, "big"), stderr


def test_kube_nodes_service_account_may_use_every_nodeclass(kubectl: Kubectl, release: tuple[str, str]) -> None:
    name, namespace = release
    account = f"system:serviceaccount:{namespace}:{name}-kube-node"
    _wait_for_the_policy(kubectl)
    ok, stderr = _as(kubectl, account, "auth", "can-i", "use", "nodeclasses.kube-node.io/any-class")
    assert ok, stderr
    ok, stderr = _as(kubectl, account, "create", "-f", "-", input=_node("n1", "any-class"))
    assert ok, stderr
