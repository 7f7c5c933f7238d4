"""Approving the kubelet serving certificates of kube-node's Nodes, when they name only what the machine is.

A kubelet asks for its serving certificate (signer ``kubernetes.io/kubelet-serving``) with a CSR listing the
DNS names and IP addresses it answers on, and Kubernetes leaves its approval to someone who knows the machine:
the kubelet's own word is what is being checked. kube-node made the machine, so it approves a CSR only when
all of these hold, and otherwise leaves it pending (for a person, or another approver) and says why in a
Warning Event on the Node, once per CSR:

- it was sent by the Node's own kubelet: user ``system:node:<name>`` in group ``system:nodes``, and the
  request's subject is that same user in organization ``system:nodes`` alone;
- the Node is one kube-node manages (labelled with a NodeClass) and its machine is recorded;
- every DNS name is the Node's name, every IP address is one the provider reports for the machine (a fresh
  ``get``: not the Node's status, which the kubelet writes itself), and there are no e-mail or URI names;
- the usages are ``server auth`` and ``digital signature``, optionally ``key encipherment``, nothing else.
"""

from __future__ import annotations

import base64
import ipaddress
import logging
import threading
from dataclasses import dataclass, field
from typing import Any

from cryptography import x509
from cryptography.x509.oid import NameOID

from ..api import ANNOTATION_MACHINE_ID, LABEL_NODECLASS, NodeClass
from ..kube import (
    ApiError,
    EventRecorder,
    Informer,
    KubeClient,
    NodeRecord,
    ObjectReference,
    Resource,
    Result,
    WorkQueue,
    run_workers,
)
from ..providers import ProviderError, ProviderRegistry, machine_name

log = logging.getLogger(__name__)

CSRS = Resource("certificates.k8s.io", "v1", "certificatesigningrequests")
SERVING_SIGNER = "kubernetes.io/kubelet-serving"
_NODE_USER_PREFIX = "system:node:"
_NODES_GROUP = "system:nodes"
_REQUIRED_USAGES = frozenset({"server auth", "digital signature"})
_ALLOWED_USAGES = _REQUIRED_USAGES | {"key encipherment"}


@dataclass(frozen=True)
class ServingCSR:
    """The part of a CertificateSigningRequest the approver reads."""

    name: str
    username: str
    groups: tuple[str, ...]
    signer: str
    usages: frozenset[str]
    request: bytes = field(repr=False)
    decided: bool  #: approved or denied already (or failed)

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> ServingCSR:
        spec = obj.get("spec") or {}
        conditions = (obj.get("status") or {}).get("conditions") or []
        return cls(
            name=obj["metadata"]["name"],
            username=spec.get("username", ""),
            groups=tuple(spec.get("groups") or ()),
            signer=spec.get("signerName", ""),
            usages=frozenset(spec.get("usages") or ()),
            request=base64.b64decode(spec.get("request", "")),
            decided=any(c.get("type") in ("Approved", "Denied", "Failed") for c in conditions),
        )


def serving_csr_informer(client: KubeClient, read_timeout: float) -> Informer[ServingCSR]:
    """The kubelet serving CSRs of the cluster (their signer as a field selector)."""
    return Informer(
        client,
        CSRS,
        ServingCSR.from_json,
        field_selector=f"spec.signerName={SERVING_SIGNER}",
        read_timeout=read_timeout,
        name="serving-csrs",
    )


