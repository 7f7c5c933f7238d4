"""Orphan collection: destroying the machines no Node owns, and a Node's second machine.

The NodeController's sweep lists each NodeClass's machines and hands them here:

- a **duplicate**, a second machine under a Node's machine name (a cloud without idempotent creates can make
  two: a create that timed out in the client but completed), is destroyed once the Node records the other;
- an **orphan**, a machine with this cluster's tag that no Node owns, is destroyed once it is older than the
  grace period, by the leader only, and only after a live read of the Node confirms what the cache says.

A machine belongs to the Node whose name and uid give its name (see ``providers.machine_name``), so a Node
deleted and made again under the same name does not keep its predecessor's machine alive.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from ..api import ANNOTATION_MACHINE_ID, FINALIZER_MACHINE, LABEL_NODECLASS, NodeClass
from ..kube import NODES, ApiError, EventRecorder, EventType, Informer, KubeClient, NodeRecord, ObjectReference
from ..providers import Machine, MachineProvider, MachineState, ProviderError, machine_name

log = logging.getLogger(__name__)


class OrphanCollector:
    """Destroys the machines of this cluster that no Node owns, and Nodes' duplicate machines."""

    def __init__(
        self,
        client: KubeClient,
        nodes: Informer[NodeRecord],
        recorder: EventRecorder,
        *,
        remove_finalizer: Callable[[NodeRecord], None],
    ) -> None:
        """``remove_finalizer`` lets a Node go whose machine was destroyed here (the NodeController's)."""
        self._client = client
        self._nodes = nodes
        self._recorder = recorder
        #: Whether this process may destroy machines now (the leader's check, asked right before each destroy).
        self.may_destroy: Callable[[], bool] = lambda: True
        self._remove_finalizer = remove_finalizer
        self.destroyed = 0  #: orphans destroyed so far
        self._first_seen: dict[str, float] = {}  # machine name -> when a sweep first saw it (no creation time)
        self._unlabelled_reported: set[str] = set()  # uids of Nodes told that they lost their NodeClass label

    def collect_duplicates(self, provider: MachineProvider, machines: list[Machine]) -> int:
        """Destroy the second machine of a Node: a cloud without idempotent creates can make two under one name
        (a create that timed out in the client but completed). The one recorded on the Node stays; nothing
        goes while no machine is recorded yet (which one the Node will keep is not known)."""
        by_name: dict[str, list[Machine]] = {}
        for machine in machines:
            if machine.state is not MachineState.TERMINATED:
                by_name.setdefault(machine.name, []).append(machine)
        destroyed = 0
        for name, same in by_name.items():
            if len(same) < 2:
                continue
            owner = self._owner(same[0])
            if owner is None:
                continue  # an orphan's: the orphan collection takes them all
            recorded = owner.annotations.get(ANNOTATION_MACHINE_ID)
            if recorded is None or recorded not in {m.id for m in same}:
                continue
            for extra in (m for m in same if m.id != recorded):
                if not self.may_destroy():
                    return destroyed
                try:
                    provider.destroy(name, extra.id)
                except ProviderError as error:
                    log.warning("destroying duplicate machine %s (id %s): %s", name, extra.id, error)
                    continue
                destroyed += 1
                self._event(
                    owner,
                    "Warning",
                    "DuplicateMachineDestroyed",
                    f"destroyed machine {name} (id {extra.id}), a second machine made for this Node; "
                    f"kept {recorded}, the one recorded on it",
                )
        return destroyed

    def collect_orphans(
        self, nodeclass: NodeClass, provider: MachineProvider, machines: list[Machine], grace: float
    ) -> int:
        """Destroy this cluster's machines that no Node owns once they are older than ``grace`` (seconds).

        A machine belongs to the Node its tags name, and only if its name is the one that Node's name and
        uid give, so a Node deleted and recreated under the same name does not keep its predecessor's
        machine alive. The cache is only a hint: before anything is destroyed the Node is read live, so a Node
        the cache does not show (one that lost its ``kube-node.io/nodeclass`` label, or a lagging watch)
        keeps its machine. A machine with no creation time is timed from when a sweep first saw it.
        """
        destroyed = 0
        now = time.time()
        seen = {m.name for m in machines}
        for name in [n for n in self._first_seen if n not in seen]:
            del self._first_seen[name]
        for machine in machines:
            if machine.state is MachineState.TERMINATED or machine.cluster is None or self._owned(machine):
                continue  # gone already, ownership unknown (no tags to read), or someone's machine
            born = machine.created_at
            if born is None:
                born = self._first_seen.setdefault(machine.name, now)
            if now - born < grace:
                continue
            if self._owned(machine) or not self._orphaned_live(nodeclass, provider, machine):
                continue  # the Node arrived meanwhile, or exists outside the cache
            if not self.may_destroy():
                log.warning("orphan collection: not the leader any more; leaving machine %s", machine.name)
                return destroyed
            try:
                provider.destroy(machine.name)
            except ProviderError as error:
                log.warning("orphan collection: destroying %s: %s", machine.name, error)
                continue
            destroyed += 1
            self.destroyed += 1
            self._first_seen.pop(machine.name, None)
            self._recorder.event(
                ObjectReference.to(nodeclass),
                "Normal",
                "OrphanMachineDestroyed",
                f"destroyed machine {machine.name} ({machine.id}): no Node {machine.node_name} owns it",
            )
        return destroyed

    def _orphaned_live(self, nodeclass: NodeClass, provider: MachineProvider, machine: Machine) -> bool:
        """Whether a live read confirms that no Node owns ``machine``. A Node that owns it but lost its
        NodeClass label keeps it (and is told so), unless it is being deleted: then its finalizer's promise is
        kept, the machine destroyed and the finalizer removed."""
        if not machine.node_name:
            return False  # no Node named: nothing to confirm against
        try:
            current = self._live_owner(machine)
        except ApiError as error:
            log.warning(
                "orphan collection: reading Node %s: %s; leaving machine %s", machine.node_name, error, machine.name
            )
            return False
        if current is None:
            return True  # no Node, or only a later one of the same name: this machine was its predecessor's
        meta = current["metadata"]
        if (meta.get("labels") or {}).get(LABEL_NODECLASS):
            return False  # the cache lags behind
        record = NodeRecord.from_json(current)
        if record.deleting and FINALIZER_MACHINE in record.finalizers:
            try:
                provider.destroy(machine.name)
            except ProviderError as error:
                log.warning("destroying machine %s of unlabelled Node %s: %s", machine.name, record.name, error)
                return False
            self._event(record, "Normal", "MachineDestroyed", f"destroyed machine {machine.name}")
            self._remove_finalizer(record)
            return False
        if record.uid not in self._unlabelled_reported:
            self._unlabelled_reported.add(record.uid)
            message = (
                f"this Node lost its {LABEL_NODECLASS} label, but machine {machine.name} ({machine.id}) of NodeClass "
                f"{nodeclass.metadata.name} still runs for it: kube-node keeps the machine and no longer manages "
                f"the Node. Put the label back ({LABEL_NODECLASS}={nodeclass.metadata.name}), or delete the Node "
                "to destroy the machine"
            )
            log.warning("Node %s: %s", record.name, message)
            self._event(record, "Warning", "NodeClassLabelRemoved", message)
        return False

    def _live_owner(self, machine: Machine) -> dict[str, Any] | None:
        """The Node, read live, whose name and uid give ``machine``'s name, or None. A node name tag the
        provider cut short is only a prefix, so then every Node is listed (rare: only for orphans past grace)."""
        if machine.node_name_truncated:
            prefix = machine.node_name or ""
            candidates = [n for n in self._client.list(NODES)["items"] if n["metadata"]["name"].startswith(prefix)]
        else:
            try:
                candidates = [self._client.get(NODES, machine.node_name or "")]
            except ApiError as error:
                if error.not_found:
                    return None
                raise
        owners = (
            n for n in candidates if machine_name(n["metadata"]["name"], n["metadata"].get("uid", "")) == machine.name
        )
        return next(owners, None)

    def _owned(self, machine: Machine) -> bool:
        """Whether a cached Node's name and uid give this machine's full name."""
        return self._owner(machine) is not None

    def _owner(self, machine: Machine) -> NodeRecord | None:
        """The cached Node whose name and uid give this machine's full name. A node name tag the provider cut
        short is never looked up as a name (it may name no Node, or another): it only narrows the Nodes to try."""
        if machine.node_name_truncated:
            prefix = machine.node_name or ""
            nodes = [node for node in self._nodes.list() if node.name.startswith(prefix)]
        else:
            nodes = [node for node in (self._nodes.get(machine.node_name or ""),) if node is not None]
        return next((node for node in nodes if machine_name(node.name, node.uid) == machine.name), None)

    def _event(self, node: NodeRecord, type_: EventType, reason: str, message: str) -> None:
        self._recorder.event(ObjectReference("Node", node.name, node.uid), type_, reason, message)
