"""Each machine joins with a bootstrap token of its own, minted by kube-node and deleted once the Node is Ready
or gone; the user-data also learns where the API server is and which CA to trust (NodeController + simulator,
the tokens checked against the real API server's bootstrap-token authenticator)."""

from __future__ import annotations

import base64
import hashlib
import json
import ssl
import time
import urllib.error
import urllib.request
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from kube_node.controlplane import ControlPlane
from nodeset_controller.api import (
    ANNOTATION_BOOTSTRAP_TOKEN_NODE,
    ANNOTATION_BOOTSTRAP_TOKENS,
    ANNOTATION_MACHINE_ERROR,
    ANNOTATION_MACHINE_ID,
    LABEL_BOOTSTRAP_TOKEN_NODE_UID,
    now_rfc3339,
    parse_time,
)
from nodeset_controller.controllers import Manager
from nodeset_controller.controllers._join import token_id
from nodeset_controller.kube import NODECLASSES, NODES, NODESETS, SECRETS, KubeClient
from nodeset_controller.providers import machine_name
from tests.conftest import eventually, managed_node, nodeset_manifest, simulator_nodeclass

pytestmark = pytest.mark.controlplane

JOIN_USER_DATA = (
    "#!/bin/sh\n"
    "TOKEN=${BOOTSTRAP_TOKEN}\n"
    "SERVER=${API_SERVER}\n"
    "CA=${CA_CERT_BASE64}\n"
    "HASH=${CA_CERT_HASH}\n"
    "NAME=${NODE_NAME}\n"
)


def join_nodeclass(name: str = "sim", user_data: str = JOIN_USER_DATA, **driver_options: Any) -> dict[str, Any]:
    manifest = simulator_nodeclass(name, **driver_options)
    manifest["spec"]["userData"] = user_data
    return manifest


def rendered(manager: Manager, node: dict[str, Any]) -> dict[str, str]:
    """The variables of the user-data the machine of ``node`` was created with."""
    assert manager.simulator is not None
    machine = manager.simulator.get(machine_name(node["metadata"]["name"], node["metadata"]["uid"]))
    assert machine is not None, "no machine"
    lines = machine.spec["userData"].splitlines()[1:]
    return dict(line.split("=", 1) for line in lines)


def tokens(kube: KubeClient, uid: str | None = None) -> list[dict[str, Any]]:
    selector = LABEL_BOOTSTRAP_TOKEN_NODE_UID + (f"={uid}" if uid else "")
    return list(kube.list(SECRETS, "kube-system", labelSelector=selector)["items"])


def decoded(secret: dict[str, Any]) -> dict[str, str]:
    return {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}


