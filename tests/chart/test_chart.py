"""The Helm chart, checked by the real helm and the real API server: lint, schema, a server-side dry run,
install, upgrade and uninstall, and RBAC that is exactly enough."""

from __future__ import annotations

import base64
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography import x509

from autoscaler_provider import TLSFiles
from kube_node._dev import bootstrap_bindings
from kube_node._settings import read_config_file
from kube_node.cli import parse, run_options
from kube_node.controlplane import Binaries, ControlPlane
from nodeset_controller.kube import NAMESPACES, SECRETS, KubeClient
from tests.conftest import Kubectl

from ._helm import CHART, Helm

VALUE_SETS = {
    "defaults": [],
    "simulator and credentials namespaces": [
        "--set",
        "simulator.enabled=true",
        "--set",
        "credentialsNamespaces={cloud-credentials,team-b}",
    ],
    "cert-manager and a ServiceMonitor": [
        "--set",
        "tls.source=certManager",
        "--set",
        "metrics.serviceMonitor.enabled=true",
    ],
    "people's roles for two classes and two administrators": [
        "--set",
        "rbac.nodeClasses={small,gpu.large}",
        "--set",
        "rbac.administrators[0].kind=Group",
        "--set",
        "rbac.administrators[0].name=kube-node-admins",
        "--set",
        "rbac.administrators[1].kind=ServiceAccount",
        "--set",
        "rbac.administrators[1].name=gitops",
        "--set",
        "rbac.administrators[1].namespace=default",
    ],
    "one replica without leader election": [
        "--set",
        "replicaCount=1",
        "--set",
        "leaderElection.enabled=false",
        "--set",
        "tls.insecure=true",
    ],
}


@pytest.fixture
def helm(binaries: Binaries, control_plane: ControlPlane, tmp_path: Path) -> Helm:
    return Helm(binaries, control_plane, tmp_path / "helm")


@pytest.mark.parametrize("values", VALUE_SETS.values(), ids=VALUE_SETS.keys())
def test_helm_lint_strict_passes(helm: Helm, values: list[str]) -> None:
    result = helm.run("lint", "--strict", str(CHART), *values)
    assert "0 chart(s) failed" in result.stdout


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ("replicaCount=0", "/replicaCount"),
        ("tls.source=vault", "/tls/source"),
        ("logFormat=xml", "/logFormat"),
        ("replicas=2", "'replicas' not allowed"),
        ("grpc.port=70000", "/grpc/port"),
        ("credentialsNamespaces={Not_A_Namespace}", "/credentialsNamespaces/0"),
        ("rbac.nodeClasses={Not_A_Class}", "/rbac/nodeClasses/0"),
        ("rbac.administrators[0].kind=Robot", "/rbac/administrators/0"),
        # config: the settings of kube-node run, its schema generated from kube_node/_settings.py.
        ("config.wrokers=4", "additional properties 'wrokers' not allowed"),
        ("config.workers=many", "/config/workers"),
        ("config.leader-elect=sometimes", "/config/leader-elect"),
        ("config.pending-pod-autoscaler-expander=cheapest", "/config/pending-pod-autoscaler-expander"),
    ],
)
def test_the_values_schema_rejects_bad_values_by_name(helm: Helm, setting: str, message: str) -> None:
    result = helm.run("template", "kn", str(CHART), "--set", setting, check=False)
    assert result.returncode != 0
    assert "values don't meet the specifications of the schema" in result.stderr
    assert message in result.stderr


@pytest.mark.parametrize("values", VALUE_SETS.values(), ids=VALUE_SETS.keys())
def test_the_rendered_config_file_is_one_kube_node_run_accepts(helm: Helm, values: list[str], tmp_path: Path) -> None:
    objects = helm.template(*values)
    config_map = next(o for o in objects if o["kind"] == "ConfigMap")
    path = tmp_path / "config.yaml"
    path.write_text(config_map["data"]["config.yaml"])
    deployment = next(o for o in objects if o["kind"] == "Deployment")
    args = deployment["spec"]["template"]["spec"]["containers"][0]["args"]
    assert args == ["run", "--config=/etc/kube-node/config/config.yaml"]
    options = run_options(parse(["run", f"--config={path}"]))
    assert options.leader_election.namespace == "kube-node-system"
    assert options.status_address == ":8080"
    if "tls.insecure=true" in values:
        assert options.grpc_tls is None
    else:
        assert options.grpc_tls is not None
        assert str(options.grpc_tls.client_ca) == "/etc/kube-node/tls/ca.crt"
    assert read_config_file(path)  # every key is a real setting with a good value (else SettingError)


