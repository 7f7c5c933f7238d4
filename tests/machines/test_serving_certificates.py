"""Kubelet serving CSRs of kube-node's Nodes are approved when they name only the Node and its machine's
addresses, and left pending with a Warning otherwise (sent as the real API server authenticates a kubelet:
a client certificate of system:node:<name> in system:nodes)."""

from __future__ import annotations

import base64
import ipaddress
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from kube_node.controlplane import ControlPlane
from nodeset_controller.api import ANNOTATION_MACHINE_ID
from nodeset_controller.controllers import Manager
from nodeset_controller.controllers._serving_csrs import CSRS
from nodeset_controller.kube import NODECLASSES, NODES, ApiError, KubeClient
from nodeset_controller.kube._events import CORE_EVENTS
from nodeset_controller.providers import machine_name
from tests.conftest import eventually, managed_node, simulator_nodeclass

pytestmark = pytest.mark.controlplane

SIGNER = "kubernetes.io/kubelet-serving"


def kubelet_client(control_plane: ControlPlane, node: str, tmp_path: Path) -> KubeClient:
    """A client that the API server takes for the kubelet of ``node``."""
    pair = control_plane.issue_client_certificate(f"system:node:{node}", ("system:nodes",))
    path = tmp_path / f"{node}.kubeconfig"
    path.write_text(yaml.safe_dump(control_plane.kubeconfig_dict(user=f"system:node:{node}", pair=pair)))
    return KubeClient.from_kubeconfig(path)


def send_csr(
    client: KubeClient,
    subject: str,
    dns: list[str],
    ips: list[str],
    usages: tuple[str, ...] = ("digital signature", "server auth"),
) -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    names: list[x509.GeneralName] = [x509.DNSName(d) for d in dns]
    names += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ips]
    request = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(
            x509.Name(
                [
                    x509.NameAttribute(NameOID.ORGANIZATION_NAME, "system:nodes"),
                    x509.NameAttribute(NameOID.COMMON_NAME, subject),
                ]
            )
        )
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .sign(key, hashes.SHA256())
    )
    name = f"csr-{uuid.uuid4().hex[:8]}"
    client.create(
        CSRS,
        {
            "apiVersion": "certificates.k8s.io/v1",
            "kind": "CertificateSigningRequest",
            "metadata": {"name": name},
            "spec": {
                "request": base64.b64encode(request.public_bytes(serialization.Encoding.PEM)).decode(),
                "signerName": SIGNER,
                "usages": list(usages),
            },
        },
    )
    return name


def conditions(kube: KubeClient, name: str) -> list[str]:
    return [c["type"] for c in (kube.get(CSRS, name).get("status") or {}).get("conditions") or []]


def events(kube: KubeClient, node: str, reason: str) -> list[dict[str, Any]]:
    return [
        e
        for e in kube.list(CORE_EVENTS)["items"]
        if e["involvedObject"].get("name") == node and e.get("reason") == reason
    ]


@pytest.fixture
def csrs(kube: KubeClient) -> Any:
    yield
    for item in kube.list(CSRS)["items"]:
        kube.delete(CSRS, item["metadata"]["name"])


def test_a_serving_csr_naming_the_node_and_its_machine_is_approved_and_others_are_left_pending(
    control_plane: ControlPlane, kube: KubeClient, manager: Manager, csrs: None, tmp_path: Path
) -> None:
    kube.create(NODECLASSES, simulator_nodeclass())
    node = kube.create(NODES, managed_node("web-1"))
    eventually(
        lambda: ANNOTATION_MACHINE_ID in (kube.get(NODES, "web-1")["metadata"].get("annotations") or {}),
        what="the machine recorded",
    )
    assert manager.simulator is not None
    machine = manager.simulator.get(machine_name("web-1", node["metadata"]["uid"]))
    assert machine is not None
    kubelet = kubelet_client(control_plane, "web-1", tmp_path)

    good = send_csr(kubelet, "system:node:web-1", ["web-1"], [machine.private_ip])
    eventually(lambda: "Approved" in conditions(kube, good), what="the matching CSR approved")
    assert events(kube, "web-1", "ServingCertificateApproved")

    stranger_ip = send_csr(kubelet, "system:node:web-1", ["web-1"], [machine.private_ip, "10.99.0.7"])
    other_name = send_csr(kubelet, "system:node:web-1", ["web-1", "db-1"], [])
    # Another Node's subject: NodeRestriction refuses it before anyone could approve it.
    with pytest.raises(ApiError) as refused:
        send_csr(kubelet, "system:node:db-1", ["web-1"], [])
    assert refused.value.status == 403, refused.value
    client_usage = send_csr(kubelet, "system:node:web-1", ["web-1"], [], ("digital signature", "client auth"))

    def told() -> str:
        return " | ".join(e["message"] for e in events(kube, "web-1", "ServingCertificateNotApproved"))

    eventually(
        lambda: all(name in told() for name in (stranger_ip, other_name, client_usage)),
        what="a Warning for each CSR that does not match",
    )
    text = told()
    assert "10.99.0.7" in text, text
    assert "db-1" in text, text
    assert "client auth" in text, text
    for name in (stranger_ip, other_name, client_usage):
        assert conditions(kube, name) == [], f"{name} must stay pending"


def test_serving_csrs_of_nodes_kube_node_does_not_manage_are_not_its_to_judge(
    control_plane: ControlPlane, kube: KubeClient, manager: Manager, csrs: None, tmp_path: Path
) -> None:
    kube.create(NODES, {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "handmade"}})
    name = send_csr(kubelet_client(control_plane, "handmade", tmp_path), "system:node:handmade", ["handmade"], [])
    time.sleep(3)  # the approver has seen it: its informer delivers in well under a second
    assert conditions(kube, name) == []
    assert not events(kube, "handmade", "ServingCertificateNotApproved")
    assert not events(kube, "handmade", "ServingCertificateApproved")
