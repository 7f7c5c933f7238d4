"""The local control plane starts, reports how long it took, and leaves no process behind."""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from kube_node.controlplane import ControlPlane, pid_alive
from kube_node.controlplane._certs import KeyPair
from nodeset_controller.kube import NAMESPACES, NODES, KubeClient, Resource
from tests.conftest import REPO, eventually

pytestmark = pytest.mark.controlplane

CHILD = REPO / "tests" / "controlplane" / "child_session.py"


def test_apiserver_is_ready_and_reports_the_pinned_version(control_plane: ControlPlane) -> None:
    version = json.loads(control_plane.get("/version"))
    assert version["gitVersion"] == "v1.36.3"
    assert control_plane.get("/readyz", accept="text/plain") == b"ok"
    assert 0 < control_plane.startup_seconds < 60
    print(f"control plane start-to-ready: {control_plane.startup_seconds:.2f} s")


def test_rbac_is_enforced_for_users_outside_system_masters(control_plane: ControlPlane, tmp_path: Path) -> None:
    pair = control_plane.issue_client_certificate("alice")
    kubeconfig = tmp_path / "alice.kubeconfig"
    kubeconfig.write_text(json.dumps(control_plane.kubeconfig_dict(user="alice", pair=pair)))
    with pytest.raises(Exception, match="403") as caught:
        KubeClient.from_kubeconfig(kubeconfig).list(NAMESPACES)
    assert 'User "alice" cannot list resource "namespaces"' in str(caught.value)


def test_controller_manager_runs_controllers(controller_manager: ControlPlane, kube: KubeClient) -> None:
    kube.create(NAMESPACES, {"metadata": {"name": "cm-check"}})
    try:
        # The service-account controller of kube-controller-manager gives every namespace its default account.
        service_accounts = Resource("", "v1", "serviceaccounts", namespaced=True)
        eventually(
            lambda: kube.list(service_accounts, namespace="cm-check")["items"], what="the default service account"
        )
    finally:
        kube.delete(NAMESPACES, "cm-check")


def test_scheduler_is_healthy(scheduler: ControlPlane) -> None:
    assert any(p.name == "kube-scheduler" and p.alive() for p in scheduler.processes)


def _run_child(tmp_path: Path, mode: str) -> tuple[subprocess.Popen[bytes], list[int]]:
    pids_file = tmp_path / "pids"
    env = {**os.environ, "KUBE_NODE_PIDS_FILE": str(pids_file), "KUBE_NODE_CHILD_MODE": mode}
    child = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "--basetemp",
            str(tmp_path / "base"),
            str(CHILD),
        ],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 120
    while not (pids_file.exists() and pids_file.read_text().strip()):
        assert child.poll() is None or pids_file.exists(), child.stdout.read() if child.stdout else ""
        assert time.monotonic() < deadline, "child session never started its control plane"
        time.sleep(0.1)
    return child, [int(pid) for pid in pids_file.read_text().split()]


def test_no_process_outlives_a_session_whose_test_fails(tmp_path: Path) -> None:
    child, pids = _run_child(tmp_path, "fail")
    output = child.communicate(timeout=120)[0].decode()
    assert child.returncode == 1, output
    assert "failing on purpose" in output
    assert len(pids) == 3  # kube-scheduler, kube-apiserver, etcd
    assert [pid for pid in pids if pid_alive(pid)] == []


def test_no_process_outlives_a_session_that_is_killed(tmp_path: Path) -> None:
    child, pids = _run_child(tmp_path, "hang")
    assert all(pid_alive(pid) for pid in pids)
    child.send_signal(signal.SIGKILL)
    child.communicate(timeout=30)
    # The kernel kills each component when its parent dies (PR_SET_PDEATHSIG); no teardown code runs.
    eventually(lambda: not [pid for pid in pids if pid_alive(pid)], timeout=10, what="components to die")


CSRS = Resource("certificates.k8s.io", "v1", "certificatesigningrequests")


def test_kubelet_client_csrs_are_signed_and_node_restriction_holds(
    controller_manager: ControlPlane, kube: KubeClient, tmp_path: Path
) -> None:
    """As in a real cluster: an approved kubelet client CSR is signed by the controller-manager with the client
    CA the API server trusts, and the Node it names may change only itself (NodeRestriction)."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "system:nodes"),
            x509.NameAttribute(NameOID.COMMON_NAME, "system:node:csr-a"),
        ]
    )
    csr = x509.CertificateSigningRequestBuilder().subject_name(subject).sign(key, hashes.SHA256())
    pem = csr.public_bytes(serialization.Encoding.PEM)
    for name in ("csr-a", "csr-b"):
        kube.create(NODES, {"metadata": {"name": name}})
    created = kube.create(
        CSRS,
        {
            "metadata": {"name": "csr-a"},
            "spec": {
                "request": base64.b64encode(pem).decode(),
                "signerName": "kubernetes.io/kube-apiserver-client-kubelet",
                "usages": ["digital signature", "client auth"],
            },
        },
    )
    try:
        created["status"] = {
            "conditions": [{"type": "Approved", "status": "True", "reason": "Test", "message": "approved by the test"}]
        }
        kube.replace(CSRS, "csr-a", created, subresource="approval")
        issued = eventually(lambda: kube.get(CSRS, "csr-a").get("status", {}).get("certificate"), what="the CSR signed")
        cert = x509.load_pem_x509_certificate(base64.b64decode(issued))
        ca = x509.load_pem_x509_certificate((controller_manager.pki / "client-ca.crt").read_bytes())
        assert cert.issuer == ca.subject
        pair = KeyPair(tmp_path / "node.crt", tmp_path / "node.key")
        pair.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        pair.key.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
        kubeconfig = tmp_path / "node.kubeconfig"
        kubeconfig.write_text(json.dumps(controller_manager.kubeconfig_dict(user="system:node:csr-a", pair=pair)))
        node = KubeClient.from_kubeconfig(kubeconfig)
        node.patch(NODES, "csr-a", {"metadata": {"labels": {"own": "yes"}}})
        with pytest.raises(Exception, match="403") as caught:
            node.patch(NODES, "csr-b", {"metadata": {"labels": {"other": "yes"}}})
        assert "not allowed to modify node" in str(caught.value)
    finally:
        kube.delete(CSRS, "csr-a")
