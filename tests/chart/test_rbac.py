"""The chart's RBAC is enough and no more: kube-node runs with a token of the chart's ServiceAccount (from the
TokenRequest API), scales a NodeSet up and down with the simulator, leads through the Lease the chart allows
and labels its own pod; `kubectl auth can-i` shows what it cannot do."""

from __future__ import annotations

import base64
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from kube_node.controlplane import Binaries, ControlPlane
from nodeset_controller.kube import NAMESPACES, NODECLASSES, NODES, NODESETS, PODS, KubeClient, Resource
from tests.conftest import Kubectl, eventually, nodeset_manifest, simulator_nodeclass
from tests.operations._process import KubeNodeProcess

from ._helm import CHART, Helm


@pytest.fixture
def installed(helm: Helm, kube: KubeClient, kubectl: Kubectl, tmp_path: Path) -> Iterator[tuple[str, str, str]]:
    """The chart with the simulator, credentials readable in its own namespace only: (namespace, ServiceAccount,
    credentials namespace)."""
    suffix = uuid.uuid4().hex[:6]
    name, namespace, credentials = f"rbac{suffix}", f"kube-node-{suffix}", f"creds-{suffix}"
    kube.create(NAMESPACES, {"metadata": {"name": credentials}})
    helm.run(
        "install",
        name,
        str(CHART),
        "--namespace",
        namespace,
        "--create-namespace",
        "--set",
        "simulator.enabled=true",
        "--set",
        f"credentialsNamespaces={{{credentials}}}",
        # Its own pods must not land on a test's Nodes: when an earlier test of the session has started the
        # scheduler and controller-manager they would, and its PodDisruptionBudget would then hold the drain.
        "--set",
        r"nodeSelector.kube-node\.io/test=never-scheduled",
    )
    try:
        yield namespace, f"{name}-kube-node", credentials
    finally:
        helm.run("uninstall", name, "--namespace", namespace, check=False)


@pytest.fixture
def helm(binaries: Binaries, control_plane: ControlPlane, tmp_path: Path) -> Helm:
    return Helm(binaries, control_plane, tmp_path / "helm")


def _token_kubeconfig(control_plane: ControlPlane, kubectl: Kubectl, namespace: str, account: str, path: Path) -> Path:
    token = kubectl.run("create", "token", account, "-n", namespace, "--duration=1h").stdout.strip()
    # A real TokenRequest token: a JWT naming the ServiceAccount.
    claims = yaml.safe_load(base64.urlsafe_b64decode(token.split(".")[1] + "=="))
    assert claims["sub"] == f"system:serviceaccount:{namespace}:{account}"
    config = control_plane.kubeconfig_dict()
    config["users"] = [{"name": account, "user": {"token": token}}]
    config["contexts"][0]["context"]["user"] = account
    path.write_text(yaml.safe_dump(config))
    return path


def test_kube_node_scales_up_and_down_with_only_the_charts_service_account(
    control_plane: ControlPlane,
    kube: KubeClient,
    kubectl: Kubectl,
    installed: tuple[str, str, str],
    tmp_path: Path,
) -> None:
    namespace, account, _ = installed
    kubeconfig = _token_kubeconfig(control_plane, kubectl, namespace, account, tmp_path / "token.kubeconfig")
    # A pod standing in for kube-node's own (nothing runs it here): the leader labels it.
    kube.create(
        PODS,
        {
            "metadata": {"name": "kube-node-0"},
            "spec": {
                "nodeSelector": {"kube-node.io/test": "never-scheduled"},  # it must never land on a test's Node
                "serviceAccountName": account,
                "automountServiceAccountToken": False,
                "containers": [{"name": "kube-node", "image": "kube-node:test"}],
            },
        },
        namespace=namespace,
    )
    process = KubeNodeProcess(
        control_plane,
        tmp_path,
        "kube-node",
        f"--simulator-dir={tmp_path / 'simulator'}",
        "--grpc-address=",
        "--pod-name=kube-node-0",
        f"--pod-namespace={namespace}",
        kubeconfig=kubeconfig,
    )
    try:
        eventually(lambda: "leader election: leading" in process.get("/readyz")[1], timeout=30, what="leadership")
        labels = eventually(
            lambda: kube.get(PODS, "kube-node-0", namespace)["metadata"].get("labels"), what="the leader label"
        )
        assert labels == {"kube-node.io/leader": "true"}

        nodeclass = simulator_nodeclass()  # whose machines join with tokens kube-node mints
        nodeclass["spec"]["userData"] = "#!/bin/sh\njoin ${API_SERVER} ${BOOTSTRAP_TOKEN} ${CA_CERT_HASH}\n"
        kube.create(NODECLASSES, nodeclass)
        kube.create(NODESETS, nodeset_manifest("pool", 3))
        eventually(
            lambda: (kube.get(NODESETS, "pool").get("status") or {}).get("readyReplicas") == 3,
            timeout=60,
            what="3 ready Nodes",
        )
        kubectl.run("scale", "nodeset", "pool", "--replicas=0")
        try:
            eventually(
                lambda: not kube.list(NODES, labelSelector="kube-node.io/nodeset=pool")["items"],
                timeout=60,
                what="the Nodes to go",
            )
        except AssertionError:
            left = kube.list(NODES, labelSelector="kube-node.io/nodeset=pool")["items"]
            raise AssertionError(f"Nodes left: {left}\nkube-node's log:\n{process.log()[-6000:]}") from None
        assert process.terminate() == 0
        assert "kube-node.io/leader" not in (kube.get(PODS, "kube-node-0", namespace)["metadata"].get("labels") or {})
    finally:
        process.close()
        kube.delete(PODS, "kube-node-0", namespace, gracePeriodSeconds=0)
    log = process.log()
    assert "forbidden" not in log.lower(), log[-4000:]