class ServingCertificateApprover:
    """Approves the serving CSRs of kube-node's Nodes whose names and addresses are their machine's."""

    def __init__(
        self,
        client: KubeClient,
        csrs: Informer[ServingCSR],
        nodes: Informer[NodeRecord],
        nodeclasses: Informer[NodeClass],
        *,
        providers: ProviderRegistry,
        recorder: EventRecorder,
        workers: int = 2,
    ) -> None:
        self._client = client
        self._csrs = csrs
        self._nodes = nodes
        self._nodeclasses = nodeclasses
        self._providers = providers
        self._recorder = recorder
        self._workers = workers
        self.queue = WorkQueue("serving-csr-approver")
        self._told: set[str] = set()  # CSRs a Node was told it did not get approved
        self._lock = threading.Lock()
        csrs.add_handler(self._on_csr)

    def _on_csr(self, old: ServingCSR | None, new: ServingCSR | None) -> None:
        csr = new or old
        if csr is not None:
            self.queue.add(csr.name)

    def start(self, stop: threading.Event) -> list[threading.Thread]:
        """Start the workers; they run until ``stop`` is set."""
        for csr in self._csrs.list():
            self.queue.add(csr.name)
        threads = run_workers(self.queue, self.reconcile, self._workers, stop)

        def shutdown_on_stop() -> None:
            stop.wait()
            self.queue.shutdown()

        threading.Thread(target=shutdown_on_stop, name="serving-csr-approver-stop", daemon=True).start()
        return threads

    def reconcile(self, name: str) -> Result | None:
        """Approve CSR ``name`` if it is a serving CSR of one of kube-node's Nodes that names only its machine."""
        csr = self._csrs.get(name)
        if csr is None or csr.decided or csr.signer != SERVING_SIGNER:
            return None
        if not csr.username.startswith(_NODE_USER_PREFIX) or _NODES_GROUP not in csr.groups:
            return None  # not a kubelet's: not ours to judge
        node = self._nodes.get(csr.username.removeprefix(_NODE_USER_PREFIX))
        if node is None or LABEL_NODECLASS not in node.labels:
            return None  # not a Node kube-node manages
        if ANNOTATION_MACHINE_ID not in node.annotations:
            return Result(requeue_after=2.0)  # its machine is about to be recorded
        try:
            why = self._mismatch(csr, node)
        except ProviderError as error:
            log.warning("serving CSR %s of Node %s: reading its machine: %s", name, node.name, error)
            return Result(backoff=True)
        if why is not None:
            with self._lock:
                first = name not in self._told
                self._told.add(name)
            if first:
                log.warning("serving CSR %s of Node %s not approved: %s", name, node.name, why)
                self._recorder.event(
                    ObjectReference("Node", node.name, node.uid),
                    "Warning",
                    "ServingCertificateNotApproved",
                    f"kubelet serving CSR {name} left pending: {why}",
                )
            return None
        return self._approve(name, node)

    def _mismatch(self, csr: ServingCSR, node: NodeRecord) -> str | None:
        """Why ``csr`` is not what ``node``'s machine is (None: it is)."""
        try:
            request = x509.load_pem_x509_csr(csr.request)
        except ValueError as error:
            return f"its request is not a PEM certificate request ({error})"
        names = [a.value for a in request.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
        organizations = [a.value for a in request.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)]
        if names != [csr.username] or organizations != [_NODES_GROUP]:
            return f"its subject is {request.subject.rfc4514_string()}, not CN={csr.username},O={_NODES_GROUP}"
        if not _REQUIRED_USAGES <= csr.usages <= _ALLOWED_USAGES:
            return f"its usages are {sorted(csr.usages)}, not server auth and digital signature (key encipherment)"
        try:
            sans = request.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        except x509.ExtensionNotFound:
            return "it names no DNS name or IP address"
        if sans.get_values_for_type(x509.RFC822Name) or sans.get_values_for_type(x509.UniformResourceIdentifier):
            return "it asks for e-mail or URI names"
        dns = set(sans.get_values_for_type(x509.DNSName))
        if dns - {node.name}:
            return f"it names DNS {sorted(dns - {node.name})}, and the Node is {node.name}"
        ips = {str(ip) for ip in sans.get_values_for_type(x509.IPAddress)}
        if not ips and not dns:
            return "it names no DNS name or IP address"
        if ips:
            nodeclass = self._nodeclasses.get(node.labels[LABEL_NODECLASS])
            if nodeclass is None:
                return f"its NodeClass {node.labels[LABEL_NODECLASS]} does not exist, so its machine is unknown"
            machine = self._providers.provider_for(nodeclass).get(machine_name(node.name, node.uid))
            if machine is None:
                return "its machine no longer exists"
            known = {str(ipaddress.ip_address(ip)) for ip in (*machine.private_ips, *machine.public_ips)}
            if ips - known:
                return f"it names addresses {sorted(ips - known)} that its machine does not have ({sorted(known)})"
        return None

    def _approve(self, name: str, node: NodeRecord) -> Result | None:
        try:
            current = self._client.get(CSRS, name)
            conditions = (current.get("status") or {}).get("conditions") or []
            if any(c.get("type") in ("Approved", "Denied", "Failed") for c in conditions):
                return None
            current.setdefault("status", {})["conditions"] = [
                *conditions,
                {
                    "type": "Approved",
                    "status": "True",
                    "reason": "KubeNodeMachineMatches",
                    "message": f"kube-node: the names and addresses are those of Node {node.name}'s machine",
                },
            ]
            self._client.replace(CSRS, name, current, subresource="approval")
        except ApiError as error:
            if error.not_found:
                return None
            if error.conflict:
                return Result(requeue_after=0.5)
            raise
        log.info("approved kubelet serving CSR %s of Node %s", name, node.name)
        self._recorder.event(
            ObjectReference("Node", node.name, node.uid),
            "Normal",
            "ServingCertificateApproved",
            f"approved kubelet serving CSR {name}: its names and addresses are the machine's",
        )
        return None
