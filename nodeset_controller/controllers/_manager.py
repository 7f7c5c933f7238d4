"""The Manager: the caches, the machine providers and the controllers of one kube-node process, wired."""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import metrics
from ..api import DEFAULT_REGISTRATION_TIMEOUT_SECONDS, LABEL_NODECLASS, LABEL_NODESET, NodeClass, NodeSet
from ..kube import (
    DEFAULT_WATCH_IDLE_TIMEOUT,
    NODECLASSES,
    NODES,
    NODESETS,
    PODS,
    EventRecorder,
    Informer,
    KubeClient,
    NodeRecord,
    NodeSetScaler,
    PodRecord,
    bound_pods_informer,
    nodeclass_from_json,
    nodeset_from_json,
    wait_for_sync,
)
from ..providers import (
    LibcloudProvider,
    LocalMachines,
    MachineProvider,
    ProviderRegistry,
    SimulatedKubelets,
    SimulatorCloud,
)
from ._join import ClusterEndpoint, JoinCredentials, discover_endpoint
from ._node_controller import NodeController, NodeControllerSettings
from ._nodeclass_controller import NodeClassController, NodeClassControllerSettings
from ._nodeset_controller import NodeSetController, NodeSetControllerSettings
from ._pending_pods import PendingPodAutoscaler, PendingPodAutoscalerSettings
from ._scheduling import PendingPod
from ._serving_csrs import ServingCertificateApprover, ServingCSR, serving_csr_informer

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ManagerSettings:
    """Everything ``kube-node run`` can be told."""

    node_controller: NodeControllerSettings = field(default_factory=NodeControllerSettings)
    nodeset_controller: NodeSetControllerSettings = field(default_factory=NodeSetControllerSettings)
    nodeclass_controller: NodeClassControllerSettings = field(default_factory=NodeClassControllerSettings)
    #: kube-node's own autoscaler (NodeSets in KubeNode mode), not the cluster-autoscaler it serves
    pending_pod_autoscaler: PendingPodAutoscalerSettings = field(default_factory=PendingPodAutoscalerSettings)
    simulator_dir: Path | None = None  #: run the simulator provider, keeping its machines here
    #: the seed of the simulator's faults (which creates are refused, which machines crash); None: random
    simulator_seed: int | None = None
    #: run the local provider (real kubelets on this host), keeping its machines here
    local_machines_dir: Path | None = None
    local_kubelet: Path | None = None  #: the kubelet local machines run (None: kubelet on PATH)
    kubelet_lease_interval: float = 10.0  #: how often simulated kubelets renew their Lease
    cache_sync_timeout: float = 60.0
    #: seconds a watch may stay silent before it is presumed dead and opened again (see Informer)
    watch_idle_timeout: float = DEFAULT_WATCH_IDLE_TIMEOUT
    #: ${API_SERVER} of user-data: where new machines reach the API server (None: discovered, see _join)
    join_api_server: str | None = None
    #: the PEM file of ${CA_CERT_BASE64} and ${CA_CERT_HASH} (None: discovered, see _join)
    join_ca_file: Path | None = None
    #: approve the kubelet serving CSRs of kube-node's Nodes that name only their machine (see _serving_csrs)
    approve_serving_certificates: bool = True


def _libcloud_provider(nodeclass: NodeClass, credentials: dict[str, str], cluster: str) -> MachineProvider:
    return LibcloudProvider(nodeclass, credentials, cluster)


