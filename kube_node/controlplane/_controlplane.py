"""A real local Kubernetes control plane on loopback: etcd, kube-apiserver, and on demand kube-scheduler and
kube-controller-manager, with generated certificates, RBAC and service-account signing keys."""

from __future__ import annotations

import base64
import json
import logging
import shutil
import ssl
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from ._binaries import Binaries, find_binaries
from ._certs import CertificateAuthority, KeyPair, write_service_account_keys
from ._processes import ControlPlaneError, Process, free_port, stop_all, wait_until

log = logging.getLogger(__name__)

#: The user of the admin kubeconfig; in group system:masters, so RBAC allows it everything.
ADMIN_USER = "kube-node-admin"
SERVICE_CLUSTER_IP_RANGE = "10.0.0.0/24"
SERVICE_ACCOUNT_ISSUER = "https://kubernetes.default.svc.cluster.local"


#: Every change, at Metadata level (no bodies), once its response is complete; nothing else.
_AUDIT_POLICY: dict[str, Any] = {
    "apiVersion": "audit.k8s.io/v1",
    "kind": "Policy",
    "omitStages": ["RequestReceived", "ResponseStarted"],
    "rules": [
        {"level": "Metadata", "verbs": ["create", "update", "patch", "delete", "deletecollection"]},
        {"level": "None"},
    ],
}


