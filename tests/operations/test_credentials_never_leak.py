"""A NodeClass's credentials never appear in kube-node's logs, Events, Node annotations or metrics, even when
the cloud echoes them back in an error (as clouds do with access key ids); nor do the bootstrap tokens kube-node
mints for its machines."""

from __future__ import annotations

import base64
import http.server
import json
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

import pytest

from kube_node.controlplane import ControlPlane
from nodeset_controller.api import ANNOTATION_MACHINE_ERROR, LABEL_BOOTSTRAP_TOKEN_NODE_UID
from nodeset_controller.kube import NODECLASSES, NODES, NODESETS, SECRETS, KubeClient
from nodeset_controller.kube._events import CORE_EVENTS
from tests.conftest import eventually, managed_node, nodeset_manifest, simulator_nodeclass

from ._process import KubeNodeProcess

#: How kube-node runs in these tests: everything it logs (as JSON), no gRPC server, one process, a quick sweep.
WATCHED = ("--log-level=DEBUG", "--log-format=json", "--grpc-address=", "--no-leader-elect", "--sweep-interval=1")


def assert_none_leaked(credentials: tuple[str, ...] | list[str], places: dict[str, str]) -> None:
    """No credential in any of the places (name -> text)."""
    for credential in credentials:
        for where, text in places.items():
            assert credential not in text, f"{credential[:12]}... leaked into the {where}"


ACCESS_KEY = f"AKID{uuid.uuid4().hex[:16].upper()}"
SECRET_KEY = f"kn-secret-{uuid.uuid4().hex}"


class _LeakyCloud(http.server.BaseHTTPRequestHandler):
    """An EC2 endpoint that refuses every call and, like a careless cloud, quotes the request and the secret."""

    def do_GET(self) -> None:
        body = (
            "<Response><Errors><Error><Code>AuthFailure</Code><Message>AWS was not able to validate the provided "
            f"access credentials: request {escape(self.path)}, secret {SECRET_KEY}</Message></Error></Errors>"
            "<RequestID>leak-test</RequestID></Response>"
        ).encode()
        self.send_response(401)
        self.send_header("Content-Type", "text/xml")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_POST = do_GET  # noqa: N815

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def leaky_cloud() -> Iterator[int]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _LeakyCloud)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


def test_no_credential_reaches_logs_events_annotations_or_metrics(
    control_plane: ControlPlane, kube: KubeClient, leaky_cloud: int, tmp_path: Path
) -> None:
    secret_name = f"ec2-{uuid.uuid4().hex[:6]}"
    kube.create(
        SECRETS,
        {"metadata": {"name": secret_name}, "stringData": {"key": ACCESS_KEY, "secret": SECRET_KEY}},
        namespace="default",
    )
    kube.create(
        NODECLASSES,
        {
            "apiVersion": "kube-node.io/v1alpha1",
            "kind": "NodeClass",
            "metadata": {"name": "leaky-ec2"},
            "spec": {
                "provider": "ec2",
                "size": "t3.micro",
                "image": "ami-0123456789abcdef0",
                "credentialsSecretRef": {"name": secret_name, "namespace": "default"},
                "driverOptions": {"host": "127.0.0.1", "port": leaky_cloud, "secure": "false"},
                "capacity": {"cpu": "2", "memory": "8Gi"},
            },
        },
    )
    process = KubeNodeProcess(
        control_plane,
        tmp_path,
        "kube-node",
        *WATCHED,
    )
    try:
        kube.create(NODES, managed_node("leaky", "leaky-ec2"))
        annotations = eventually(
            lambda: (kube.get(NODES, "leaky")["metadata"].get("annotations") or {}).get(ANNOTATION_MACHINE_ERROR),
            timeout=60,
            what="the cloud's refusal recorded on the Node",
        )
        # The error path ran: the cloud's message is there, without the credentials it quoted.
        assert "AuthFailure" in annotations or "credentials" in annotations, annotations
        eventually(
            lambda: any(
                dict(labels).get("provider") == "ec2" and dict(labels).get("operation") == "list"
                for name, labels in process.metrics()
                if name == "kube_node_machine_operations_total"
            ),
            what="the machine sweep's listing, counted",
        )
        # The NodeClassController's check met the same refusal: said on the NodeClass, scrubbed as well.
        ready = eventually(
            lambda: next(
                (
                    c
                    for c in (kube.get(NODECLASSES, "leaky-ec2").get("status") or {}).get("conditions") or []
                    if c["type"] == "Ready" and c["status"] == "False"
                ),
                None,
            ),
            what="the NodeClass not Ready",
        )
        assert ready["reason"] == "InvalidCredentials", ready
        metrics = process.get("/metrics")[1]
        node = str(kube.get(NODES, "leaky"))
        nodeclass = str(kube.get(NODECLASSES, "leaky-ec2"))
        events = str(kube.list(CORE_EVENTS)["items"])
    finally:
        process.terminate()
        process.close()
        kube.delete(SECRETS, secret_name, "default")
    log = process.log()
    entries = [json.loads(line) for line in log.splitlines()]  # --log-format json: one object per line
    failures = [e for e in entries if e.get("reason") == "MachineCreateFailed"]
    assert failures and failures[0]["object"] == "Node/leaky" and failures[0]["level"] == "warning"
    assert "AuthFailure" in log  # what was logged is the refusal ...
    assert "Signature=***" in log  # with the request's replayable signature masked too
    assert_none_leaked(  # ... never a credential
        (ACCESS_KEY, SECRET_KEY),
        {"log": log, "Node": node, "NodeClass": nodeclass, "Events": events, "metrics": metrics},
    )


