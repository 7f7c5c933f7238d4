"""What a machine needs to join the cluster: the API server's address, its CA, and a bootstrap token of its own.

A NodeClass's user-data may name ``${API_SERVER}``, ``${CA_CERT_BASE64}``, ``${CA_CERT_HASH}`` (kubeadm's
``sha256:<hex>`` of the CA's public key, for discovery) and ``${BOOTSTRAP_TOKEN}``. For a user-data that names
the token, kube-node mints one per machine: a ``bootstrap-token-<id>`` Secret in kube-system (random id and
secret, an expiration of the Node's registration timeout, ``usage-bootstrap-authentication``, and the groups
``system:bootstrappers:kube-node`` and ``system:bootstrappers:kube-node:<nodeclass>``). A NodeClass then holds
no secret at all, and a token read from a machine's user-data joins at most that machine, and only until it
registers or the token expires.

kube-node never reads a Secret of kube-system: it may create and delete them, nothing more. So each token's
Secret name (``bootstrap-token-<id>``: the public half, which the API server also shows as the user
``system:bootstrap:<id>``) is written on the Node (``kube-node.io/bootstrap-tokens``) *before* the Secret is
created, and a crash at any point leaves no token that nothing will delete. The secret half is kept in memory
only, so a create retried by the same process reuses it while more than half of its life is left (the machine
of an earlier attempt may exist and carry it); after a restart a new one is minted beside the old, which stays
valid until it expires. Every token named on a Node is deleted once the Node is Ready (level-triggered: on any
reconcile that finds a Ready Node still naming tokens) and before its finalizer goes.

Whoever can write a Node's annotations could name any Secret there, so a token's id is not random but derived
from the Node's uid and a counter (:func:`token_id`; the id is the public half, the secret stays random), and
kube-node deletes only Secrets whose names it derives from that Node's uid: never another Node's token, nor
one made by anyone else.

The token's secret is never logged, put in an Event, an annotation, a metric or a status: it lives only in
the Secret and in the user-data handed to the cloud.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import logging
import secrets
import string
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import yaml
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from ..api import (
    ANNOTATION_BOOTSTRAP_TOKEN_NODE,
    ANNOTATION_BOOTSTRAP_TOKENS,
    LABEL_BOOTSTRAP_TOKEN_NODE_UID,
    now_rfc3339,
)
from ..kube import NODES, SECRETS, ApiError, KubeClient, NodeRecord
from ..providers import JOIN_VARIABLES

log = logging.getLogger(__name__)

TOKEN_NAMESPACE = "kube-system"
TOKEN_SECRET_TYPE = "bootstrap.kubernetes.io/token"
#: Every token kube-node mints carries this group; the chart binds bootstrapping to it.
BOOTSTRAP_GROUP = "system:bootstrappers:kube-node"

_ALPHABET = string.ascii_lowercase + string.digits
#: At most this many tokens per Node (a new one per restart of kube-node during the Node's registration).
MAX_TOKENS_PER_NODE = 32


def token_id(node_uid: str, index: int) -> str:
    """The id of the ``index``-th bootstrap token of the Node with ``node_uid``: 6 of [a-z0-9], from a hash."""
    digest = int.from_bytes(hashlib.sha256(f"kube-node:{node_uid}:{index}".encode()).digest(), "big")
    chars = []
    for _ in range(6):
        digest, remainder = divmod(digest, len(_ALPHABET))
        chars.append(_ALPHABET[remainder])
    return "".join(chars)


def token_names(node_uid: str) -> list[str]:
    """Every Secret name a token of this Node may have, in the order they are used."""
    return [f"bootstrap-token-{token_id(node_uid, i)}" for i in range(MAX_TOKENS_PER_NODE)]


def nodeclass_group(nodeclass: str) -> str:
    """The bootstrap group of the tokens minted for machines of ``nodeclass``. A bootstrap group may hold
    only ``[a-z0-9:-]`` (the API server ignores a token naming another), so the dots a NodeClass name may have
    become colons, which no NodeClass name has: one group per class."""
    return f"{BOOTSTRAP_GROUP}:{nodeclass.replace('.', ':')}"


def ca_cert_hash(ca_pem: bytes) -> str:
    """kubeadm's discovery hash of a CA: ``sha256:`` and the hex SHA-256 of its SubjectPublicKeyInfo (DER)."""
    certificate = x509.load_pem_x509_certificate(ca_pem)
    spki = certificate.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return "sha256:" + hashlib.sha256(spki).hexdigest()


