"""Fixtures shared by every test: one real control plane per test session, a clean slate per test.

The control plane (etcd + kube-apiserver, with kube-scheduler and kube-controller-manager started on the
first test that asks for them) is built from the Go module proxy by hack/build-tools.sh and cached outside
the repository; only the first run on a machine pays for the build.
"""

from __future__ import annotations

import contextlib
import copy
import os
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest

from autoscaler_provider import ProviderServer
from autoscaler_provider._proto import externalgrpc_pb2_grpc
from kube_node._grpc import GrpcCertificates, make_grpc_certificates, serve_grpc
from kube_node.controlplane import Binaries, ControlPlane, find_binaries
from nodeset_controller.api import LABEL_BOOTSTRAP_TOKEN_NODE_UID, LABEL_NODECLASS
from nodeset_controller.controllers import (
    Manager,
    ManagerSettings,
    NodeControllerSettings,
    NodeSetControllerSettings,
)
from nodeset_controller.kube import (
    CRDS,
    NODECLASSES,
    NODES,
    NODESETS,
    SECRETS,
    ApiError,
    KubeClient,
    Resource,
    install_crds,
)

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def binaries() -> Binaries:
    """The pinned control-plane binaries (built once per machine)."""
    return find_binaries()


#: The cluster-autoscaler's source (kubernetes/autoscaler, tag cluster-autoscaler-1.36.1, its cluster-autoscaler/).
AUTOSCALER_SRC = Path(os.environ.get("KUBE_NODE_AUTOSCALER_SRC", REPO.parent / "shared/third_party/cluster-autoscaler"))


@pytest.fixture(scope="session")
def autoscaler_binary(binaries: Binaries) -> Path:
    if binaries.cluster_autoscaler is not None:
        return binaries.cluster_autoscaler
    if not (AUTOSCALER_SRC / "go.mod").exists():
        reason = (
            f"no cluster-autoscaler source at {AUTOSCALER_SRC}: set KUBE_NODE_AUTOSCALER_SRC to a checkout "
            "of kubernetes/autoscaler's cluster-autoscaler (release 1.36) to run the end-to-end tests"
        )
        if os.environ.get("CI"):  # in CI the source is there (../shared): its absence is a failure, not a skip
            pytest.fail(reason)
        pytest.skip(reason)
    built = find_binaries(with_autoscaler=True).cluster_autoscaler
    assert built is not None, f"hack/build-tools.sh --with-autoscaler did not build {AUTOSCALER_SRC}"
    return built