def test_rbac_has_no_wildcards_and_reads_secrets_only_in_the_credentials_namespaces(helm: Helm) -> None:
    objects = helm.template(*VALUE_SETS["simulator and credentials namespaces"])
    roles = [o for o in objects if o["kind"] in ("ClusterRole", "Role")]
    assert roles
    for role in roles:
        for rule in role["rules"]:
            for field in ("apiGroups", "resources", "verbs", "resourceNames"):
                assert "*" not in rule.get(field, []), (role["metadata"]["name"], rule)
    # kube-node's own: the roles bound to its ServiceAccount.
    own = {
        (b["roleRef"]["kind"], b["roleRef"]["name"], b["metadata"].get("namespace"))
        for b in objects
        if b["kind"] in ("ClusterRoleBinding", "RoleBinding")
        and any(s["kind"] == "ServiceAccount" and s["name"] == "kn-kube-node" for s in b["subjects"])
    }
    secret_rules = [
        (role, rule)
        for role in roles
        for rule in role["rules"]
        if "secrets" in rule["resources"]
        and (role["kind"], role["metadata"]["name"], role["metadata"].get("namespace")) in own
    ]
    reading = [(role, rule) for role, rule in secret_rules if set(rule["verbs"]) & {"get", "list", "watch"}]
    assert {role["metadata"]["namespace"] for role, _ in reading} == {"cloud-credentials", "team-b"}
    assert all(rule["verbs"] == ["get"] for _, rule in reading)
    # Bootstrap tokens: made and deleted in kube-system, never read there.
    writing = [(role, rule) for role, rule in secret_rules if (role, rule) not in reading]
    assert [(role["metadata"]["namespace"], rule["verbs"]) for role, rule in writing] == [
        ("kube-system", ["create", "delete"])
    ]
    # People's Secrets rights (the credentials administrators') are namespaced Roles in those namespaces only:
    # no ClusterRole grants Secrets, so no binding can reach them elsewhere.
    assert not [r for r in roles if r["kind"] == "ClusterRole" and any("secrets" in x["resources"] for x in r["rules"])]
    people = {r["metadata"]["namespace"] for r in roles if r["metadata"]["name"] == "kn-kube-node-credentials-admin"}
    assert people == {"cloud-credentials", "team-b"}


def test_the_nodeclass_policy_can_be_left_out(helm: Helm) -> None:
    def kinds(*values: str) -> set[str]:
        return {o["kind"] for o in helm.template(*values)}

    assert {"ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding"} <= kinds()
    assert not {"ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding"} & kinds(
        "--set", "nodeClassPolicy.enabled=false"
    )


def test_by_default_kube_node_prefers_nodes_it_does_not_manage_and_a_given_affinity_replaces_that(
    helm: Helm,
) -> None:
    def affinity(*values: str) -> Any:
        deployment = next(o for o in helm.template(*values) if o["kind"] == "Deployment")
        return deployment["spec"]["template"]["spec"]["affinity"]

    preferred = affinity()["nodeAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"]
    assert preferred == [
        {
            "weight": 100,
            "preference": {"matchExpressions": [{"key": "kube-node.io/nodeclass", "operator": "DoesNotExist"}]},
        }
    ]
    assert "requiredDuringSchedulingIgnoredDuringExecution" not in affinity()["nodeAffinity"]
    zone = "topology.kubernetes.io/zone"
    given = affinity(
        "--set",
        f"affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[0].matchExpressions[0].key={zone}",
        "--set",
        "affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[0].matchExpressions[0].operator=Exists",
    )
    assert given == {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [{"matchExpressions": [{"key": zone, "operator": "Exists"}]}]
            }
        }
    }


