"""The Manager: the caches, the machine providers and the controllers of one kube-node process, wired."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from pathlib import Path

from ..api import LABEL_NODECLASS, NodeClass
from ..kube import (
    NODECLASSES,
    NODES,
    EventRecorder,
    Informer,
    KubeClient,
    NodeRecord,
    nodeclass_from_json,
    wait_for_sync,
)
from ..providers import LibcloudProvider, MachineProvider, ProviderRegistry, SimulatedKubelets, SimulatorCloud
from ._node_controller import NodeController, NodeControllerSettings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ManagerSettings:
    """Everything ``kube-node run`` can be told."""

    node_controller: NodeControllerSettings = field(default_factory=NodeControllerSettings)
    simulator_dir: Path | None = None  #: run the simulator provider, keeping its machines here
    kubelet_lease_interval: float = 10.0  #: how often simulated kubelets renew their Lease
    cache_sync_timeout: float = 60.0


def _libcloud_provider(nodeclass: NodeClass, credentials: dict[str, str], cluster: str) -> MachineProvider:
    return LibcloudProvider(nodeclass, credentials, cluster)


class Manager:
    """Owns the informers, providers and controllers; ``start`` runs them, ``stop`` stops them."""

    def __init__(self, client: KubeClient, settings: ManagerSettings | None = None) -> None:
        self.client = client
        self.settings = settings or ManagerSettings()
        self.stop_event = threading.Event()
        self.nodes: Informer[NodeRecord] = Informer(
            client,
            NODES,
            NodeRecord.from_json,
            label_selector=LABEL_NODECLASS,
            indexers={
                "nodeclass": lambda n: (n.labels.get(LABEL_NODECLASS, ""),),
                "providerID": lambda n: (n.provider_id,) if n.provider_id else (),
            },
        )
        self.nodeclasses: Informer[NodeClass] = Informer(client, NODECLASSES, nodeclass_from_json)
        self.recorder = EventRecorder(client)
        self.simulator = SimulatorCloud(self.settings.simulator_dir) if self.settings.simulator_dir else None
        self.kubelets = (
            SimulatedKubelets(
                client,
                self.simulator,
                lease_interval=self.settings.kubelet_lease_interval,
                node_uid=lambda name: node.uid if (node := self.nodes.get(name)) else None,
            )
            if self.simulator
            else None
        )
        self.providers = ProviderRegistry(
            client,
            self.settings.node_controller.cluster,
            simulator=self.simulator,
            libcloud_factory=_libcloud_provider,
        )
        self.node_controller = NodeController(
            client, self.nodes, self.nodeclasses, self.providers, self.recorder, settings=self.settings.node_controller
        )

    def start(self) -> None:
        """Fill the caches, then start the simulated kubelets (if any) and the controllers."""
        for informer in (self.nodes, self.nodeclasses):
            informer.start()
        wait_for_sync([self.nodes, self.nodeclasses], self.settings.cache_sync_timeout)
        if self.kubelets is not None:
            self.kubelets.start()
        self.node_controller.start(self.stop_event)
        log.info("kube-node running: %d managed Nodes, %d NodeClasses", len(self.nodes), len(self.nodeclasses))

    def stop(self) -> None:
        """Stop taking work and stop the background threads."""
        self.stop_event.set()
        for informer in (self.nodes, self.nodeclasses):
            informer.stop()
        if self.kubelets is not None:
            self.kubelets.stop()
        self.recorder.close()
