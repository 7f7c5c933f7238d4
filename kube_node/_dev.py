"""``kube-node dev up`` / ``dev down``: a local control plane with kube-node on it, on this machine.

``dev up`` builds (once) and finds the binaries in the foreground, so their progress shows, then starts a
supervisor process in the background and waits for it to report ready. The supervisor owns the control
plane (whose processes die with it, even on SIGKILL) and runs kube-node's main job against it; ``dev down``
stops the supervisor with SIGTERM, which stops everything in order.

With ``--real-nodes`` (root, and a machine that can run containerd) the demo NodeSet's machines are real
kubelets on this host (the local provider) instead of simulated ones: ``dev up`` installs the runtime when it
is missing and builds the kubelet, the supervisor applies the bindings kube-node's bootstrap tokens need (the
chart's) and the local NodeClass, and ``dev down`` destroys every local machine before it stops.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from autoscaler_provider import ProviderServer
from nodeset_controller.controllers import BOOTSTRAP_GROUP, Manager, ManagerSettings, NodeControllerSettings
from nodeset_controller.kube import ApiError, KubeClient, Resource, install_crds
from nodeset_controller.providers import HostError, LocalMachines, install_runtime, is_root

from ._grpc import make_grpc_certificates, serve_grpc, write_cloud_config
from ._run import cluster_identity
from ._samples import SAMPLES_DIR, apply_samples
from ._status import StatusServer
from .controlplane import Binaries, ControlPlane, find_binaries, pid_alive

log = logging.getLogger(__name__)


def default_state_dir() -> Path:
    """Where the dev environment keeps its state: $KUBE_NODE_DEV_DIR, or under $XDG_STATE_HOME."""
    explicit = os.environ.get("KUBE_NODE_DEV_DIR")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "kube-node" / "dev"


@dataclass(frozen=True)
class DevState:
    """What a running dev environment recorded in ``<state dir>/state.json``."""

    cloud_config: str
    pid: int
    server: str
    kubeconfig: str
    path_dirs: list[str]
    startup_seconds: float
    status: str = ""  #: base URL of /metrics, /healthz and /readyz
    real_nodes: bool = False  #: the demo NodeSet's machines are real local kubelets

    @classmethod
    def read(cls, state_dir: Path) -> DevState | None:
        """The recorded state, or None when no dev environment is running there."""
        try:
            data: dict[str, Any] = json.loads((state_dir / "state.json").read_text())
        except (OSError, ValueError):
            return None
        state = cls(**data)
        return state if pid_alive(state.pid) else None

    def write(self, state_dir: Path) -> None:
        """Record this state, atomically."""
        tmp = state_dir / "state.json.tmp"
        tmp.write_text(json.dumps(self.__dict__, indent=2))
        tmp.replace(state_dir / "state.json")


def usage(state: DevState, state_dir: Path) -> str:
    """How to point kubectl at the dev environment."""
    env_file = state_dir / "env.sh"
    return "\n".join(
        [
            f"kube-node dev environment is up: API server {state.server} "
            f"(control plane ready in {state.startup_seconds:.1f} s)",
            "",
            "Use it from your shell (kubectl and helm here are the pinned versions that match the server):",
            f"  source {env_file}",
            "  kubectl get nodeclasses,nodesets",
            f"  kubectl create -f {SAMPLES_DIR / 'node-sample.yaml'}   # one Node, one simulated machine",
            *(
                ["  kubectl get nodes -l kube-node.io/nodeclass=local   # the demo NodeSet's real kubelets"]
                if state.real_nodes
                else []
            ),
            "  kubectl get nodes -w",
            "  kubectl scale nodeset demo --replicas=5",
            "  kubectl explain nodeset.spec",
            "",
            "The gRPC server (an externalgrpc cloud provider) serves NodeSets with autoscaling.mode "
            "ClusterAutoscaler, over mutual TLS:",
            f"  cluster-autoscaler --cloud-provider=externalgrpc --cloud-config={state.cloud_config} \\",
            f"    --kubeconfig={state.kubeconfig} --leader-elect=false",
            "",
            f"Metrics and health: {state.status}/metrics, {state.status}/readyz",
            f"Logs: {state_dir / 'kube-node.log'} and {state_dir / 'controlplane' / 'logs'}",
            "Stop it with: kube-node dev down",
        ]
    )


def real_nodes_unavailable() -> str | None:
    """Why this machine cannot run real local nodes (None: it can, the runtime installed if it was missing)."""
    if not is_root():
        return "real nodes need root (cgroups, mounts, network links); run it as root, or without --real-nodes"
    try:
        installed = install_runtime()
    except HostError as error:
        return f"real nodes need a container runtime: {error}"
    if installed:
        print(f"installed {', '.join(installed)}", file=sys.stderr)
    return None


def up(state_dir: Path, *, timeout: float = 120.0, real_nodes: bool = False) -> int:
    """Start the dev environment in the background (or report the running one) and print how to use it."""
    state_dir.mkdir(parents=True, exist_ok=True)
    running = DevState.read(state_dir)
    if running is not None:
        if real_nodes and not running.real_nodes:
            print("kube-node dev environment is already up with simulated nodes: `kube-node dev down` first")
            return 1
        print(usage(running, state_dir))
        return 0
    if real_nodes and (why := real_nodes_unavailable()):
        print(f"kube-node dev up --real-nodes: {why}", file=sys.stderr)
        return 1
    binaries = find_binaries(with_kubelet=real_nodes)  # builds on first use, with progress on stderr
    if real_nodes and binaries.kubelet is None:
        print("kube-node dev up --real-nodes: hack/build-tools.sh --with-kubelet built no kubelet", file=sys.stderr)
        return 1
    log_path = state_dir / "kube-node.log"
    with log_path.open("ab") as log_file:
        supervisor = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "kube_node",
                "dev",
                "serve",
                "--state-dir",
                str(state_dir),
                *(["--real-nodes"] if real_nodes else []),
            ],
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env={**os.environ, "KUBE_NODE_BIN_PATH": os.pathsep.join(binaries.path_dirs)},
        )
    deadline = time.monotonic() + timeout
    while True:
        state = DevState.read(state_dir)
        if state is not None and state.pid == supervisor.pid:
            print(usage(state, state_dir))
            return 0
        if supervisor.poll() is not None:
            tail = "\n".join(log_path.read_text(errors="replace").splitlines()[-25:])
            print(
                f"kube-node dev up failed (exit code {supervisor.returncode}); {log_path} ends with:\n{tail}",
                file=sys.stderr,
            )
            return 1
        if time.monotonic() > deadline:
            supervisor.terminate()
            print(f"kube-node dev up: not ready within {timeout:.0f} s; see {log_path}", file=sys.stderr)
            return 1
        time.sleep(0.2)


def down(state_dir: Path, *, timeout: float = 30.0) -> int:
    """Stop the dev environment running from ``state_dir``, if any."""
    state = DevState.read(state_dir)
    if state is None:
        print("kube-node dev environment is not running")
        return 0
    os.kill(state.pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while pid_alive(state.pid):
        if time.monotonic() > deadline:
            os.kill(state.pid, signal.SIGKILL)  # its control plane dies with it (PR_SET_PDEATHSIG)
            break
        time.sleep(0.1)
    print("kube-node dev environment stopped")
    return 0


def local_machines_dir(state_dir: Path) -> Path:
    """Where the dev environment's local machines live: short (their unix sockets are below it), one per
    state directory."""
    digest = hashlib.sha256(str(state_dir.resolve()).encode()).hexdigest()[:8]
    return Path(tempfile.gettempdir()) / f"kn-dev-{digest}"


CLUSTER_ROLE_BINDINGS = Resource("rbac.authorization.k8s.io", "v1", "clusterrolebindings")


def bootstrap_bindings() -> list[dict[str, Any]]:
    """What the chart binds kube-node's bootstrap tokens to (templates/bootstrap.yaml): sending the kubelet's
    client CSR, and having it approved."""
    group = {"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": BOOTSTRAP_GROUP}
    return [
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {"name": f"kube-node-{name}"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
            "subjects": [group],
        }
        for name, role in (
            ("node-bootstrapper", "system:node-bootstrapper"),
            ("approve-node-client-csr", "system:certificates.k8s.io:certificatesigningrequests:nodeclient"),
        )
    ]


def serve(state_dir: Path, *, real_nodes: bool = False) -> int:
    """The supervisor: run the control plane and kube-node until SIGTERM or SIGINT."""
    state_dir.mkdir(parents=True, exist_ok=True)
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    binaries = find_binaries(build=False)
    control_plane = ControlPlane(state_dir / "controlplane", binaries=binaries)
    machines_dir = local_machines_dir(state_dir) if real_nodes else None
    manager: Manager | None = None
    grpc_server: ProviderServer | None = None
    status: StatusServer | None = None
    try:
        control_plane.start()
        control_plane.start_scheduler()
        control_plane.start_controller_manager()
        client = KubeClient.from_kubeconfig(control_plane.kubeconfig)
        install_crds(client)
        if real_nodes:
            for binding in bootstrap_bindings():
                try:
                    client.create(CLUSTER_ROLE_BINDINGS, binding)
                except ApiError as error:
                    if not error.already_exists:
                        raise
        created = apply_samples(client, real_nodes=real_nodes)
        log.info("applied samples: %s", ", ".join(created) or "(all existed)")
        identity = cluster_identity(client, None)  # as `kube-node run` does; the local cluster has kube-system
        log.info("cluster identity %s (%s)", identity.name, identity.source)
        manager = Manager(
            client,
            ManagerSettings(
                node_controller=NodeControllerSettings(cluster=identity.name),
                simulator_dir=state_dir / "simulator",
                local_machines_dir=machines_dir,
                local_kubelet=binaries.kubelet,
            ),
        )
        manager.start()
        certificates = make_grpc_certificates(state_dir / "grpc-tls")
        grpc_server = serve_grpc(manager, "127.0.0.1:0", certificates.server_tls)
        address = f"127.0.0.1:{grpc_server.port}"
        cloud_config = write_cloud_config(state_dir / "cloud-config.yaml", address, certificates)
        running = manager

        def ready() -> tuple[bool, list[str]]:
            return running.synced, [f"caches {'synced' if running.synced else 'not synced yet'}"]

        status = StatusServer("127.0.0.1:0", healthy=lambda: (True, ["running"]), ready=ready)
        status.start()
        _write_env_file(state_dir, control_plane, binaries)
        DevState(
            cloud_config=str(cloud_config),
            pid=os.getpid(),
            server=control_plane.server,
            kubeconfig=str(control_plane.kubeconfig),
            path_dirs=binaries.path_dirs,
            startup_seconds=round(control_plane.startup_seconds, 2),
            status=f"http://127.0.0.1:{status.port}",
            real_nodes=real_nodes,
        ).write(state_dir)
        log.info("dev environment ready at %s", control_plane.server)
        while not stop.wait(1.0):
            for process in control_plane.processes:
                if not process.alive():
                    log.error(
                        "%s exited (code %s); stopping the dev environment. Its log: %s",
                        process.name,
                        process.popen.returncode,
                        process.log_path,
                    )
                    return 1
        return 0
    finally:
        (state_dir / "state.json").unlink(missing_ok=True)
        if status is not None:
            status.stop()
        if grpc_server is not None:
            grpc_server.stop()
        if manager is not None:
            manager.stop()
        if machines_dir is not None and machines_dir.exists():
            machines = LocalMachines(machines_dir)
            for machine in machines.machines():  # real kubelets must not outlive the cluster they joined
                machines.destroy(machine.name)
                log.info("destroyed local machine %s", machine.name)
        control_plane.stop()
        log.info("dev environment stopped")


def _write_env_file(state_dir: Path, control_plane: ControlPlane, binaries: Binaries) -> None:
    path = os.pathsep.join(binaries.path_dirs)
    (state_dir / "env.sh").write_text(
        "# Source this file to use the kube-node dev environment with the pinned kubectl and helm.\n"
        f"export KUBECONFIG={control_plane.kubeconfig}\n"
        f'export PATH={path}:"$PATH"\n'
    )