@pytest.mark.parametrize(
    "values",
    [
        VALUE_SETS["defaults"],
        VALUE_SETS["simulator and credentials namespaces"],
        VALUE_SETS["people's roles for two classes and two administrators"],
    ],
    ids=["defaults", "simulator and credentials namespaces", "people's roles"],
)
def test_the_rendered_chart_passes_a_server_side_dry_run(
    helm: Helm, kubectl: Kubectl, kube: KubeClient, values: list[str]
) -> None:
    namespace = f"kn-dry-{uuid.uuid4().hex[:6]}"
    for name in (namespace, "cloud-credentials", "team-b"):
        if not _namespace_exists(kube, name):
            kube.create(NAMESPACES, {"metadata": {"name": name}})
    rendered = helm.run("template", "kn", str(CHART), "--namespace", namespace, "--include-crds", *values).stdout
    result = kubectl.run("apply", "--dry-run=server", "-f", "-", input=rendered)
    applied = result.stdout.splitlines()
    kinds = {line.split("/", 1)[0] for line in applied}
    assert {
        "deployment.apps",
        "service",
        "configmap",
        "serviceaccount",
        "clusterrole.rbac.authorization.k8s.io",
        "role.rbac.authorization.k8s.io",
        "poddisruptionbudget.policy",
        "customresourcedefinition.apiextensions.k8s.io",
        "validatingadmissionpolicy.admissionregistration.k8s.io",
        "validatingadmissionpolicybinding.admissionregistration.k8s.io",
    } <= kinds, applied
    assert all("(server dry run)" in line for line in applied), applied


def _namespace_exists(kube: KubeClient, name: str) -> bool:
    return any(n["metadata"]["name"] == name for n in kube.list(NAMESPACES)["items"])


@pytest.fixture
def release(helm: Helm) -> Iterator[tuple[str, str]]:
    name, namespace = f"kn{uuid.uuid4().hex[:6]}", f"kube-node-{uuid.uuid4().hex[:6]}"
    try:
        yield name, namespace
    finally:
        helm.run("uninstall", name, "--namespace", namespace, check=False)


def _manifest_objects(helm: Helm, name: str, namespace: str) -> list[dict[str, Any]]:
    out = helm.run("get", "manifest", name, "--namespace", namespace).stdout
    return [doc for doc in yaml.safe_load_all(out) if doc]