#: (verb, resource, namespace: None for cluster scope, "own" or "credentials"; allowed)
CAN_I = [
    ("create", "nodes", None, True),
    ("delete", "nodes", None, True),
    ("update", "nodesets.kube-node.io --subresource=scale", None, True),
    ("patch", "nodesets.kube-node.io --subresource=status", None, True),
    ("create", "pods --subresource=eviction", "default", True),
    ("patch", "nodes --subresource=status", None, True),  # the simulator's kubelets
    ("patch", "nodeclasses.kube-node.io --subresource=status", None, True),  # the NodeClassController
    ("patch", "nodeclasses.kube-node.io", None, True),  # its in-use finalizer
    ("use", "nodeclasses.kube-node.io/any-class", None, True),  # the NodeClass admission policy asks for it
    ("update", "nodeclasses.kube-node.io --subresource=status", None, False),
    ("update", "nodeclasses.kube-node.io", None, False),
    ("get", "secrets", "credentials", True),
    ("update", "leases/kube-node", "own", True),
    ("delete", "namespaces", None, False),
    ("get", "namespaces/kube-system", None, True),  # its uid is the cluster's identity by default
    ("get", "namespaces/default", None, False),
    ("list", "namespaces", None, False),
    ("get", "secrets", "kube-system", False),  # bootstrap tokens: made and deleted, never read
    ("list", "secrets", "kube-system", False),
    ("create", "secrets", "kube-system", True),
    ("delete", "secrets", "kube-system", True),
    ("get", "configmaps/cluster-info", "kube-public", True),  # where machines join, and the CA
    ("get", "configmaps/other", "kube-public", False),
    ("list", "certificatesigningrequests.certificates.k8s.io", None, True),  # the serving-CSR approver
    ("update", "certificatesigningrequests.certificates.k8s.io --subresource=approval", None, True),
    ("get", "secrets", "own", False),
    ("list", "secrets", "credentials", False),
    ("update", "leases/some-other-lease", "own", False),
    ("create", "deployments.apps", "default", False),
    ("delete", "nodeclasses.kube-node.io", None, False),
    ("update", "clusterroles.rbac.authorization.k8s.io", None, False),
    ("patch", "pods", "default", False),
]


def test_the_service_account_can_do_what_kube_node_needs_and_nothing_else(
    kubectl: Kubectl, installed: tuple[str, str, str]
) -> None:
    namespace, account, credentials = installed
    wrong = []
    for verb, resource, where, allowed in CAN_I:
        scope = {"own": ["-n", namespace], "credentials": ["-n", credentials], None: []}.get(where, ["-n", str(where)])
        result = kubectl.run(
            "auth",
            "can-i",
            verb,
            *resource.split(),
            *scope,
            f"--as=system:serviceaccount:{namespace}:{account}",
            check=False,
        )
        if result.stdout.strip() != ("yes" if allowed else "no"):
            wrong.append((verb, resource, where, result.stdout.strip(), result.stderr.strip()))
    assert not wrong