class Manager:
    """Owns the informers, providers and controllers; ``start`` runs them, ``stop`` stops them."""

    def __init__(self, client: KubeClient, settings: ManagerSettings | None = None) -> None:
        self.client = client
        self.settings = settings or ManagerSettings()
        self.stop_event = threading.Event()
        self._threads: list[threading.Thread] = []
        idle = self.settings.watch_idle_timeout
        self.nodes: Informer[NodeRecord] = Informer(
            client,
            NODES,
            NodeRecord.from_json,
            label_selector=LABEL_NODECLASS,
            indexers={
                "nodeclass": lambda n: (n.labels.get(LABEL_NODECLASS, ""),),
                "nodeset": lambda n: (n.labels[LABEL_NODESET],) if LABEL_NODESET in n.labels else (),
                "providerID": lambda n: (n.provider_id,) if n.provider_id else (),
            },
            read_timeout=idle,
        )
        self.nodeclasses: Informer[NodeClass] = Informer(client, NODECLASSES, nodeclass_from_json, read_timeout=idle)
        self.nodesets: Informer[NodeSet] = Informer(client, NODESETS, nodeset_from_json, read_timeout=idle)
        self.pods: Informer[PodRecord] = bound_pods_informer(client, read_timeout=idle)
        self.pending: Informer[PendingPod] = Informer(
            client,
            PODS,
            PendingPod.from_json,
            field_selector="spec.nodeName=,status.phase=Pending",
            name="pending-pods",
            read_timeout=idle,
        )
        self.informers: list[Informer[Any]] = [self.nodes, self.nodeclasses, self.nodesets, self.pods, self.pending]
        self.serving_csrs: Informer[ServingCSR] | None = None
        if self.settings.approve_serving_certificates:
            self.serving_csrs = serving_csr_informer(client, idle)
            self.informers.append(self.serving_csrs)
        self.recorder = EventRecorder(client)
        #: the one writer of NodeSets' sizes in this process: the controllers' and the provider's
        self.scaler = NodeSetScaler(client, self.nodesets)
        self.simulator = (
            SimulatorCloud(self.settings.simulator_dir, seed=self.settings.simulator_seed)
            if self.settings.simulator_dir
            else None
        )
        self.kubelets = (
            SimulatedKubelets(
                client,
                self.simulator,
                lease_interval=self.settings.kubelet_lease_interval,
                node_uid=lambda name: node.uid if (node := self.nodes.get(name)) else None,
                pods=self.pods,
            )
            if self.simulator
            else None
        )
        self.providers = ProviderRegistry(
            client,
            self.settings.node_controller.cluster,
            simulator=self.simulator,
            local=LocalMachines(self.settings.local_machines_dir, kubelet=self.settings.local_kubelet)
            if self.settings.local_machines_dir
            else None,
            libcloud_factory=_libcloud_provider,
        )
        self._endpoint: ClusterEndpoint | None = None
        self.join = JoinCredentials(client, self._join_endpoint)
        self.node_controller = NodeController(
            client,
            self.nodes,
            self.nodeclasses,
            self.providers,
            self.recorder,
            settings=self.settings.node_controller,
            join=self.join,
            token_ttl=self._registration_timeout,
        )
        self.serving_csr_approver = (
            ServingCertificateApprover(
                client,
                self.serving_csrs,
                self.nodes,
                self.nodeclasses,
                providers=self.providers,
                recorder=self.recorder,
            )
            if self.serving_csrs is not None
            else None
        )
        self.nodeset_controller = NodeSetController(
            client,
            self.nodesets,
            self.nodes,
            self.nodeclasses,
            self.pods,
            self.recorder,
            settings=self.settings.nodeset_controller,
            scaler=self.scaler,
        )
        self.nodeclass_controller = NodeClassController(
            client,
            self.nodeclasses,
            self.nodes,
            self.nodesets,
            self.providers,
            self.recorder,
            settings=self.settings.nodeclass_controller,
        )
        self.pending_pod_autoscaler = PendingPodAutoscaler(
            client,
            self.pending,
            self.pods,
            self.nodes,
            self.nodesets,
            self.nodeclasses,
            self.recorder,
            settings=self.settings.pending_pod_autoscaler,
            scaler=self.scaler,
        )

    def _join_endpoint(self) -> ClusterEndpoint | None:
        """Where machines join: found once (configured, else discovered) and logged; looked for again while
        none is found."""
        if self._endpoint is None:
            ca = self.settings.join_ca_file.read_bytes() if self.settings.join_ca_file else None
            self._endpoint = discover_endpoint(self.client, self.settings.join_api_server, ca)
            if self._endpoint is not None:
                log.info(
                    "machines join at %s with the CA %s (from %s)",
                    self._endpoint.api_server,
                    self._endpoint.values["CA_CERT_HASH"],
                    self._endpoint.source,
                )
        return self._endpoint

    def _registration_timeout(self, node: NodeRecord) -> float:
        """How long a machine of ``node`` has to join: its NodeSet's registration timeout, or the default."""
        nodeset = self.nodesets.get(node.labels.get(LABEL_NODESET, ""))
        if nodeset is None:
            return float(DEFAULT_REGISTRATION_TIMEOUT_SECONDS)
        return float(nodeset.spec.replacement.registration_timeout_seconds)

    def start(self) -> None:
        """Fill the caches, then run the controllers (a process without leader election)."""
        self.start_caches()
        self.start_controllers()

    def start_caches(self) -> None:
        """Start the watches and wait until every cache has listed: enough to answer reads and to be a warm
        standby, without acting."""
        for informer in self.informers:
            informer.start()
        wait_for_sync(self.informers, self.settings.cache_sync_timeout)
        metrics.watch_nodesets(self.nodesets.list)

    @property
    def synced(self) -> bool:
        """Whether every cache has listed once."""
        return all(informer.synced for informer in self.informers)

    def start_controllers(self) -> None:
        """Start acting: the simulated kubelets (if any), the controllers (Node, NodeSet, NodeClass) and the
        pending-pod autoscaler."""
        if self.kubelets is not None:
            self.kubelets.start()
        self._threads += self.node_controller.start(self.stop_event)
        self._threads += self.nodeset_controller.start(self.stop_event)
        self._threads += self.nodeclass_controller.start(self.stop_event)
        if self.serving_csr_approver is not None:
            self._threads += self.serving_csr_approver.start(self.stop_event)
        self._threads.append(self.pending_pod_autoscaler.start(self.stop_event))
        log.info("kube-node running: %d managed Nodes, %d NodeClasses", len(self.nodes), len(self.nodeclasses))

    def stop(self, grace: float = 0.0) -> bool:
        """``stop_acting``, then ``close``. Returns whether everything in flight finished."""
        finished = self.stop_acting(grace)
        self.close()
        return finished

    def stop_acting(self, grace: float = 0.0, *, leading: bool = True) -> bool:
        """Stop taking work and give reconciles in flight up to ``grace`` seconds to finish (their cloud calls
        are idempotent, so one cut short is safe to repeat). If they all finished and this process still
        ``leading``, write down the machines still waiting to be recorded. Returns whether everything in
        flight finished; after it, nothing this process does changes the cluster but the Events still
        queued."""
        self.stop_event.set()
        self.pending_pod_autoscaler.wake()
        deadline = time.monotonic() + grace
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        finished = not any(thread.is_alive() for thread in self._threads)
        if not finished:
            log.warning("stopping with reconciles still in flight after %.0f s; they are safe to repeat", grace)
        elif leading:
            self.node_controller.record_pending()
        if self.kubelets is not None:
            self.kubelets.stop()
        return finished

    def close(self) -> None:
        """Stop the watches and send the Events still queued."""
        for informer in self.informers:
            informer.stop()
        self.recorder.close()