@dataclass(frozen=True)
class ClusterEndpoint:
    """Where a new machine finds the API server, and the CA that signs its serving certificate."""

    api_server: str
    ca_pem: bytes
    source: str  #: where these came from, for the log

    @functools.cached_property
    def values(self) -> dict[str, str]:
        """The user-data variables it gives (the CA parsed once, not per machine)."""
        return {
            "API_SERVER": self.api_server,
            "CA_CERT_BASE64": base64.b64encode(self.ca_pem).decode(),
            "CA_CERT_HASH": ca_cert_hash(self.ca_pem),
        }


def discover_endpoint(client: KubeClient, api_server: str | None, ca_pem: bytes | None) -> ClusterEndpoint | None:
    """The API server and CA new machines use: what was configured (``api_server``, ``ca_pem``), filled in from
    the ``cluster-info`` ConfigMap of kube-public (which kubeadm publishes for exactly this), then from this
    process's own connection (its kubeconfig, or in a pod the service account's CA and the in-cluster address,
    which machines outside the cluster's network may not reach: set --join-api-server then). None when no CA
    can be found."""
    sources = ["configured"] if api_server or ca_pem else []
    if api_server is None or ca_pem is None:
        published = _cluster_info(client)
        if published is not None:
            api_server, ca_pem = api_server or published[0], ca_pem or published[1]
            sources.append("the cluster-info ConfigMap of kube-public")
    if api_server is None or ca_pem is None:
        own_ca = _own_ca(client)
        if api_server is None:
            api_server = client.host
        ca_pem = ca_pem or own_ca
        sources.append("this process's connection to the API server")
    if not ca_pem:
        return None
    return ClusterEndpoint(api_server, ca_pem, ", then ".join(sources))


def _cluster_info(client: KubeClient) -> tuple[str, bytes] | None:
    try:
        configmap = client.request("GET", "/api/v1/namespaces/kube-public/configmaps/cluster-info")
        kubeconfig = yaml.safe_load(configmap.get("data", {}).get("kubeconfig", "")) or {}
        cluster = kubeconfig["clusters"][0]["cluster"]
        return str(cluster["server"]), base64.b64decode(cluster["certificate-authority-data"])
    except ApiError as error:
        if not (error.not_found or error.status == 403):
            log.warning("reading kube-public/cluster-info: %s", error)
        return None
    except (KeyError, IndexError, TypeError, ValueError, yaml.YAMLError) as error:
        log.warning("kube-public/cluster-info holds no usable kubeconfig (%s); not using it", error)
        return None


def _own_ca(client: KubeClient) -> bytes | None:
    path = client.configuration.ssl_ca_cert
    if not path:
        return None
    try:
        with open(path, "rb") as file:
            return file.read()
    except OSError as error:
        log.warning("reading this process's CA %s: %s", path, error)
        return None


@dataclass(frozen=True)
class _Token:
    secret_name: str
    token: str
    created: float
    expires: float


def named_tokens(node: NodeRecord) -> list[str]:
    """The token Secrets written on ``node`` that are its own (see :func:`token_id`); any other name there is
    not kube-node's to delete, whoever wrote it."""
    named = [n for n in node.annotations.get(ANNOTATION_BOOTSTRAP_TOKENS, "").split(",") if n]
    if not named:
        return []  # most Nodes, on every reconcile: no hashing for them
    own = set(token_names(node.uid))
    foreign = [n for n in named if n not in own]
    if foreign:
        log.warning("Node %s names Secrets that are not its bootstrap tokens; ignoring %s", node.name, foreign)
    return [n for n in named if n in own]