def test_install_creates_every_object_upgrade_changes_them_and_uninstall_removes_them(
    helm: Helm, kubectl: Kubectl, release: tuple[str, str]
) -> None:
    name, namespace = release
    installed = helm.run("install", name, str(CHART), "--namespace", namespace, "--create-namespace")
    assert "--cloud-provider=externalgrpc" in installed.stdout  # NOTES tell how to point the autoscaler here
    assert f"address: {name}-kube-node-grpc.{namespace}.svc:8086" in installed.stdout
    objects = _manifest_objects(helm, name, namespace)
    assert {o["kind"] for o in objects} >= {
        "ServiceAccount",
        "ConfigMap",
        "ClusterRole",
        "ClusterRoleBinding",
        "Role",
        "RoleBinding",
        "Service",
        "Deployment",
        "PodDisruptionBudget",
        "ValidatingAdmissionPolicy",
        "ValidatingAdmissionPolicyBinding",
    }
    for obj in objects:
        ns = ["-n", obj["metadata"].get("namespace", namespace)]
        kubectl.run("get", obj["kind"], obj["metadata"]["name"], *ns)
    deployment = yaml.safe_load(kubectl.run("get", "deployment", "-n", namespace, "-o", "yaml").stdout)["items"][0]
    assert deployment["spec"]["replicas"] == 2
    checksum = deployment["spec"]["template"]["metadata"]["annotations"]["checksum/config"]
    pod = deployment["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    container = pod["containers"][0]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"

    helm.run(
        "upgrade", name, str(CHART), "--namespace", namespace, "--set", "replicaCount=3", "--set", "config.workers=4"
    )
    deployment = yaml.safe_load(kubectl.run("get", "deployment", "-n", namespace, "-o", "yaml").stdout)["items"][0]
    assert deployment["spec"]["replicas"] == 3
    assert deployment["spec"]["template"]["metadata"]["annotations"]["checksum/config"] != checksum
    config = kubectl.run("get", "configmap", f"{name}-kube-node", "-n", namespace, "-o", "yaml").stdout
    assert yaml.safe_load(yaml.safe_load(config)["data"]["config.yaml"])["workers"] == 4
    assert len(helm.run("history", name, "--namespace", namespace, "-o", "yaml").stdout.split("revision:")) == 3

    helm.run("uninstall", name, "--namespace", namespace)
    for obj in objects:
        ns = ["-n", obj["metadata"].get("namespace", namespace)]
        gone = kubectl.run("get", obj["kind"], obj["metadata"]["name"], *ns, check=False)
        assert gone.returncode != 0 and "NotFound" in gone.stderr, (obj["kind"], obj["metadata"]["name"])


READ_KUBE_SYSTEM = {"apiGroups": [""], "resources": ["namespaces"], "resourceNames": ["kube-system"], "verbs": ["get"]}


def _config_and_cluster_rules(objects: list[dict[str, Any]]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    config_map = next(o for o in objects if o["kind"] == "ConfigMap")
    cluster_role = next(o for o in objects if o["kind"] == "ClusterRole")
    return yaml.safe_load(config_map["data"]["config.yaml"]), cluster_role["rules"]


def test_by_default_the_identity_is_the_kube_system_uid_which_only_that_namespace_is_readable_for(
    helm: Helm, tmp_path: Path
) -> None:
    config, rules = _config_and_cluster_rules(helm.template())
    assert "cluster-name" not in config
    assert READ_KUBE_SYSTEM in rules
    assert [r for r in rules if "namespaces" in r["resources"]] == [READ_KUBE_SYSTEM]
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    assert run_options(parse(["run", f"--config={path}"])).cluster is None
    for values in (["--set", "clusterName=prod-eu"], ["--set", "config.cluster-name=prod-eu"]):
        config, rules = _config_and_cluster_rules(helm.template(*values))
        assert config["cluster-name"] == "prod-eu"
        assert not [r for r in rules if "namespaces" in r["resources"]]  # nothing to read then


def test_an_upgrade_keeps_the_cluster_name_the_release_ran_with(helm: Helm, release: tuple[str, str]) -> None:
    """A release of a chart whose default name was "kube-node" must not change identity on upgrade: its
    machines carry that name, and under another one they would look gone (replaced, and never destroyed)."""
    name, namespace = release
    helm.run(
        "install", name, str(CHART), "--namespace", namespace, "--create-namespace", "--set", "clusterName=kube-node"
    )
    helm.run("upgrade", name, str(CHART), "--namespace", namespace)  # the new default, without --reuse-values
    config, rules = _config_and_cluster_rules(_manifest_objects(helm, name, namespace))
    assert config["cluster-name"] == "kube-node"
    assert READ_KUBE_SYSTEM not in rules
    helm.run("upgrade", name, str(CHART), "--namespace", namespace, "--set", "clusterName=renamed")
    assert _config_and_cluster_rules(_manifest_objects(helm, name, namespace))[0]["cluster-name"] == "renamed"


def test_the_cluster_autoscaler_example_passes_a_server_side_dry_run(kubectl: Kubectl, kube: KubeClient) -> None:
    if not _namespace_exists(kube, "kube-node-system"):
        kube.create(NAMESPACES, {"metadata": {"name": "kube-node-system"}})
    example = CHART / "examples" / "cluster-autoscaler.yaml"
    applied = kubectl.run("apply", "--dry-run=server", "-f", str(example)).stdout.splitlines()
    assert "deployment.apps/cluster-autoscaler created (server dry run)" in applied, applied
    deployment = next(d for d in yaml.safe_load_all(example.read_text()) if d["kind"] == "Deployment")
    args = deployment["spec"]["template"]["spec"]["containers"][0]["args"]
    assert "--cloud-provider=externalgrpc" in args
    config = next(d for d in yaml.safe_load_all(example.read_text()) if d["kind"] == "ConfigMap")
    cloud_config = yaml.safe_load(config["data"]["cloud-config.yaml"])
    # The address is the chart's gRPC Service for release "kube-node" in kube-node-system.
    assert cloud_config["address"] == "kube-node-grpc.kube-node-system.svc:8086"


#: How the upstream image (registry.k8s.io/autoscaling/cluster-autoscaler) starts: its Dockerfile copies the
#: binary to /cluster-autoscaler and sets CMD ["/cluster-autoscaler"], with no ENTRYPOINT. A container's
#: ``args`` replace the CMD and its ``command`` the ENTRYPOINT, so without ``command`` the first arg would run.
UPSTREAM_IMAGE_ENTRYPOINT: list[str] = []
UPSTREAM_IMAGE_CMD = ["/cluster-autoscaler"]


def test_the_cluster_autoscaler_example_starts_the_binary_with_flags_the_real_one_accepts(
    autoscaler_binary: Path,
) -> None:
    example = CHART / "examples" / "cluster-autoscaler.yaml"
    deployment = next(d for d in yaml.safe_load_all(example.read_text()) if d["kind"] == "Deployment")
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    # What the kubelet runs: command, else the image's ENTRYPOINT; then args, else (only without command)
    # the image's CMD.
    program = container.get("command") or UPSTREAM_IMAGE_ENTRYPOINT or []
    argv = program + container.get("args", [] if container.get("command") else UPSTREAM_IMAGE_CMD)
    assert argv[0] == UPSTREAM_IMAGE_CMD[0], f"the container would run {argv[0]!r}"
    # The real binary takes every flag (an unknown one exits 2 before --help is reached).
    result = subprocess.run(
        [str(autoscaler_binary), *argv[1:], "--help"], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr[-2000:]


def _secrets(objects: list[dict[str, Any]]) -> dict[str, dict[str, bytes]]:
    return {
        o["metadata"]["name"]: {k: base64.b64decode(v) for k, v in o["data"].items()}
        for o in objects
        if o["kind"] == "Secret"
    }


def test_without_cert_manager_the_chart_generates_a_ca_a_serving_and_a_client_certificate_that_fit(
    helm: Helm, tmp_path: Path
) -> None:
    objects = helm.template("--set", "tls.dnsNames={grpc.example.com}")
    secrets = _secrets(objects)
    server, client = secrets["kn-kube-node-provider-tls"], secrets["kn-kube-node-client-tls"]
    ca = x509.load_pem_x509_certificate(server["ca.crt"])
    assert client["ca.crt"] == server["ca.crt"]
    serving = x509.load_pem_x509_certificate(server["tls.crt"])
    serving.verify_directly_issued_by(ca)
    names = serving.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(
        x509.DNSName
    )
    assert {"kn-kube-node-grpc.kube-node-system.svc", "grpc.example.com"} <= set(names), names
    autoscaler = x509.load_pem_x509_certificate(client["tls.crt"])
    autoscaler.verify_directly_issued_by(ca)
    usages = autoscaler.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert x509.oid.ExtendedKeyUsageOID.CLIENT_AUTH in usages
    # What the server reads from the mounted Secret is a valid set (its key is its certificate's).
    for key, data in server.items():
        (tmp_path / key).write_bytes(data)
    TLSFiles(cert=tmp_path / "tls.crt", key=tmp_path / "tls.key", client_ca=tmp_path / "ca.crt").read()
    # The Deployment mounts the generated server Secret.
    deployment = next(o for o in objects if o["kind"] == "Deployment")
    volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
    assert volumes["tls"]["secret"]["secretName"] == "kn-kube-node-provider-tls"


def test_generated_certificates_stay_across_upgrades_and_a_secret_someone_made_is_used_as_it_is(
    helm: Helm, kube: KubeClient, kubectl: Kubectl, release: tuple[str, str]
) -> None:
    name, namespace = release

    def served() -> dict[str, bytes]:
        secret = kube.get(SECRETS, f"{name}-kube-node-provider-tls", namespace)
        return {k: base64.b64decode(v) for k, v in secret["data"].items()}

    helm.run("install", name, str(CHART), "--namespace", namespace, "--create-namespace")
    first = served()
    helm.run("upgrade", name, str(CHART), "--namespace", namespace, "--set", "replicaCount=3")
    assert served() == first, "an upgrade must keep the certificates the cluster-autoscaler was given"
    helm.run("uninstall", name, "--namespace", namespace)

    # Someone's own Secret (no chart's labels) under the serving Secret's name: auto takes it as it is.
    kube.create(
        SECRETS,
        {
            "metadata": {"name": f"{name}-kube-node-provider-tls"},
            "data": {k: base64.b64encode(v).decode() for k, v in first.items()},
        },
        namespace=namespace,
    )
    helm.run("install", name, str(CHART), "--namespace", namespace)
    assert not [o for o in _manifest_objects(helm, name, namespace) if o["kind"] == "Secret"]
    assert served() == first


def test_the_dev_environment_binds_bootstrap_tokens_as_the_chart_does(helm: Helm) -> None:
    chart = [
        (o["roleRef"], o["subjects"])
        for o in helm.template("--show-only", "templates/bootstrap.yaml")
        if o["kind"] == "ClusterRoleBinding"
    ]
    dev = [(b["roleRef"], b["subjects"]) for b in bootstrap_bindings()]
    assert sorted(map(str, dev)) == sorted(map(str, chart)) and dev
