"""``kube-node run``: the controllers and the gRPC server in one process, leader-elected, until SIGTERM.

Every replica fills its caches at once and serves the gRPC server's reads (a warm standby); only the holder of
the Lease runs the controllers and accepts the gRPC server's writes. On SIGTERM the process stops taking work,
gives reconciles in flight a bounded time to finish, and only then releases the Lease, so the next leader
never overlaps with it. A leader that loses its Lease exits with status 1 at once (its cloud calls are
idempotent, so one cut short is safe to repeat) and is restarted as a standby.

Everything the controllers, the simulated kubelets and the gRPC server change goes through one fence
(nodeset_controller.kube.WriteFence): every mutating API request and every machine create or destroy is
refused, unsent, unless the process holds the Lease at that moment by its own clock. So a leader frozen
past its renew deadline (SIGSTOP, a stalled machine) sends nothing when it wakes, even before it notices
the loss. Only leader election's own Lease requests and the pod's leader label bypass it. Without leader
election nothing is fenced.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import urllib3
from prometheus_client import Info

from autoscaler_provider import ProviderServer, TLSFiles
from nodeset_controller.controllers import (
    Manager,
    ManagerSettings,
    NodeControllerSettings,
    PendingPodAutoscalerSettings,
)
from nodeset_controller.kube import (
    DEFAULT_REQUEST_TIMEOUT,
    DEFAULT_WATCH_IDLE_TIMEOUT,
    NAMESPACES,
    PODS,
    ApiError,
    KubeClient,
    LeaderElectionSettings,
    LeaderElector,
    LeaderState,
    WriteFence,
    install_crds,
)

from . import __version__
from ._grpc import serve_grpc
from ._status import StatusServer

log = logging.getLogger(__name__)

BUILD_INFO = Info("kube_node_build", "The running kube-node's version.")
BUILD_INFO.info({"version": __version__})

#: The label the leader puts on its own pod (when it knows it), so a Service can send the gRPC server's
#: clients to the one replica that accepts writes.
LABEL_LEADER = "kube-node.io/leader"
_SERVICE_ACCOUNT_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")


@dataclass(frozen=True)
class LeaderElectionOptions:
    """``--leader-elect`` and its timings."""

    enabled: bool = True
    namespace: str | None = None  #: default: the pod's namespace, else kube-system
    name: str = "kube-node"
    lease_duration: float = 15.0
    renew_deadline: float = 10.0
    retry_period: float = 2.0


@dataclass(frozen=True)
class RunOptions:
    """Everything ``kube-node run`` is told, from flags, environment or the config file."""

    kubeconfig: str | None = None
    context: str | None = None
    cluster: str | None = None  #: --cluster-name; None: the kube-system namespace's uid, read at start-up
    simulator_dir: Path | None = None
    simulator_seed: int | None = None
    local_machines_dir: Path | None = None  #: run the local provider (real kubelets), keeping machines here
    local_kubelet: Path | None = None  #: the kubelet local machines run; None: kubelet on PATH
    join_api_server: str | None = None  #: ${API_SERVER} of user-data; None: discovered
    join_ca_file: Path | None = None  #: the CA of ${CA_CERT_BASE64}/${CA_CERT_HASH}; None: discovered
    approve_serving_certificates: bool = True  #: approve matching kubelet serving CSRs of kube-node's Nodes
    workers: int = 16
    orphan_grace: float = 600.0
    sweep_interval: float = 30.0
    install_crds: bool = False
    grpc_address: str = "127.0.0.1:8086"
    grpc_tls: TLSFiles | None = None
    status_address: str = ":8080"
    shutdown_grace: float = 10.0
    #: seconds a watch may go without a byte before it is presumed dead and opened again
    watch_idle_timeout: float = DEFAULT_WATCH_IDLE_TIMEOUT
    api_request_timeout: float = DEFAULT_REQUEST_TIMEOUT  #: seconds any other API request may wait, retries included
    leader_election: LeaderElectionOptions = field(default_factory=LeaderElectionOptions)
    pending_pod_autoscaler: PendingPodAutoscalerSettings = field(default_factory=PendingPodAutoscalerSettings)
    pod_name: str | None = None  #: this process's pod, from the downward API, when it runs in one
    pod_namespace: str | None = None


class StartupError(Exception):
    """kube-node cannot start safely; the message says why and what to do."""


@dataclass(frozen=True)
class ClusterIdentity:
    """What this kube-node tags its machines with, and where that came from."""

    name: str
    source: str


def cluster_identity(client: KubeClient, configured: str | None) -> ClusterIdentity:
    """``configured`` (--cluster-name), or else the uid of the kube-system namespace, which is unique per
    cluster. Machines are tagged with it and orphan collection destroys untracked machines that carry it, so
    two clusters with one identity in one cloud account would destroy each other's machines: when the uid
    cannot be read this is a :class:`StartupError`, never a shared fallback."""
    if configured:
        return ClusterIdentity(configured, "from --cluster-name, KUBE_NODE_CLUSTER_NAME or cluster-name in --config")
    try:
        uid = client.get(NAMESPACES, "kube-system")["metadata"]["uid"]
    except ApiError as error:
        raise StartupError(_no_identity(f"{error.status} {error.reason}: {error.message}")) from None
    except (urllib3.exceptions.HTTPError, OSError) as error:
        raise StartupError(_no_identity(f"{type(error).__name__}: {error}")) from None
    return ClusterIdentity(str(uid), "the uid of namespace kube-system; no --cluster-name given")


def _no_identity(cause: str) -> str:
    return (
        f"cannot read namespace kube-system, whose uid is this cluster's identity by default ({cause}). kube-node "
        "tags every machine it makes with its cluster's identity and destroys untracked machines carrying it, so "
        "it will not start on a guess: let it read that namespace (RBAC: get on namespaces/kube-system), or pass "
        "--cluster-name (KUBE_NODE_CLUSTER_NAME, cluster-name in --config) with a name that no other cluster "
        "using the same cloud accounts has"
    )


def run(options: RunOptions) -> int:
    """Run kube-node until SIGTERM or SIGINT (exit 0) or until it loses the leader Lease (exit 1); exit 1 at
    once if it cannot start safely (see :class:`StartupError`)."""
    stop = threading.Event()
    lost = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    elector_identity = f"{options.pod_name or socket.gethostname()}_{uuid.uuid4()}"
    # The identity in the User-Agent tells this process's requests apart in the API server's audit log; the
    # field manager stays "kube-node" (the part before the "/"), the same across restarts.
    client = KubeClient.load(
        options.kubeconfig, options.context, user_agent=f"kube-node/{__version__} ({elector_identity})"
    )
    client.request_timeout = options.api_request_timeout
    try:
        identity = cluster_identity(client, options.cluster)
    except StartupError as error:
        log.error("not starting: %s", error)
        return 1
    log.info(
        "cluster identity %s (%s): machines are tagged with it, and only untracked machines carrying it are "
        "collected as orphans",
        identity.name,
        identity.source,
    )
    if options.install_crds:
        install_crds(client)
    elector: LeaderElector | None = None
    # The controllers' and the gRPC server's client: fenced on the Lease when there is one (the elector, made
    # below, is asked at each write).
    acting = client
    if options.leader_election.enabled:
        acting = client.fenced(WriteFence(lambda: elector is not None and elector.is_leader()))
    manager = Manager(
        acting,
        ManagerSettings(
            node_controller=NodeControllerSettings(
                cluster=identity.name,
                workers=options.workers,
                orphan_grace=options.orphan_grace,
                sweep_interval=options.sweep_interval,
            ),
            simulator_dir=options.simulator_dir,
            simulator_seed=options.simulator_seed,
            local_machines_dir=options.local_machines_dir,
            local_kubelet=options.local_kubelet,
            join_api_server=options.join_api_server,
            join_ca_file=options.join_ca_file,
            approve_serving_certificates=options.approve_serving_certificates,
            pending_pod_autoscaler=options.pending_pod_autoscaler,
            watch_idle_timeout=options.watch_idle_timeout,
        ),
    )
    pod = _OwnPod(client, options.pod_namespace, options.pod_name)
    elector = _elector(client, options, elector_identity, manager, pod, stop, lost)
    if elector is not None:
        manager.node_controller.may_destroy = elector.is_leader  # asked again right before each orphan's destroy
    server: ProviderServer | None = None
    stopping = threading.Event()

    def healthy() -> tuple[bool, list[str]]:
        problems = [f"watch of {i.name} has stopped" for i in manager.informers if not i.running]
        if elector is not None and elector.started and not elector.alive() and elector.state is not LeaderState.STOPPED:
            problems.append("leader election has stopped")
        return not problems, problems or ["watches running"]

    def ready() -> tuple[bool, list[str]]:
        checks = [f"caches {'synced' if manager.synced else 'not synced yet'}"]
        ok = manager.synced and not stopping.is_set()
        if elector is not None:
            state = elector.state
            checks.append(f"leader election: {state} (holder {elector.holder or 'unknown'})")
            ok = ok and state is not LeaderState.STOPPED
        if options.grpc_address:
            checks.append(f"provider {'serving' if server is not None else 'not serving yet'}")
            ok = ok and server is not None
        if stopping.is_set():
            checks.append("shutting down")
        return ok, checks

    status = StatusServer(options.status_address, healthy=healthy, ready=ready) if options.status_address else None
    if status is not None:
        status.start()
    try:
        manager.start_caches()
        if options.grpc_address:
            may_write = elector.is_leader if elector is not None else (lambda: True)
            server = serve_grpc(manager, options.grpc_address, options.grpc_tls, may_write=may_write)
        if elector is None:
            manager.start_controllers()
        else:
            pod.set_leader(False)  # a restarted container keeps its pod's labels
            elector.start()
        log.info("kube-node is running against %s (cluster identity %s)", client.host, identity.name)
        stop.wait()
    finally:
        stopping.set()
        _exit_by(options.shutdown_grace + 5.0)
        log.info("shutting down: letting work in flight finish for up to %.0f s", options.shutdown_grace)
        if server is not None:
            server.stop(grace=1.0)
        _shut_down(manager, elector, pod, status, lost=lost.is_set(), grace=options.shutdown_grace)
    return 1 if lost.is_set() else 0


def _shut_down(
    manager: Manager,
    elector: LeaderElector | None,
    pod: _OwnPod,
    status: StatusServer | None,
    *,
    lost: bool,
    grace: float,
) -> None:
    if lost:
        # Another replica may lead soon: go now rather than wait for anything (what was in flight is
        # idempotent, and the Events still queued are only a record).
        manager.stop_acting(grace=0.0, leading=False)
        pod.set_leader(False)
        return
    finished = manager.stop_acting(grace=grace)
    if elector is not None and not finished:
        # A cloud call still in flight may yet make a machine that no Node records: the next leader must not
        # start before it is over, so the Lease is left to expire rather than handed over now.
        log.warning("not releasing the leader Lease: work is still in flight; a standby takes over when it expires")
        pod.set_leader(False)
    elif elector is not None:  # nothing acts any more: the next leader may start
        manager.recorder.flush()  # while still leading: after the release the fence drops them
        pod.set_leader(False)
        elector.release()
    manager.close()
    if status is not None:
        status.stop()


def _elector(  # noqa: PLR0917 - private, and each argument is named at its one call
    client: KubeClient,
    options: RunOptions,
    identity: str,
    manager: Manager,
    pod: _OwnPod,
    stop: threading.Event,
    lost: threading.Event,
) -> LeaderElector | None:
    election = options.leader_election
    if not election.enabled:
        return None

    def started_leading() -> None:
        manager.start_controllers()
        pod.set_leader(True)

    def stopped_leading() -> None:
        lost.set()
        stop.set()

    return LeaderElector(
        client,
        LeaderElectionSettings(
            namespace=election.namespace or _own_namespace(options),
            identity=identity,
            name=election.name,
            lease_duration=election.lease_duration,
            renew_deadline=election.renew_deadline,
            retry_period=election.retry_period,
        ),
        on_started_leading=started_leading,
        on_stopped_leading=stopped_leading,
    )


def _own_namespace(options: RunOptions) -> str:
    if options.pod_namespace:
        return options.pod_namespace
    try:
        return _SERVICE_ACCOUNT_NAMESPACE.read_text().strip()
    except OSError:
        return "kube-system"


def _exit_by(seconds: float) -> None:
    """Make sure the process is gone ``seconds`` from now, whatever a stuck thread is doing."""

    def give_up() -> None:
        log.error("shutdown took longer than %.0f s; exiting now", seconds)
        os._exit(1)

    timer = threading.Timer(seconds, give_up)
    timer.daemon = True
    timer.start()


class _OwnPod:
    """This process's pod, labelled while it leads (a no-op outside a pod)."""

    def __init__(self, client: KubeClient, namespace: str | None, name: str | None) -> None:
        self._client = client
        self._namespace = namespace
        self._name = name

    def set_leader(self, leading: bool) -> None:
        if not (self._namespace and self._name):
            return
        patch = {"metadata": {"labels": {LABEL_LEADER: "true" if leading else None}}}
        try:
            self._client.patch(PODS, self._name, patch, self._namespace)
        except ApiError as error:
            log.warning("could not label pod %s/%s as %s: %s", self._namespace, self._name, LABEL_LEADER, error)