class JoinCredentials:
    """Mints and deletes the per-machine bootstrap tokens, and gives a user-data its join variables."""

    def __init__(
        self,
        client: KubeClient,
        endpoint: Callable[[], ClusterEndpoint | None],
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._client = client
        self._endpoint = endpoint
        self._clock = clock
        self._lock = threading.Lock()
        #: the tokens this process minted, by Node uid, oldest first (the cache may not show them on the Node yet)
        self._minted: dict[str, list[_Token]] = {}

    def values(self, node: NodeRecord, nodeclass: str, ttl: float, names: Iterable[str]) -> dict[str, str]:
        """The join variables among ``names`` (those a user-data uses) for ``node``'s machine: a token is
        minted (or reused) only when ``BOOTSTRAP_TOKEN`` is among them. Raises JoinUnavailableError when
        the cluster's endpoint is unknown, ApiError when the token cannot be written."""
        wanted = set(names) & set(JOIN_VARIABLES)
        if not wanted:
            return {}
        values: dict[str, str] = {}
        if wanted - {"BOOTSTRAP_TOKEN"}:
            endpoint = self._endpoint()
            if endpoint is None:
                raise JoinUnavailableError(
                    "the user-data names the cluster's API server or CA, and kube-node knows no CA: set "
                    "--join-ca-file (and --join-api-server), or publish kube-public/cluster-info"
                )
            values |= endpoint.values
        if "BOOTSTRAP_TOKEN" in wanted:
            values["BOOTSTRAP_TOKEN"] = self._token_for(node, nodeclass, ttl).token
        return {k: v for k, v in values.items() if k in wanted}

    def _token_for(self, node: NodeRecord, nodeclass: str, ttl: float) -> _Token:
        now = self._clock()
        with self._lock:
            minted = list(self._minted.get(node.uid, ()))
        if minted and minted[-1].expires - now > (minted[-1].expires - minted[-1].created) / 2:
            return minted[-1]
        return self._mint(node, nodeclass, ttl)

    def _names(self, node: NodeRecord) -> list[str]:
        """The token Secrets of ``node``: named on it, or minted by this process (not in the cache yet)."""
        with self._lock:
            minted = [t.secret_name for t in self._minted.get(node.uid, ())]
        return list(dict.fromkeys([*named_tokens(node), *minted]))

    def _mint(self, node: NodeRecord, nodeclass: str, ttl: float) -> _Token:
        used = self._names(node)
        for index, name in enumerate(token_names(node.uid)):
            if name in used:
                continue
            # The name first: whatever happens next, the Secret is one that the Node names, and so gets deleted.
            used.append(name)
            self._name_tokens(node, used)
            try:
                return self._create(node, nodeclass, ttl, token_id(node.uid, index))
            except ApiError as error:
                if not error.already_exists:
                    raise
                used.remove(name)  # another Node's id, by a hash collision: never ours to delete; the next one
        raise JoinUnavailableError(
            f"Node {node.name} has had {MAX_TOKENS_PER_NODE} bootstrap tokens already; none is minted any more"
        )

    def _create(self, node: NodeRecord, nodeclass: str, ttl: float, token_id: str) -> _Token:
        token_secret = "".join(secrets.choice(_ALPHABET) for _ in range(16))
        created = self._clock()
        expires = created + ttl
        name = f"bootstrap-token-{token_id}"
        body = {
            "apiVersion": "v1",
            "kind": "Secret",
            "type": TOKEN_SECRET_TYPE,
            "metadata": {
                "name": name,
                "namespace": TOKEN_NAMESPACE,
                "labels": {LABEL_BOOTSTRAP_TOKEN_NODE_UID: node.uid},
                "annotations": {ANNOTATION_BOOTSTRAP_TOKEN_NODE: node.name},
            },
            "stringData": {
                "description": f"kube-node: joins the machine of Node {node.name} (NodeClass {nodeclass})",
                "token-id": token_id,
                "token-secret": token_secret,
                "expiration": now_rfc3339(at=expires),
                "usage-bootstrap-authentication": "true",
                "auth-extra-groups": f"{BOOTSTRAP_GROUP},{nodeclass_group(nodeclass)}",
            },
        }
        self._client.create(SECRETS, body, namespace=TOKEN_NAMESPACE)
        token = _Token(name, f"{token_id}.{token_secret}", created, expires)
        with self._lock:
            self._minted.setdefault(node.uid, []).append(token)
        log.info("minted bootstrap token %s for Node %s, valid for %.0f s", name, node.name, ttl)
        return token

    def holds_tokens(self, node: NodeRecord) -> bool:
        """Whether ``node`` has tokens to delete."""
        return bool(self._names(node))

    def release(self, node: NodeRecord, why: str) -> int:
        """Delete every token named on ``node`` (it is Ready, or going), then its record of them. Returns how
        many Secrets were deleted."""
        names = self._names(node)
        if not names:
            return 0
        deleted = 0
        for name in names:
            try:
                self._client.delete(SECRETS, name, TOKEN_NAMESPACE)
                deleted += 1
            except ApiError as error:
                if not error.not_found:
                    raise
        if not node.deleting:
            self._name_tokens(node, [])
        with self._lock:
            self._minted.pop(node.uid, None)
        log.info("deleted the bootstrap tokens of Node %s (%s): %s", node.name, why, ", ".join(names))
        return deleted

    def _name_tokens(self, node: NodeRecord, names: list[str]) -> None:
        """Write the token names on the Node: only this annotation, bound to the Node's uid."""
        annotations = {ANNOTATION_BOOTSTRAP_TOKENS: ",".join(names) or None}
        self._client.patch(NODES, node.name, {"metadata": {"uid": node.uid, "annotations": annotations}})


class JoinUnavailableError(RuntimeError):
    """A user-data names a join variable kube-node cannot provide."""