class ControlPlane:
    """etcd and kube-apiserver (and on request kube-scheduler and kube-controller-manager) on 127.0.0.1.

    Everything lives in ``workdir`` (a new temporary directory unless given): etcd's data, certificates,
    kubeconfigs and one log file per component. ``start()`` returns once the API server is ready;
    ``stop()`` stops the components in a safe order and leaves no process behind. Use it as a context
    manager, or call ``stop()`` in a ``finally``. With ``audit``, the API server writes every mutating
    request (who, user agent, verb, object, response code, timestamps; no bodies) to ``audit_log``.
    """

    def __init__(
        self,
        workdir: Path | None = None,
        *,
        binaries: Binaries | None = None,
        tied: bool = True,
        client_qps: int = 500,
        apiserver_flags: Sequence[str] = (),
        audit: bool = False,
    ) -> None:
        """``apiserver_flags`` (``--name=value``) are added to kube-apiserver's, replacing a default flag of the
        same name (``--max-requests-inflight=4``, ``--watch-cache=false``)."""
        self._own_workdir = workdir is None
        self.workdir = Path(tempfile.mkdtemp(prefix="kube-node-cp-")) if workdir is None else workdir
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.binaries = binaries or find_binaries()
        self._tied = tied
        self._client_qps = client_qps
        self._audit = audit
        self._etcd: Process | None = None
        self._apiserver: Process | None = None
        self._scheduler: Process | None = None
        self._controller_manager: Process | None = None
        self._apiserver_flags = list(apiserver_flags)
        self._etcd_args: list[str] = []
        self._apiserver_args: list[str] = []
        self._etcd_url = ""
        self.port = 0
        self.startup_seconds = 0.0

    # -- paths -------------------------------------------------------------------------------------------

    @property
    def pki(self) -> Path:
        """Directory of certificates and keys."""
        return self.workdir / "pki"

    @property
    def logdir(self) -> Path:
        """Directory of the components' log files."""
        return self.workdir / "logs"

    @property
    def audit_log(self) -> Path:
        """The API server's audit log (JSON lines), when started with ``audit``."""
        return self.logdir / "audit.log"

    def audit_events(self) -> list[dict[str, Any]]:
        """Every event in the audit log so far, oldest first (ResponseComplete or Panic stage, Metadata level)."""
        if not self.audit_log.exists():
            return []
        return [json.loads(line) for line in self.audit_log.read_text().splitlines() if line.strip()]

    @property
    def kubeconfig(self) -> Path:
        """The admin kubeconfig (user in system:masters)."""
        return self.workdir / "kubeconfig"

    @property
    def server(self) -> str:
        """The API server's URL."""
        return f"https://127.0.0.1:{self.port}"

    @property
    def etcd_url(self) -> str:
        """etcd's client URL (plain HTTP on loopback)."""
        return self._etcd_url

    @property
    def processes(self) -> list[Process]:
        """The running components, in the order they must be stopped (etcd last)."""
        ordered = [self._controller_manager, self._scheduler, self._apiserver, self._etcd]
        return [p for p in ordered if p is not None]

    @property
    def pids(self) -> list[int]:
        """Process ids of the running components."""
        return [p.pid for p in self.processes]

    # -- lifecycle ---------------------------------------------------------------------------------------

    def __enter__(self) -> ControlPlane:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        """Start etcd and kube-apiserver and wait until the API server is ready."""
        started = time.monotonic()
        self.pki.mkdir(exist_ok=True)
        self.logdir.mkdir(exist_ok=True)
        try:
            self._write_pki()
            self._start_etcd()
            self._start_apiserver()
        except BaseException:
            self.stop()
            raise
        self.startup_seconds = time.monotonic() - started
        log.info("control plane ready at %s in %.1f s", self.server, self.startup_seconds)

    def start_scheduler(self) -> None:
        """Start kube-scheduler (once) and wait until it is healthy."""
        if self._scheduler is not None:
            return
        port = free_port()
        config = self.workdir / "scheduler.yaml"
        config.write_text(
            yaml.safe_dump(
                {
                    "apiVersion": "kubescheduler.config.k8s.io/v1",
                    "kind": "KubeSchedulerConfiguration",
                    "clientConnection": {
                        "kubeconfig": str(self._component_kubeconfig("scheduler")),
                        "qps": self._client_qps,
                        "burst": self._client_qps * 2,
                    },
                    "leaderElection": {"leaderElect": False},
                }
            )
        )
        self._scheduler = Process(
            "kube-scheduler",
            [
                str(self.binaries.kube_scheduler),
                f"--config={config}",
                "--bind-address=127.0.0.1",
                f"--secure-port={port}",
                f"--cert-dir={self.workdir / 'scheduler-certs'}",
                "--v=1",
            ],
            self.logdir,
            tied=self._tied,
        )
        self._wait_healthy(self._scheduler, port)

    def start_controller_manager(self) -> None:
        """Start kube-controller-manager (once) and wait until it is healthy."""
        if self._controller_manager is not None:
            return
        port = free_port()
        self._controller_manager = Process(
            "kube-controller-manager",
            [
                str(self.binaries.kube_controller_manager),
                f"--kubeconfig={self._component_kubeconfig('controller-manager')}",
                "--leader-elect=false",
                "--bind-address=127.0.0.1",
                f"--secure-port={port}",
                f"--cert-dir={self.workdir / 'controller-manager-certs'}",
                f"--service-account-private-key-file={self.pki / 'sa.key'}",
                f"--root-ca-file={self.pki / 'serving-ca.crt'}",
                "--use-service-account-credentials=true",
                f"--kube-api-qps={self._client_qps}",
                f"--kube-api-burst={self._client_qps * 2}",
                f"--service-cluster-ip-range={SERVICE_CLUSTER_IP_RANGE}",
                # As a real cluster has it: kubelets' CSRs (TLS bootstrap, rotation) are signed with the client
                # CA the API server trusts; bootstrap tokens sign kube-public/cluster-info and expire.
                f"--cluster-signing-cert-file={self.pki / 'client-ca.crt'}",
                f"--cluster-signing-key-file={self.pki / 'client-ca.key'}",
                "--controllers=*,bootstrapsigner,tokencleaner",
                # The node lifecycle controller removes the not-ready taint of a Node that turned Ready on its
                # next pass, every 5 s by default; a local control plane looks every second.
                "--node-monitor-period=1s",
                "--v=1",
            ],
            self.logdir,
            tied=self._tied,
        )
        self._wait_healthy(self._controller_manager, port)

    def restart_apiserver(self, *, kill: bool = False, downtime: float = 0.0) -> float:
        """Stop kube-apiserver (SIGTERM, or SIGKILL with ``kill``: a crash), wait ``downtime`` seconds, and start
        it again in place: same port, flags, certificates and etcd. Returns once it is ready again, with the
        seconds it was unreachable (from the stop to ready)."""
        assert self._apiserver is not None, "the API server is not running"
        started = time.monotonic()
        self._stop_component(self._apiserver, kill)
        self._apiserver = None
        time.sleep(downtime)
        self._spawn_apiserver()
        return time.monotonic() - started

    def restart_etcd(self, *, kill: bool = False, downtime: float = 0.0) -> float:
        """Stop etcd (SIGTERM, or SIGKILL with ``kill``), wait ``downtime`` seconds, and start it again on the same
        data directory and ports. Returns once etcd is healthy and the API server is ready again, with the
        seconds from the stop to then."""
        assert self._etcd is not None, "etcd is not running"
        started = time.monotonic()
        self._stop_component(self._etcd, kill)
        self._etcd = None
        time.sleep(downtime)
        etcd = self._spawn_etcd()
        if self._apiserver is not None:
            wait_until("kube-apiserver to be ready again", self._apiserver_ready, 60, [etcd, self._apiserver])
        return time.monotonic() - started

    def etcd_revision(self) -> int:
        """etcd's current revision (what the API server calls the newest resourceVersion)."""
        return int(self._etcd_call("/v3/kv/range", {"key": base64.b64encode(b"/").decode()})["header"]["revision"])

    def compact_etcd(self, revision: int | None = None) -> int:
        """Compact etcd's history up to ``revision`` (default: the current one), as the API server does every
        5 minutes: a watch or list from an older resourceVersion then fails with 410 Gone. Returns the revision."""
        revision = self.etcd_revision() if revision is None else revision
        self._etcd_call("/v3/kv/compaction", {"revision": str(revision), "physical": True})
        return revision

    def stop(self) -> None:
        """Stop every component, API clients first and etcd last; SIGKILL whatever lingers."""
        stop_all(self.processes)
        self._controller_manager = self._scheduler = self._apiserver = self._etcd = None

    def cleanup(self) -> None:
        """Stop, and remove the working directory if this object created it."""
        self.stop()
        if self._own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    # -- clients -----------------------------------------------------------------------------------------

    def kubeconfig_dict(self, user: str = ADMIN_USER, pair: KeyPair | None = None) -> dict[str, Any]:
        """A kubeconfig for this API server with the given client certificate (the admin's by default)."""
        pair = pair or KeyPair(self.pki / "admin.crt", self.pki / "admin.key")

        def b64(path: Path) -> str:
            return base64.b64encode(path.read_bytes()).decode()

        return {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": "kube-node-local",
                    "cluster": {"server": self.server, "certificate-authority-data": b64(self.pki / "serving-ca.crt")},
                }
            ],
            "users": [
                {"name": user, "user": {"client-certificate-data": b64(pair.cert), "client-key-data": b64(pair.key)}}
            ],
            "contexts": [{"name": "kube-node-local", "context": {"cluster": "kube-node-local", "user": user}}],
            "current-context": "kube-node-local",
        }

    def ssl_context(self) -> ssl.SSLContext:
        """A TLS context that trusts this API server and presents the admin certificate."""
        context = ssl.create_default_context(cafile=str(self.pki / "serving-ca.crt"))
        context.load_cert_chain(str(self.pki / "admin.crt"), str(self.pki / "admin.key"))
        return context

    def get(self, path: str, accept: str = "application/json", timeout: float = 5.0) -> bytes:
        """GET ``path`` from the API server as the admin, returning the raw body."""
        request = urllib.request.Request(self.server + path, headers={"Accept": accept})
        with urllib.request.urlopen(request, context=self.ssl_context(), timeout=timeout) as response:
            body: bytes = response.read()
            return body

    # -- internals ---------------------------------------------------------------------------------------

    def _write_pki(self) -> None:
        serving_ca = CertificateAuthority("kube-node-local-serving-ca")
        serving_ca.write(self.pki / "serving-ca.crt")
        serving_ca.issue(
            self.pki,
            "apiserver",
            common_name="kube-apiserver",
            server=True,
            dns_names=("localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc"),
            ip_addresses=("127.0.0.1", "10.0.0.1"),
        )
        client_ca = CertificateAuthority("kube-node-local-client-ca")
        client_ca.write(self.pki / "client-ca.crt")
        # The controller-manager's csrsigning controller issues kubelets' client certificates from it.
        client_ca.write_key(self.pki / "client-ca.key")
        client_ca.issue(self.pki, "admin", common_name=ADMIN_USER, organizations=("system:masters",), client=True)
        client_ca.issue(self.pki, "scheduler", common_name="system:kube-scheduler", client=True)
        client_ca.issue(self.pki, "controller-manager", common_name="system:kube-controller-manager", client=True)
        self._client_ca = client_ca
        write_service_account_keys(self.pki)

    def issue_client_certificate(self, user: str, groups: tuple[str, ...] = ()) -> KeyPair:
        """Issue a client certificate for ``user`` in ``groups`` from this control plane's client CA."""
        stem = "user-" + "".join(c if c.isalnum() else "-" for c in user)
        return self._client_ca.issue(self.pki, stem, common_name=user, organizations=groups, client=True)

    def _start_etcd(self) -> None:
        client_port, peer_port = free_port(), free_port()
        client_url, peer_url = f"http://127.0.0.1:{client_port}", f"http://127.0.0.1:{peer_port}"
        self._etcd_url = client_url
        self._etcd_args = [
            str(self.binaries.etcd),
            "--name=kube-node-local",
            f"--data-dir={self.workdir / 'etcd'}",
            f"--listen-client-urls={client_url}",
            f"--advertise-client-urls={client_url}",
            f"--listen-peer-urls={peer_url}",
            f"--initial-advertise-peer-urls={peer_url}",
            f"--initial-cluster=kube-node-local={peer_url}",
            "--unsafe-no-fsync=true",
            "--log-level=warn",
            "--quota-backend-bytes=4294967296",
        ]
        self._spawn_etcd()

    def _spawn_etcd(self) -> Process:
        etcd = self._etcd = Process("etcd", self._etcd_args, self.logdir, tied=self._tied)

        def etcd_healthy() -> bool:
            try:
                with urllib.request.urlopen(f"{self._etcd_url}/health", timeout=1) as response:
                    return bool(json.loads(response.read()).get("health") == "true")
            except (OSError, ValueError):
                return False

        wait_until("etcd to become healthy", etcd_healthy, 30, [etcd])
        return etcd

    def _etcd_call(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        """POST to etcd's JSON gateway (etcdctl's calls, without etcdctl)."""
        request = urllib.request.Request(
            self._etcd_url + path, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            result: dict[str, Any] = json.loads(response.read())
            return result

    def _start_apiserver(self) -> None:
        assert self._etcd is not None
        self.port = free_port()
        pki = self.pki
        self._apiserver_args = _merge_flags(
            [
                str(self.binaries.kube_apiserver),
                f"--etcd-servers={self._etcd_url}",
                "--bind-address=127.0.0.1",
                "--advertise-address=127.0.0.1",
                f"--secure-port={self.port}",
                f"--cert-dir={self.workdir / 'apiserver-certs'}",
                f"--tls-cert-file={pki / 'apiserver.crt'}",
                f"--tls-private-key-file={pki / 'apiserver.key'}",
                f"--client-ca-file={pki / 'client-ca.crt'}",
                f"--service-account-key-file={pki / 'sa.pub'}",
                f"--service-account-signing-key-file={pki / 'sa.key'}",
                f"--service-account-issuer={SERVICE_ACCOUNT_ISSUER}",
                f"--service-cluster-ip-range={SERVICE_CLUSTER_IP_RANGE}",
                "--authorization-mode=Node,RBAC",
                # As a real cluster has it: machines join with bootstrap tokens (kube-system Secrets).
                "--enable-bootstrap-token-auth=true",
                # ... and a kubelet may change only its own Node and the pods bound to it.
                "--enable-admission-plugins=NodeRestriction",
                "--allow-privileged=true",
                "--endpoint-reconciler-type=none",
                "--max-requests-inflight=2000",
                "--max-mutating-requests-inflight=1000",
                "--v=1",
                *self._audit_flags(),
            ],
            self._apiserver_flags,
        )
        self.kubeconfig.write_text(yaml.safe_dump(self.kubeconfig_dict()))
        self.kubeconfig.chmod(0o600)
        self._spawn_apiserver()

    def _spawn_apiserver(self) -> None:
        assert self._etcd is not None
        self._apiserver = Process("kube-apiserver", self._apiserver_args, self.logdir, tied=self._tied)
        wait_until("kube-apiserver to become ready", self._apiserver_ready, 60, [self._etcd, self._apiserver])

    @staticmethod
    def _stop_component(process: Process, kill: bool) -> None:
        if kill:
            process.kill()
        else:
            process.stop()

    def _audit_flags(self) -> list[str]:
        if not self._audit:
            return []
        policy = self.workdir / "audit-policy.yaml"
        policy.write_text(yaml.safe_dump(_AUDIT_POLICY))
        return [f"--audit-policy-file={policy}", f"--audit-log-path={self.audit_log}", "--audit-log-format=json"]

    def _apiserver_ready(self) -> bool:
        try:
            return self.get("/readyz", accept="text/plain", timeout=2) == b"ok"
        except (OSError, urllib.error.URLError, ssl.SSLError):
            return False

    def _component_kubeconfig(self, component: str) -> Path:
        path = self.workdir / f"{component}.kubeconfig"
        pair = KeyPair(self.pki / f"{component}.crt", self.pki / f"{component}.key")
        path.write_text(yaml.safe_dump(self.kubeconfig_dict(user=f"system:kube-{component}", pair=pair)))
        path.chmod(0o600)
        return path

    def _wait_healthy(self, process: Process, port: int) -> None:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE  # the component's self-signed serving certificate

        def healthy() -> bool:
            try:
                with urllib.request.urlopen(
                    f"https://127.0.0.1:{port}/healthz", context=context, timeout=1
                ) as response:
                    return bool(response.read() == b"ok")
            except (OSError, urllib.error.URLError, ssl.SSLError):
                return False

        watched = [p for p in self.processes if p is not process] + [process]
        wait_until(f"{process.name} to become healthy", healthy, 60, watched)


def _merge_flags(defaults: list[str], extra: Sequence[str]) -> list[str]:
    """``defaults`` (a binary first, then ``--name=value`` flags) with ``extra`` added, each replacing the default
    flag of its name."""
    names = {flag.split("=", 1)[0] for flag in extra}
    return [defaults[0], *(f for f in defaults[1:] if f.split("=", 1)[0] not in names), *extra]


__all__ = ["ADMIN_USER", "ControlPlane", "ControlPlaneError"]