def test_no_bootstrap_token_reaches_logs_events_annotations_status_or_metrics(
    control_plane: ControlPlane, kube: KubeClient, tmp_path: Path
) -> None:
    """The token kube-node mints for a machine lives only in its Secret and the machine's user-data."""
    nodeclass = simulator_nodeclass("joining", bootDelaySeconds="4")
    nodeclass["spec"]["userData"] = "#!/bin/sh\nkubeadm join --token ${BOOTSTRAP_TOKEN} ${API_SERVER}\n"
    kube.create(NODECLASSES, nodeclass)
    process = KubeNodeProcess(
        control_plane,
        tmp_path,
        "kube-node",
        *WATCHED,
        f"--simulator-dir={tmp_path / 'simulator'}",
    )
    try:
        kube.create(NODESETS, nodeset_manifest("joining", 2, "joining"))

        def minted() -> list[dict[str, Any]]:
            return list(kube.list(SECRETS, "kube-system", labelSelector=LABEL_BOOTSTRAP_TOKEN_NODE_UID)["items"])

        secrets = eventually(lambda: len(minted()) == 2 and minted(), timeout=60, what="a token for each machine")
        planted = []
        for secret in secrets:
            data = {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}
            planted += [f"{data['token-id']}.{data['token-secret']}", data["token-secret"]]
        eventually(
            lambda: not minted(),
            timeout=60,
            what="the tokens deleted once the Nodes are Ready",
        )
        metrics = process.get("/metrics")[1]
        nodes = str(kube.list(NODES)["items"])
        nodeset = str(kube.get(NODESETS, "joining"))
        events = str(kube.list(CORE_EVENTS)["items"])
    finally:
        process.terminate()
        process.close()
    log = process.log()
    assert "minted bootstrap token bootstrap-token-" in log  # the mint was logged, by its Secret's name ...
    assert_none_leaked(  # ... never the token
        planted, {"log": log, "Nodes": nodes, "NodeSet": nodeset, "Events": events, "metrics": metrics}
    )


SESSION_KEY_ID = f"ASIA{uuid.uuid4().hex[:16].upper()}"
SESSION_SECRET = f"kn-session-secret-{uuid.uuid4().hex}"
SESSION_TOKEN = f"kn-session-token-{uuid.uuid4().hex}"
WEB_IDENTITY_TOKEN = f"kn-web-identity-{uuid.uuid4().hex}"


