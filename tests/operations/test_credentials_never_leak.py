"""A NodeClass's credentials never appear in kube-node's logs, Events, Node annotations or metrics, even when
the cloud echoes them back in an error (as clouds do with access key ids)."""

from __future__ import annotations

import http.server
import json
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from xml.sax.saxutils import escape

import pytest

from kube_node.controlplane import ControlPlane
from nodeset_controller.api import ANNOTATION_MACHINE_ERROR
from nodeset_controller.kube import NODECLASSES, NODES, SECRETS, KubeClient
from nodeset_controller.kube._events import CORE_EVENTS
from tests.conftest import eventually, managed_node

from ._process import KubeNodeProcess

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
        "--log-level=DEBUG",
        "--log-format=json",
        "--grpc-address=",
        "--no-leader-elect",
        "--sweep-interval=1",
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
    for credential in (ACCESS_KEY, SECRET_KEY):  # ... never a credential
        for where, text in (
            ("log", log),
            ("Node", node),
            ("NodeClass", nodeclass),
            ("Events", events),
            ("metrics", metrics),
        ):
            assert credential not in text, f"{credential[:6]}... leaked into the {where}"
