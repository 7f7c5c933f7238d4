"""The pure parts of join credentials: token ids, bootstrap group names, kubeadm's CA hash."""

from __future__ import annotations

import datetime
import hashlib
import re

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from nodeset_controller.controllers._join import (
    MAX_TOKENS_PER_NODE,
    ca_cert_hash,
    nodeclass_group,
    token_id,
    token_names,
)

# What the API server's bootstrap-token authenticator accepts (k8s.io/cluster-bootstrap).
TOKEN_ID = re.compile(r"^[a-z0-9]{6}$")
GROUP = re.compile(r"^system:bootstrappers:[a-z0-9:-]{0,255}[a-z0-9]$")


def test_token_ids_are_valid_derived_from_the_uid_and_distinct_per_node() -> None:
    ids = [token_id("5f0c3a4e-1111-2222-3333-444455556666", i) for i in range(MAX_TOKENS_PER_NODE)]
    assert all(TOKEN_ID.match(i) for i in ids), ids
    assert len(set(ids)) == len(ids)
    assert ids == [token_id("5f0c3a4e-1111-2222-3333-444455556666", i) for i in range(MAX_TOKENS_PER_NODE)]
    other = token_names("5f0c3a4e-1111-2222-3333-444455556667")
    assert not set(other) & {f"bootstrap-token-{i}" for i in ids}


def test_group_names_are_valid_bootstrap_groups_one_per_class() -> None:
    for name in ("sim", "gpu.v2", "a-b", "x" * 63):
        assert GROUP.match(nodeclass_group(name)), name
    assert nodeclass_group("gpu.v2") != nodeclass_group("gpu-v2")


def test_the_ca_hash_is_kubeadms_sha256_of_the_public_key() -> None:
    # kubeadm hashes the DER SubjectPublicKeyInfo (`openssl x509 -pubkey | openssl pkey -pubin -outform der`).
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(x509.oid.NameOID.COMMON_NAME, "test-ca")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    pem = certificate.public_bytes(serialization.Encoding.PEM)
    der = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    assert ca_cert_hash(pem) == "sha256:" + hashlib.sha256(der).hexdigest()