class _LeakySts(_LeakyCloud):
    """STS that hands out session credentials for the web identity token, and an EC2 that refuses every call
    and, carelessly, quotes the session token and the signature it was sent."""

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()
        if "AssumeRoleWithWebIdentity" not in body:
            self._refuse()
            return
        assert WEB_IDENTITY_TOKEN in body
        reply = (
            '<AssumeRoleWithWebIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">'
            "<AssumeRoleWithWebIdentityResult><Credentials>"
            f"<AccessKeyId>{SESSION_KEY_ID}</AccessKeyId><SecretAccessKey>{SESSION_SECRET}</SecretAccessKey>"
            f"<SessionToken>{SESSION_TOKEN}</SessionToken><Expiration>2099-01-01T00:00:00Z</Expiration>"
            "</Credentials></AssumeRoleWithWebIdentityResult></AssumeRoleWithWebIdentityResponse>"
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/xml")
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)

    def do_GET(self) -> None:
        self._refuse()

    def _refuse(self) -> None:
        body = (
            "<Response><Errors><Error><Code>AuthFailure</Code><Message>request "
            f"{escape(self.path)} with token {escape(self.headers.get('X-Amz-Security-Token', ''))} and "
            f"{escape(self.headers.get('Authorization', ''))} refused</Message></Error></Errors>"
            "<RequestID>leak-test</RequestID></Response>"
        ).encode()
        self.send_response(401)
        self.send_header("Content-Type", "text/xml")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def test_no_web_identity_token_or_session_credential_leaks_either(
    control_plane: ControlPlane, kube: KubeClient, tmp_path: Path
) -> None:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _LeakySts)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = server.server_address[1]
    token_file = tmp_path / "web-identity-token"
    token_file.write_text(WEB_IDENTITY_TOKEN)
    kube.create(
        NODECLASSES,
        {
            "apiVersion": "kube-node.io/v1alpha1",
            "kind": "NodeClass",
            "metadata": {"name": "keyless-ec2"},
            "spec": {
                "provider": "ec2",  # no credentialsSecretRef: the process's web identity
                "size": "t3.micro",
                "image": "ami-0123456789abcdef0",
                "driverOptions": {"host": "127.0.0.1", "port": port, "secure": "false", "region": "eu-west-1"},
                "capacity": {"cpu": "2", "memory": "8Gi"},
            },
        },
    )
    env = {
        "AWS_ROLE_ARN": "arn:aws:iam::123456789012:role/kube-node",
        "AWS_WEB_IDENTITY_TOKEN_FILE": str(token_file),
        "AWS_ENDPOINT_URL_STS": f"http://127.0.0.1:{port}/",
    }
    process = KubeNodeProcess(
        control_plane,
        tmp_path,
        "kube-node",
        *WATCHED,
        env=env,
    )
    try:
        kube.create(NODES, managed_node("keyless", "keyless-ec2"))
        error = eventually(
            lambda: (kube.get(NODES, "keyless")["metadata"].get("annotations") or {}).get(ANNOTATION_MACHINE_ERROR),
            timeout=60,
            what="EC2's refusal recorded on the Node",
        )
        assert "AuthFailure" in error or "credentials" in error, error
        # EC2 was called with the session credentials from STS (and quoted them back), masked in the record
        assert "with token *** and AWS4-HMAC-SHA256 Credential=***/" in error, error
        metrics = process.get("/metrics")[1]
        node = str(kube.get(NODES, "keyless"))
        nodeclass = str(kube.get(NODECLASSES, "keyless-ec2"))
        events = str(kube.list(CORE_EVENTS)["items"])
    finally:
        process.terminate()
        process.close()
        server.shutdown()
        server.server_close()
    log = process.log()
    assert "AuthFailure" in log  # the refusal was logged, with what it quoted masked
    assert_none_leaked(
        (WEB_IDENTITY_TOKEN, SESSION_SECRET, SESSION_TOKEN),
        {"log": log, "Node": node, "NodeClass": nodeclass, "Events": events, "metrics": metrics},
    )