#: Who is bound to what for the people's roles: (user, how it is bound).
PEOPLE_CAN_I = [
    # carol administers kube-node: NodeClasses, NodeSets, and the credentials' Secrets in their namespaces.
    ("carol", "create", "nodeclasses.kube-node.io", None, True),
    ("carol", "delete", "nodeclasses.kube-node.io", None, True),
    ("carol", "use", "nodeclasses.kube-node.io/any-class", None, True),
    ("carol", "create", "nodesets.kube-node.io", None, True),
    ("carol", "update", "nodesets.kube-node.io --subresource=scale", None, True),
    ("carol", "create", "secrets", "credentials", True),
    ("carol", "list", "secrets", "credentials", True),
    ("carol", "update", "secrets", "credentials", True),
    ("carol", "get", "secrets", "own", False),
    ("carol", "get", "secrets", "kube-system", False),
    ("carol", "create", "nodes", None, False),
    ("carol", "update", "nodesets.kube-node.io --subresource=status", None, False),
    # dave uses NodeSets (the chart's user role) and the one NodeClass "small" (its per-class role).
    ("dave", "create", "nodesets.kube-node.io", None, True),
    ("dave", "delete", "nodesets.kube-node.io", None, True),
    ("dave", "update", "nodesets.kube-node.io --subresource=scale", None, True),
    ("dave", "patch", "nodesets.kube-node.io --subresource=scale", None, True),
    ("dave", "use", "nodeclasses.kube-node.io/small", None, True),
    ("dave", "use", "nodeclasses.kube-node.io/big", None, False),
    ("dave", "get", "nodeclasses.kube-node.io/small", None, False),  # its userData may hold a join token
    ("dave", "create", "nodeclasses.kube-node.io", None, False),
    ("dave", "update", "nodesets.kube-node.io --subresource=status", None, False),
    ("dave", "get", "secrets", "credentials", False),
    # erin has the built-in view ClusterRole (cluster-wide): NodeSets aggregated in, NodeClasses not.
    ("erin", "list", "nodesets.kube-node.io", None, True),
    ("erin", "get", "nodesets.kube-node.io --subresource=scale", None, True),
    ("erin", "create", "nodesets.kube-node.io", None, False),
    ("erin", "list", "nodeclasses.kube-node.io", None, False),
    # frank has the built-in edit ClusterRole (cluster-wide): NodeSets and scale, no NodeClass use.
    ("frank", "create", "nodesets.kube-node.io", None, True),
    ("frank", "update", "nodesets.kube-node.io --subresource=scale", None, True),
    ("frank", "list", "nodesets.kube-node.io", None, True),
    ("frank", "use", "nodeclasses.kube-node.io/small", None, False),
    ("frank", "create", "nodeclasses.kube-node.io", None, False),
    # grace has edit in the namespace "default" only: nothing on the cluster-scoped kinds.
    ("grace", "create", "nodesets.kube-node.io", None, False),
    ("grace", "list", "nodesets.kube-node.io", None, False),
]


def test_the_service_account_may_approve_for_the_kubelet_serving_signer_only(
    kube: KubeClient, installed: tuple[str, str, str]
) -> None:
    """Signers are no discoverable resource (kubectl auth can-i cannot name them): asked as the API server's
    certificates controller asks, with a SubjectAccessReview."""
    namespace, account, _ = installed
    reviews = Resource("authorization.k8s.io", "v1", "subjectaccessreviews")

    def may_approve(signer: str) -> bool:
        review = kube.create(
            reviews,
            {
                "spec": {
                    "user": f"system:serviceaccount:{namespace}:{account}",
                    "groups": ["system:serviceaccounts", f"system:serviceaccounts:{namespace}", "system:authenticated"],
                    "resourceAttributes": {
                        "group": "certificates.k8s.io",
                        "resource": "signers",
                        "name": signer,
                        "verb": "approve",
                    },
                }
            },
        )
        return bool(review["status"].get("allowed"))

    assert may_approve("kubernetes.io/kubelet-serving")
    for signer in ("kubernetes.io/kube-apiserver-client", "kubernetes.io/kube-apiserver-client-kubelet", "x.io/y"):
        assert not may_approve(signer), signer


#: What a kubelet joining with one of kube-node's tokens may do, as the API server authenticates it:
#: (verb, resource, groups beyond system:bootstrappers; allowed).
_CSR = "certificatesigningrequests.certificates.k8s.io"
_KUBE_NODE = ("system:bootstrappers:kube-node",)
BOOTSTRAPPER_CAN_I = [
    ("create", _CSR, _KUBE_NODE, True),
    ("get", _CSR, _KUBE_NODE, True),
    # the csrapproving controller asks this of the CSR's sender before it approves a kubelet client CSR
    ("create", f"{_CSR} --subresource=nodeclient", _KUBE_NODE, True),
    ("create", f"{_CSR} --subresource=selfnodeclient", _KUBE_NODE, False),
    ("update", f"{_CSR} --subresource=approval", _KUBE_NODE, False),
    ("list", "nodes", _KUBE_NODE, False),
    ("get", "secrets", _KUBE_NODE, False),
    # a bootstrap token that is not kube-node's gets nothing from the chart
    ("create", _CSR, (), False),
    ("create", f"{_CSR} --subresource=nodeclient", (), False),
]