@pytest.fixture(scope="session")
def control_plane(binaries: Binaries, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    """etcd + kube-apiserver for the whole session, with kube-node's CRDs installed."""
    plane = ControlPlane(tmp_path_factory.mktemp("controlplane"), binaries=binaries)
    plane.start()
    try:
        install_crds(KubeClient.from_kubeconfig(plane.kubeconfig))
        yield plane
    finally:
        plane.stop()


@pytest.fixture(scope="session")
def scheduler(control_plane: ControlPlane) -> ControlPlane:
    """The session's control plane with kube-scheduler running."""
    control_plane.start_scheduler()
    return control_plane


@pytest.fixture(scope="session")
def controller_manager(control_plane: ControlPlane) -> ControlPlane:
    """The session's control plane with kube-controller-manager running."""
    control_plane.start_controller_manager()
    return control_plane


@pytest.fixture
def kube(control_plane: ControlPlane) -> Iterator[KubeClient]:
    """An admin client on a clean cluster: no NodeSets, NodeClasses or Nodes before or after the test."""
    client = KubeClient.from_kubeconfig(control_plane.kubeconfig)
    wipe(client)
    yield client
    wipe(client)


def wipe(client: KubeClient) -> None:
    """Delete every NodeSet, NodeClass and Node, finalizers and all, and wait until they are gone."""
    for resource in (NODESETS, NODECLASSES, NODES):
        for item in client.list(resource)["items"]:
            name = item["metadata"]["name"]
            try:
                if item["metadata"].get("finalizers"):
                    client.patch(resource, name, {"metadata": {"finalizers": None}})
                client.delete(resource, name)
            except ApiError as error:
                if not error.not_found:
                    raise
        eventually(lambda r=resource: not client.list(r)["items"], what=f"{resource.plural} deleted")
    tokens = client.list(SECRETS, "kube-system", labelSelector=LABEL_BOOTSTRAP_TOKEN_NODE_UID)["items"]
    for token in tokens:  # the bootstrap tokens kube-node minted
        try:
            client.delete(SECRETS, token["metadata"]["name"], "kube-system")
        except ApiError as error:
            if not error.not_found:
                raise


def eventually(
    check: Callable[[], Any], *, timeout: float = 30.0, interval: float = 0.1, what: str = "condition"
) -> Any:
    """Poll ``check`` until it returns something truthy (returned), or fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}; last value: {result!r}")
        time.sleep(interval)


class Kubectl:
    """The pinned kubectl, pointed at the session's control plane."""

    def __init__(self, binaries: Binaries, control_plane: ControlPlane) -> None:
        self.path = binaries.kubectl
        self.env = {**os.environ, "KUBECONFIG": str(control_plane.kubeconfig)}

    def run(self, *args: str, input: str | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run kubectl; with ``check``, fail the test with kubectl's stderr on a non-zero exit."""
        result = subprocess.run(
            [str(self.path), *args], input=input, capture_output=True, text=True, env=self.env, timeout=60, check=False
        )
        if check and result.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed ({result.returncode}): {result.stderr}")
        return result


@pytest.fixture
def kubectl(binaries: Binaries, control_plane: ControlPlane, kube: KubeClient) -> Kubectl:
    """kubectl against the clean session cluster."""
    return Kubectl(binaries, control_plane)


@pytest.fixture
def manager(kube: KubeClient, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Manager]:
    """kube-node's controllers, in this process, with the simulator keeping its machines under tmp_path (its
    faults seeded by a ``simulator_seed`` mark, if the test has one)."""
    seed = request.node.get_closest_marker("simulator_seed")
    settings = ManagerSettings(
        node_controller=NodeControllerSettings(boot_poll=0.2, orphan_grace=600, sweep_interval=1.0),
        nodeset_controller=NodeSetControllerSettings(replacement_backoff=1.0, failed_instance_ttl=2.0),
        simulator_dir=tmp_path / "simulator",
        simulator_seed=seed.args[0] if seed else None,
        kubelet_lease_interval=5.0,
    )
    running = Manager(kube, settings)
    running.start()
    try:
        yield running
    finally:
        running.stop()


def simulator_nodeclass(name: str = "sim", **driver_options: Any) -> dict[str, Any]:
    """A simulator NodeClass manifest with 4 CPUs and 16 GiB."""
    return {
        "apiVersion": "kube-node.io/v1alpha1",
        "kind": "NodeClass",
        "metadata": {"name": name},
        "spec": {
            "provider": "simulator",
            "capacity": {"cpu": "4", "memory": "16Gi", "pods": "110"},
            "driverOptions": driver_options,
            "userData": "#cloud-config\n# join as ${NODE_NAME}\n",
        },
    }


def managed_node(name: str, nodeclass: str = "sim") -> dict[str, Any]:
    """A Node manifest that names a NodeClass."""
    return {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name, "labels": {LABEL_NODECLASS: nodeclass}}}


def nodeset_manifest(name: str, replicas: int, nodeclass: str = "sim", **spec: Any) -> dict[str, Any]:
    """A NodeSet manifest."""
    return {
        "apiVersion": "kube-node.io/v1alpha1",
        "kind": "NodeSet",
        "metadata": {"name": name},
        "spec": {"nodeClassName": nodeclass, "replicas": replicas, **spec},
    }


@dataclass
class Provider:
    """The running server, a client stub over mutual TLS, and what they were made from."""

    server: ProviderServer
    stub: externalgrpc_pb2_grpc.CloudProviderStub
    channel: grpc.Channel
    certificates: GrpcCertificates
    address: str


def secure_channel(address: str, ca: Path, cert: Path | None = None, key: Path | None = None) -> grpc.Channel:
    """A TLS channel trusting ``ca``, presenting ``cert``/``key`` when given."""
    credentials = grpc.ssl_channel_credentials(
        root_certificates=ca.read_bytes(),
        private_key=key.read_bytes() if key else None,
        certificate_chain=cert.read_bytes() if cert else None,
    )
    return grpc.secure_channel(address, credentials)


@contextlib.contextmanager
def serving_grpc(manager: Manager, directory: Path) -> Iterator[Provider]:
    """The gRPC server over ``manager``'s caches, with fresh certificates under ``directory``, and a client."""
    certificates = make_grpc_certificates(directory)
    server = serve_grpc(manager, "127.0.0.1:0", certificates.server_tls)
    address = f"127.0.0.1:{server.port}"
    channel = secure_channel(address, certificates.ca, certificates.client.cert, certificates.client.key)
    try:
        yield Provider(server, externalgrpc_pb2_grpc.CloudProviderStub(channel), channel, certificates, address)
    finally:
        channel.close()
        server.stop(0)


@pytest.fixture
def provider(manager: Manager, tmp_path: Path) -> Iterator[Provider]:
    with serving_grpc(manager, tmp_path / "tls") as serving:
        yield serving


WORKLOAD_RESOURCES = (
    Resource("apps", "v1", "deployments", namespaced=True),
    Resource("policy", "v1", "poddisruptionbudgets", namespaced=True),
)
PODS_RESOURCE = Resource("", "v1", "pods", namespaced=True)
NAMESPACES_RESOURCE = Resource("", "v1", "namespaces")


@pytest.fixture
def namespace(kube: KubeClient, scheduler: ControlPlane, controller_manager: ControlPlane) -> Iterator[str]:
    """A fresh namespace for workloads (the scheduler and controller-manager run); emptied afterwards, so no
    pod of one test is still pending in the next."""
    name = f"test-{uuid.uuid4().hex[:6]}"
    kube.create(NAMESPACES_RESOURCE, {"metadata": {"name": name}})
    eventually(
        lambda: kube.list(Resource("", "v1", "serviceaccounts", namespaced=True), name)["items"],
        what="the default service account",
    )
    yield name
    for resource in WORKLOAD_RESOURCES:
        for item in kube.list(resource, name)["items"]:
            kube.delete(resource, item["metadata"]["name"], name, propagationPolicy="Background")
    for pod in kube.list(PODS_RESOURCE, name)["items"]:
        try:
            kube.delete(PODS_RESOURCE, pod["metadata"]["name"], name, gracePeriodSeconds=0)
        except ApiError as error:
            if not error.not_found:
                raise
    eventually(lambda: not kube.list(PODS_RESOURCE, name)["items"], what="the namespace's pods gone")
    kube.delete(NAMESPACES_RESOURCE, name)


@contextlib.contextmanager
def schema_relaxed(kube: KubeClient, plural: str, *path: str) -> Iterator[None]:
    """The CRD ``<plural>.kube-node.io`` with the checks at the schema ``path`` (property names from
    ``spec``) taken away while the block runs, and put back after: the objects created meanwhile are like
    ones stored before a schema was tightened (an upgrade), which every reader must still survive."""
    name = f"{plural}.kube-node.io"
    original = kube.get(CRDS, name)
    relaxed = copy.deepcopy(original)
    node = relaxed["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    for key in path:
        node = node["properties"][key]

    def strip(schema: dict[str, Any]) -> None:
        for check in ("x-kubernetes-validations", "pattern", "maxLength", "maximum"):
            schema.pop(check, None)
        for child in (schema.get("additionalProperties"), *(schema.get("properties") or {}).values()):
            if isinstance(child, dict):
                strip(child)

    strip(node)
    kube.replace(CRDS, name, relaxed)
    time.sleep(1.0)  # the API server rebuilds its handler for the CRD asynchronously
    try:
        yield
    finally:
        current = kube.get(CRDS, name)
        original["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"]
        kube.replace(CRDS, name, original)
        time.sleep(1.0)


def create_or_none(kube: KubeClient, resource: Resource, body: dict[str, Any]) -> dict[str, Any] | None:
    """Create ``body``; None if the API server refuses it as invalid (for eventually, while a schema changes)."""
    try:
        return kube.create(resource, body)
    except ApiError as error:
        if error.status == 422:
            return None
        raise
