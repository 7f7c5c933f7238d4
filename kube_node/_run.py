"""``kube-node run``: the controllers against any cluster, until SIGTERM."""

from __future__ import annotations

import logging
import signal
import threading
from pathlib import Path

from autoscaler_provider import TLSFiles
from nodeset_controller.controllers import (
    Manager,
    ManagerSettings,
    NodeControllerSettings,
    PendingPodAutoscalerSettings,
)
from nodeset_controller.kube import KubeClient, install_crds

from ._provider import serve_provider

log = logging.getLogger(__name__)


def run(
    *,
    kubeconfig: str | None,
    context: str | None,
    cluster: str,
    simulator_dir: Path | None,
    workers: int,
    orphan_grace: float,
    sweep_interval: float,
    install: bool,
    grpc_address: str,
    grpc_tls: TLSFiles | None,
    autoscaler: PendingPodAutoscalerSettings,
) -> int:
    """Run kube-node until SIGTERM or SIGINT; returns the exit code."""
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    client = KubeClient.load(kubeconfig, context)
    if install:
        install_crds(client)
    settings = ManagerSettings(
        node_controller=NodeControllerSettings(
            cluster=cluster, workers=workers, orphan_grace=orphan_grace, sweep_interval=sweep_interval
        ),
        simulator_dir=simulator_dir,
        autoscaler=autoscaler,
    )
    manager = Manager(client, settings)
    manager.start()
    server = serve_provider(manager, grpc_address, grpc_tls) if grpc_address else None
    log.info("kube-node is running against %s (cluster %s)", client.host, cluster)
    stop.wait()
    log.info("shutting down")
    if server is not None:
        server.stop()
    manager.stop()
    return 0