def test_a_kubelet_with_a_kube_node_token_may_send_its_client_csr_and_have_it_approved_and_no_more(
    kubectl: Kubectl, installed: tuple[str, str, str]
) -> None:
    wrong = []
    for verb, resource, groups, allowed in BOOTSTRAPPER_CAN_I:
        as_groups = [f"--as-group={g}" for g in ("system:bootstrappers", *groups, "system:authenticated")]
        result = kubectl.run(
            "auth", "can-i", verb, *resource.split(), "--as=system:bootstrap:abc123", *as_groups, check=False
        )
        if result.stdout.strip() != ("yes" if allowed else "no"):
            wrong.append((verb, resource, groups, result.stdout.strip(), result.stderr.strip()))
    assert not wrong


def test_people_get_the_roles_for_administering_and_using_kube_node(
    helm: Helm,
    kube: KubeClient,
    kubectl: Kubectl,
    controller_manager: ControlPlane,  # runs the ClusterRole aggregation controller
) -> None:
    suffix = uuid.uuid4().hex[:6]
    name, namespace, credentials = f"people{suffix}", f"kube-node-{suffix}", f"creds-{suffix}"
    kube.create(NAMESPACES, {"metadata": {"name": credentials}})
    fullname = f"{name}-kube-node"
    helm.run(
        "install",
        name,
        str(CHART),
        "--namespace",
        namespace,
        "--create-namespace",
        "--set",
        f"credentialsNamespaces={{{credentials}}}",
        "--set",
        "rbac.nodeClasses={small}",
        "--set",
        "rbac.administrators[0].kind=User",
        "--set",
        "rbac.administrators[0].name=carol",
        "--set",
        r"nodeSelector.kube-node\.io/test=never-scheduled",
    )
    bindings = [
        ("clusterrolebinding", "test-dave-user", f"--clusterrole={fullname}-user", "--user=dave"),
        ("clusterrolebinding", "test-dave-small", f"--clusterrole={fullname}-use-small", "--user=dave"),
        ("clusterrolebinding", "test-erin-view", "--clusterrole=view", "--user=erin"),
        ("clusterrolebinding", "test-frank-edit", "--clusterrole=edit", "--user=frank"),
        ("rolebinding", "test-grace-edit", "--clusterrole=edit", "--user=grace", "-n", "default"),
    ]
    try:
        for kind, binding, *args in bindings:
            kubectl.run("create", kind, binding, *args)

        def wrong() -> list[tuple[str, ...]]:
            found = []
            for user, verb, resource, where, allowed in PEOPLE_CAN_I:
                # Cluster-scoped kinds are asked about outside any namespace (-A), as their requests are;
                # kubectl would otherwise ask in "default", where grace's RoleBinding answers yes.
                scope = {"own": ["-n", namespace], "credentials": ["-n", credentials], None: ["-A"]}.get(
                    where, ["-n", str(where)]
                )
                result = kubectl.run("auth", "can-i", verb, *resource.split(), *scope, f"--as={user}", check=False)
                if result.stdout.strip() != ("yes" if allowed else "no"):
                    found.append((user, verb, resource, str(where), result.stdout.strip()))
            return found

        # RBAC caches and the aggregation controller take a moment.
        try:
            eventually(lambda: not wrong(), timeout=30, interval=1.0, what="the people's permissions")
        except AssertionError:
            assert not wrong()

        # And real requests: grace's namespaced edit gives her no NodeSet; frank's cluster-wide edit does, but
        # the NodeClass policy still wants "use" of the class; dave has it for "small".
        def create_nodeset(user: str, nodeclass: str) -> str:
            body = nodeset_manifest(f"{user}-{nodeclass}", 0, nodeclass)
            args = ("create", "--dry-run=server", "-f", "-", f"--as={user}")
            result = kubectl.run(*args, input=yaml.safe_dump(body), check=False)
            return result.stderr if result.returncode else "created"

        assert 'User "grace" cannot create resource "nodesets"' in create_nodeset("grace", "small")
        eventually(  # a new admission policy takes a moment to be enforced
            lambda: 'frank may not use NodeClass "small"' in create_nodeset("frank", "small"),
            interval=0.5,
            what="the NodeClass policy to deny frank",
        )
        assert create_nodeset("dave", "small") == "created"
        assert 'dave may not use NodeClass "big"' in create_nodeset("dave", "big")
    finally:
        for kind, binding, *args in bindings:
            kubectl.run("delete", kind, binding, "--ignore-not-found", *args[-2:] if kind == "rolebinding" else [])
        helm.run("uninstall", name, "--namespace", namespace, check=False)