def whoami(control_plane: ControlPlane, bearer: str) -> dict[str, Any]:
    """The API server's own answer to who this bearer token is (a SelfSubjectReview)."""
    context = ssl.create_default_context(cafile=str(control_plane.pki / "serving-ca.crt"))
    request = urllib.request.Request(
        control_plane.server + "/apis/authentication.k8s.io/v1/selfsubjectreviews",
        data=json.dumps({"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"}).encode(),
        headers={"Authorization": f"Bearer {bearer}", "Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, context=context, timeout=10) as response:
        review: dict[str, Any] = json.loads(response.read())
    return dict(review["status"]["userInfo"])


def refused(control_plane: ControlPlane, bearer: str) -> bool:
    try:
        whoami(control_plane, bearer)
    except urllib.error.HTTPError as error:
        return error.code == 401
    return False


def spki_hash(pem: bytes) -> str:
    key = x509.load_pem_x509_certificate(pem).public_key()
    der = key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return "sha256:" + hashlib.sha256(der).hexdigest()


def test_a_machine_gets_its_own_token_that_the_api_server_accepts_and_that_goes_once_the_node_is_ready(
    control_plane: ControlPlane, kube: KubeClient, manager: Manager
) -> None:
    kube.create(NODECLASSES, join_nodeclass(bootDelaySeconds="5"))
    kube.create(NODESETS, nodeset_manifest("join", 2, replacement={"registrationTimeoutSeconds": 600}))

    def with_machines() -> list[dict[str, Any]] | None:
        nodes = kube.list(NODES)["items"]
        recorded = [n for n in nodes if ANNOTATION_MACHINE_ID in (n["metadata"].get("annotations") or {})]
        return recorded if len(recorded) == 2 else None

    nodes = eventually(with_machines, what="two Nodes with machines")
    minted_at = time.time()
    seen: dict[str, str] = {}
    for node in nodes:
        uid = node["metadata"]["uid"]
        (secret,) = eventually(lambda u=uid: tokens(kube, u), what="the Node's token")
        data = decoded(secret)
        assert secret["type"] == "bootstrap.kubernetes.io/token"
        assert secret["metadata"]["name"] == f"bootstrap-token-{data['token-id']}"
        assert secret["metadata"]["annotations"][ANNOTATION_BOOTSTRAP_TOKEN_NODE] == node["metadata"]["name"]
        # The Node names its token's Secret (the public half), never the token.
        named = kube.get(NODES, node["metadata"]["name"])["metadata"]["annotations"][ANNOTATION_BOOTSTRAP_TOKENS]
        assert named == secret["metadata"]["name"]
        assert data["usage-bootstrap-authentication"] == "true"
        assert data["auth-extra-groups"] == "system:bootstrappers:kube-node,system:bootstrappers:kube-node:sim"
        # Expires after the NodeSet's registration timeout, not some fixed default.
        expires = parse_time(data["expiration"])
        assert expires is not None and 600 - 30 < expires - minted_at <= 600 + 5, data["expiration"]
        values = rendered(manager, node)
        token = f"{data['token-id']}.{data['token-secret']}"
        assert values["TOKEN"] == token
        assert values["NAME"] == node["metadata"]["name"]
        seen[node["metadata"]["name"]] = token
        # The API server knows the token: it authenticates as a bootstrapper in kube-node's groups.
        user = whoami(control_plane, token)
        assert user["username"] == f"system:bootstrap:{data['token-id']}", user
        assert {"system:bootstrappers", "system:bootstrappers:kube-node", "system:bootstrappers:kube-node:sim"} <= set(
            user["groups"]
        ), user
        # Where to join, and the CA to trust, as kubeadm's discovery wants them.
        ca = (control_plane.pki / "serving-ca.crt").read_bytes()
        assert values["SERVER"] == control_plane.server
        assert base64.b64decode(values["CA"]) == ca
        assert values["HASH"] == spki_hash(ca)
    assert len(set(seen.values())) == 2, "each machine has a token of its own"

    # Once the simulated kubelets report Ready, the tokens are gone, and the API server refuses them.
    eventually(lambda: not tokens(kube), timeout=30, what="the tokens deleted after the Nodes turned Ready")
    for token in seen.values():  # the authenticator reads Secrets from its own cache: soon after
        eventually(lambda t=token: refused(control_plane, t), timeout=10, what="the API server to refuse the token")


def test_a_retried_create_reuses_the_token_and_a_deleted_node_takes_its_tokens_along(
    kube: KubeClient, manager: Manager
) -> None:
    # Every create refused (quota): the create is retried with backoff, with the same token each time.
    kube.create(NODECLASSES, join_nodeclass(createFailureRate="1"))
    node = kube.create(NODES, managed_node("retried"))
    eventually(
        lambda: ANNOTATION_MACHINE_ERROR in (kube.get(NODES, "retried")["metadata"].get("annotations") or {}),
        what="the refused create recorded",
    )
    first = eventually(lambda: tokens(kube, node["metadata"]["uid"]), what="the token")
    simulator = manager.simulator
    assert simulator is not None
    eventually(
        lambda: sum(1 for c in simulator.calls() if c.operation == "create") >= 3, timeout=30, what="three creates"
    )
    again = tokens(kube, node["metadata"]["uid"])
    assert [s["metadata"]["name"] for s in again] == [s["metadata"]["name"] for s in first], "one token for all tries"

    kube.delete(NODES, "retried")
    eventually(lambda: not tokens(kube), what="the token deleted with its Node")


def test_a_user_data_without_the_token_mints_none(kube: KubeClient, manager: Manager) -> None:
    kube.create(NODECLASSES, join_nodeclass(user_data="#!/bin/sh\nSERVER=${API_SERVER}\n"))
    node = kube.create(NODES, managed_node("no-token"))
    eventually(
        lambda: (kube.get(NODES, "no-token")["metadata"].get("annotations") or {}).get(ANNOTATION_MACHINE_ID),
        what="the machine",
    )
    assert rendered(manager, node)["SERVER"]
    assert tokens(kube) == []


def test_tokens_named_on_a_node_by_an_earlier_process_are_deleted_once_it_is_ready_and_no_other_secret(
    kube: KubeClient, manager: Manager
) -> None:
    """What a crashed kube-node minted is found through the Node, never by reading kube-system's Secrets; and a
    Secret that anyone else named on the Node is not kube-node's to delete."""

    def plant(name: str) -> None:
        kube.create(
            SECRETS,
            {
                "metadata": {"name": name, "labels": {LABEL_BOOTSTRAP_TOKEN_NODE_UID: "planted"}},
                "type": "bootstrap.kubernetes.io/token",
                "stringData": {
                    "token-id": name.removeprefix("bootstrap-token-"),
                    "token-secret": "0123456789abcdef",
                    "expiration": now_rfc3339(at=time.time() + 600),
                    "usage-bootstrap-authentication": "true",
                },
            },
            namespace="kube-system",
        )

    # The NodeClass comes last, so that nothing happens to the Node until it names its tokens.
    node = kube.create(NODES, managed_node("earlier"))
    uid = node["metadata"]["uid"]
    own, never_created = (f"bootstrap-token-{token_id(uid, i)}" for i in (0, 1))
    foreign = "bootstrap-token-foreig"
    plant(own)
    plant(foreign)
    # As _join writes it before creating each Secret, and as a crash would leave it (one Secret never made),
    # with a name that is not this Node's slipped in by whoever may write its annotations.
    names = f"{own},{foreign},{never_created}"
    kube.patch(NODES, "earlier", {"metadata": {"annotations": {ANNOTATION_BOOTSTRAP_TOKENS: names}}})
    kube.create(NODECLASSES, simulator_nodeclass())
    eventually(
        lambda: ANNOTATION_BOOTSTRAP_TOKENS not in (kube.get(NODES, "earlier")["metadata"].get("annotations") or {}),
        timeout=30,
        what="the Node's record of its tokens cleared once it is Ready",
    )
    assert [s["metadata"]["name"] for s in tokens(kube)] == [foreign], "its own token deleted, no other"
