"""The NodeController: a Node that names a NodeClass gets a machine, and loses it before the Node goes.

For each Node labelled ``kube-node.io/nodeclass``, level-triggered:

1. first sight: add the ``kube-node.io/machine`` finalizer, the startup taint (unless the Node is already
   Ready) and the providerID ``kube-node://<class>/<node>`` if it has none, in one write;
2. no machine recorded: create it through the NodeClass's provider. The machine's name comes from the Node's
   name and uid and ``create`` is idempotent by name, so a crash between creating and recording can never
   make a second machine. Record its id and phase on the Node (annotations) and as an Event;
3. machine recorded: follow its state until it runs and the kubelet reports Ready, then remove the startup
   taint;
4. Node being deleted: destroy the machine, then remove the finalizer.

A user-data that names ``${BOOTSTRAP_TOKEN}`` gets a token minted for its machine (see ``_join``); the
tokens named on a Node are deleted once it is Ready, and before its finalizer goes.

Failures are recorded on the Node (``kube-node.io/machine-error``, phase) and as Events, and retried with
exponential backoff. Every write that replaces a field others share (finalizers, taints) carries the
resourceVersion it was computed from, so a concurrent writer makes it fail with a Conflict (and the Node is
reconciled again) instead of being overwritten; writes of kube-node's own annotations are bound to the Node's
uid instead.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..api import (
    ANNOTATION_MACHINE_ERROR,
    ANNOTATION_MACHINE_ERROR_CLASS,
    ANNOTATION_MACHINE_ERROR_CODE,
    ANNOTATION_MACHINE_ERROR_TIME,
    ANNOTATION_MACHINE_ID,
    ANNOTATION_MACHINE_PHASE,
    DEFAULT_REGISTRATION_TIMEOUT_SECONDS,
    FINALIZER_MACHINE,
    LABEL_NODECLASS,
    TAINT_STARTUP,
    NodeClass,
    now_rfc3339,
    provider_id,
)
from ..failpoints import AFTER_MACHINE_CREATE, AFTER_MACHINE_DESTROY, failpoint
from ..kube import (
    NODES,
    ApiError,
    EventRecorder,
    EventType,
    Informer,
    KubeClient,
    NodeRecord,
    NotLeaderError,
    ObjectReference,
    Result,
    WorkQueue,
    run_workers,
)
from ..providers import (
    ErrorClass,
    Machine,
    MachineSpec,
    MachineState,
    ProviderError,
    ProviderRegistry,
    UserDataError,
    machine_name,
    render_user_data,
    user_data_variables,
)
from ._join import JoinCredentials, JoinUnavailableError
from ._orphans import OrphanCollector

log = logging.getLogger(__name__)


class Phase:
    """Values of the ``kube-node.io/machine-phase`` annotation."""

    #: no machine recorded yet: waiting for the NodeClass, retrying a failed create, or (for up to the record
    #: grace) a machine created running whose record waits for the write that removes the startup taint
    PENDING = "Pending"
    CREATING = "Creating"  #: the machine exists and is booting
    RUNNING = "Running"  #: the machine runs
    FAILED = "Failed"  #: the machine failed or vanished; it will not come back by itself


@dataclass(frozen=True)
class NodeControllerSettings:
    """Tunables of the NodeController."""

    cluster: str = "kube-node"
    workers: int = 16
    boot_poll: float = 1.0  #: how often a booting machine's state is polled (seconds)
    resync: float = 300.0  #: how often a settled Node is checked again
    orphan_grace: float = 600.0  #: a machine with no Node is destroyed once it is this old
    sweep_interval: float = 30.0  #: how often each NodeClass's machines are listed (failures, orphans)
    #: how long a machine that is already running when created may wait to be recorded on its Node in the same
    #: write that removes the startup taint, before it is recorded on its own (seconds)
    record_grace: float = 10.0


class NodeController:
    """Provisions and destroys the machines behind managed Nodes."""

    def __init__(
        self,
        client: KubeClient,
        nodes: Informer[NodeRecord],
        nodeclasses: Informer[NodeClass],
        providers: ProviderRegistry,
        recorder: EventRecorder,
        *,
        settings: NodeControllerSettings | None = None,
        join: JoinCredentials | None = None,
        token_ttl: Callable[[NodeRecord], float] = lambda _: float(DEFAULT_REGISTRATION_TIMEOUT_SECONDS),
    ) -> None:
        self._client = client
        self._join = join
        self._token_ttl = token_ttl
        self._nodes = nodes
        self._nodeclasses = nodeclasses
        self._providers = providers
        self._recorder = recorder
        self.settings = settings or NodeControllerSettings()
        self.queue = WorkQueue("node-controller")
        nodes.add_handler(self._on_node)
        nodeclasses.add_handler(self._on_nodeclass)
        # Machines created running and not yet written on their Node, by Node uid, with when to stop waiting
        # for the kubelet. Losing this (a restart) costs nothing: the idempotent create finds the machine again.
        self._unrecorded: dict[str, _Unrecorded] = {}
        self._orphans = OrphanCollector(client, nodes, recorder, remove_finalizer=self._remove_finalizer)

    # -- wiring ------------------------------------------------------------------------------------------

    def _on_node(self, old: NodeRecord | None, new: NodeRecord | None) -> None:
        node = new or old
        if node is None:
            return
        if old is not None and new is not None and _only_own_annotations_changed(old, new):
            # Its own writes (an error, a phase) must not requeue the Node at once, past the rate limiter:
            # with an error text that changes every time, that would be a tight loop of cloud calls and writes.
            return
        self.queue.add(node.name)

    def _on_nodeclass(self, old: NodeClass | None, new: NodeClass | None) -> None:
        nodeclass = new or old
        if nodeclass is None:
            return
        for node in self._nodes.by_index("nodeclass", nodeclass.metadata.name):
            self.queue.add(node.name)

    def start(self, stop: threading.Event) -> list[threading.Thread]:
        """Start the workers and the orphan collector; they run until ``stop`` is set."""
        threads = run_workers(self.queue, self.reconcile, self.settings.workers, stop)
        collector = threading.Thread(target=self._sweep_forever, args=(stop,), name="machine-sweep", daemon=True)
        collector.start()

        def shutdown_on_stop() -> None:
            stop.wait()
            self.queue.shutdown()

        stop_watcher = threading.Thread(target=shutdown_on_stop, name="node-controller-stop", daemon=True)
        stop_watcher.start()
        return [*threads, collector]

    # -- reconcile ---------------------------------------------------------------------------------------

    def reconcile(self, name: str) -> Result | None:
        """Bring one Node's machine in line with the Node."""
        node = self._nodes.get(name)
        if node is None or LABEL_NODECLASS not in node.labels:
            self._forget_unrecorded(name)  # deleted, or no longer ours (the cache holds only labelled Nodes)
            return None
        if node.deleting or ANNOTATION_MACHINE_ID in node.annotations:
            # Only once the cache shows the record: a reconcile on a version from before it must still know
            # the machine (its write then fails on the resourceVersion) rather than create and record again.
            self._unrecorded.pop(node.uid, None)
        if node.deleting:
            return self._finalize(node) if FINALIZER_MACHINE in node.finalizers else None
        if FINALIZER_MACHINE not in node.finalizers or not node.provider_id:
            self._initialize(node)
            return None  # the write brings the Node back through the watch
        nodeclass = self._nodeclasses.get(node.labels[LABEL_NODECLASS])
        if nodeclass is None:
            if ANNOTATION_MACHINE_ID in node.annotations or node.uid in self._unrecorded:
                # Its machine exists: a NodeClass deleted and created again must not fail (and replace) the Node.
                self._event(node, "Warning", "NodeClassNotFound", "its NodeClass does not exist; machine kept")
                return None
            self._record_problem(
                node, "NodeClassNotFound", f"NodeClass {node.labels[LABEL_NODECLASS]} does not exist; no machine"
            )
            return None  # the NodeClass's appearance brings the Node back
        if ANNOTATION_MACHINE_ID not in node.annotations:
            unrecorded = self._unrecorded.get(node.uid)
            if unrecorded is None:
                return self._create_machine(node, nodeclass)
            if unrecorded.written:  # recorded already; the cache has not caught up: no second create
                return Result(requeue_after=self.settings.boot_poll)
            return self._follow_machine(node, nodeclass, unrecorded=unrecorded)
        return self._follow_machine(node, nodeclass)

    def _initialize(self, node: NodeRecord) -> None:
        patch: dict[str, Any] = {
            "metadata": {"resourceVersion": node.resource_version, "finalizers": [*node.finalizers, FINALIZER_MACHINE]}
        }
        if FINALIZER_MACHINE in node.finalizers:
            del patch["metadata"]["finalizers"]
        spec: dict[str, Any] = {}
        if not node.provider_id:
            spec["providerID"] = provider_id(node.labels[LABEL_NODECLASS], node.name)
        if FINALIZER_MACHINE not in node.finalizers and node.ready is not True and not node.has_taint(TAINT_STARTUP):
            # Only on first sight: a pre-created Node must not attract pods before its kubelet is up.
            spec["taints"] = [*(t.to_json() for t in node.taints), {"key": TAINT_STARTUP, "effect": "NoSchedule"}]
        if spec:
            patch["spec"] = spec
        if FINALIZER_MACHINE not in node.finalizers:
            patch["metadata"]["annotations"] = {ANNOTATION_MACHINE_PHASE: Phase.PENDING}
        self._patch(node, patch)

    def _create_machine(self, node: NodeRecord, nodeclass: NodeClass) -> Result | None:
        try:
            spec = self._machine_spec(node, nodeclass)
            provider = self._providers.provider_for(nodeclass)
            machine = provider.create(spec)
        except UserDataError as error:
            self._record_problem(node, "InvalidUserData", f"NodeClass {nodeclass.metadata.name}: {error}")
            return None  # fixing the NodeClass brings the Node back
        except JoinUnavailableError as error:
            self._record_problem(node, "JoinUnavailable", f"NodeClass {nodeclass.metadata.name}: {error}")
            return Result(backoff=True)
        except NotLeaderError:
            raise
        except ApiError as error:
            self._record_problem(
                node,
                "BootstrapTokenFailed",
                f"minting the bootstrap token of machine {machine_name(node.name, node.uid)}: {error}",
                error_class=ErrorClass.TRANSIENT,
                code="BOOTSTRAP_TOKEN_FAILED",
            )
            return Result(backoff=True)
        except ProviderError as error:
            self._record_problem(
                node,
                "MachineCreateFailed",
                f"creating machine {machine_name(node.name, node.uid)}: {error} [{error.code}]",
                error_class=error.error_class,
                code=error.code,
            )
            return Result(backoff=True) if error.retryable else None
        failpoint(AFTER_MACHINE_CREATE)
        created = f"created machine {machine.name} ({machine.id}) from NodeClass {nodeclass.metadata.name}"
        if machine.state is MachineState.RUNNING and node.ready is not True and not _has_error(node):
            # Up already (a fast cloud, or the simulator without boot delay): its kubelet is about to report
            # Ready, and the write that then removes the startup taint records the machine too, one write
            # fewer per Node. If the kubelet is slow, the machine is recorded on its own after the grace.
            self._unrecorded[node.uid] = _Unrecorded(node.name, machine, time.monotonic() + self.settings.record_grace)
            self._event(node, "Normal", "MachineCreated", created)
            return Result(requeue_after=self.settings.record_grace)
        # Only our own annotations change, so a concurrent writer (the node lifecycle controller's taints, a
        # kubelet's status) loses nothing: the write is bound to this Node's uid, not its resourceVersion.
        # A Conflict here would leave a machine unrecorded until the next reconcile finds it again.
        self._patch(
            node,
            {"metadata": {"uid": node.uid, "annotations": _machine_record(machine)}},
        )
        # Until the cache shows the record, a reconcile must not take the Node for one without a machine.
        self._unrecorded[node.uid] = _Unrecorded(node.name, machine, time.monotonic(), written=True)
        self._event(node, "Normal", "MachineCreated", created)
        return Result(requeue_after=self.settings.boot_poll)

    def _follow_machine(
        self, node: NodeRecord, nodeclass: NodeClass, *, unrecorded: _Unrecorded | None = None
    ) -> Result | None:
        """Bring the Node's record of its machine, and its startup taint, in line with the machine and the
        kubelet; with ``unrecorded`` (a machine created running, and its deadline) also record the machine."""
        name = machine_name(node.name, node.uid)
        try:
            machine = self._providers.provider_for(nodeclass).get(name)
        except ProviderError as error:
            self._record_problem(
                node, "MachineUnknown", f"reading machine {name}: {error} [{error.code}]", error_class=error.error_class
            )
            return Result(backoff=True)
        error_text: str | None
        if machine is None:
            phase, error_text = Phase.FAILED, f"machine {name} no longer exists at the provider"
        else:
            phase, error_text = _phase_of(machine), machine.error
            if phase == Phase.CREATING and node.ready is True:
                phase = Phase.RUNNING  # its kubelet reports Ready: the machine runs, whatever the cloud says yet
        annotations: dict[str, str | None] = {}
        if phase != Phase.FAILED and _has_error(node):
            # The provider answered: an error recorded before (a missing NodeClass, a failed read) is over.
            annotations.update(dict.fromkeys(_ERROR_ANNOTATIONS))
        if unrecorded is not None:
            wait = unrecorded.deadline - time.monotonic()
            if phase == Phase.RUNNING and node.ready is not True and wait > 0:
                return Result(requeue_after=wait)  # the kubelet's Ready brings the Node back sooner
            annotations[ANNOTATION_MACHINE_ID] = unrecorded.machine.id
            annotations.update(dict.fromkeys(_ERROR_ANNOTATIONS))
        if node.annotations.get(ANNOTATION_MACHINE_PHASE) != phase:
            annotations[ANNOTATION_MACHINE_PHASE] = phase
            if phase == Phase.FAILED:
                self._event(node, "Warning", "MachineFailed", error_text or f"machine {name} failed")
            elif phase == Phase.RUNNING and unrecorded is None:  # MachineCreated said so for one created running
                self._event(node, "Normal", "MachineRunning", f"machine {name} is running")
        if phase == Phase.FAILED and node.annotations.get(ANNOTATION_MACHINE_ERROR) != error_text:
            if node.annotations.get(ANNOTATION_MACHINE_PHASE) != phase:
                annotations[ANNOTATION_MACHINE_ERROR_TIME] = now_rfc3339(micro=True)
            annotations[ANNOTATION_MACHINE_ERROR] = error_text
            annotations[ANNOTATION_MACHINE_ERROR_CLASS] = str(ErrorClass.OTHER)
            annotations[ANNOTATION_MACHINE_ERROR_CODE] = "MACHINE_FAILED" if machine else "MACHINE_NOT_FOUND"
        patch: dict[str, Any] = {"metadata": {"resourceVersion": node.resource_version}}
        if annotations:
            patch["metadata"]["annotations"] = annotations
        joined = node.ready is True and node.has_taint(TAINT_STARTUP)
        if joined:
            patch["spec"] = {"taints": [t.to_json() for t in node.taints if t.key != TAINT_STARTUP] or None}
            self._event(node, "Normal", "NodeReady", "kubelet reports Ready; removed the startup taint")
        if len(patch) > 1 or annotations:
            self._patch(node, patch)
        if node.ready is True and self._join is not None and self._join.holds_tokens(node):
            self._release_tokens(node, "it is Ready")
        if phase == Phase.RUNNING and node.ready is True:
            return Result(requeue_after=self.settings.resync)
        if phase == Phase.FAILED:
            return Result(requeue_after=self.settings.resync)
        # Booting, or running with no Ready yet: poll less often the longer it takes (a tenth of its age).
        age = max(0.0, time.time() - node.created)
        return Result(requeue_after=min(max(self.settings.boot_poll, age / 10), _MAX_BOOT_POLL))

    def _finalize(self, node: NodeRecord) -> Result | None:
        name = machine_name(node.name, node.uid)
        nodeclass = self._nodeclasses.get(node.labels.get(LABEL_NODECLASS, ""))
        if nodeclass is None:
            self._record_problem(
                node,
                "MachineDestroyBlocked",
                f"cannot destroy machine {name}: NodeClass {node.labels.get(LABEL_NODECLASS)} does not exist. Recreate "
                f"it, or remove the {FINALIZER_MACHINE} finalizer by hand once the machine is gone",
            )
            return None
        try:
            self._providers.provider_for(nodeclass).destroy(name)
        except ProviderError as error:
            self._record_problem(
                node,
                "MachineDestroyFailed",
                f"destroying machine {name}: {error} [{error.code}]",
                error_class=error.error_class,
                code=error.code,
            )
            return Result(backoff=True)
        failpoint(AFTER_MACHINE_DESTROY)
        self._event(node, "Normal", "MachineDestroyed", f"destroyed machine {name}")
        self._release_tokens(node, "it is being deleted")
        self._remove_finalizer(node)
        return None

    def _remove_finalizer(self, node: NodeRecord) -> None:
        """Remove our finalizer, from the cached record first and, if that is stale, from a fresh read."""
        finalizers, version = list(node.finalizers), node.resource_version
        for attempt in range(2):
            remaining = [f for f in finalizers if f != FINALIZER_MACHINE]
            patch = {"metadata": {"resourceVersion": version, "finalizers": remaining or None}}
            try:
                self._client.patch(NODES, node.name, patch)
                return
            except ApiError as error:
                if error.not_found:
                    return  # someone removed the finalizer by hand, and the Node is gone
                if not error.conflict or attempt:
                    raise
            current = self._client.get(NODES, node.name)
            finalizers = current["metadata"].get("finalizers") or []
            version = current["metadata"]["resourceVersion"]

    def record_pending(self) -> int:
        """Write down every machine still waiting to be recorded with its startup taint's removal. For a clean
        shutdown, once no reconcile runs any more, so that it leaves every machine it made on its Node; one it
        misses is found again by the next leader's idempotent create. Returns how many it wrote."""
        written = 0
        for uid, pending in list(self._unrecorded.items()):
            self._unrecorded.pop(uid, None)
            node = self._nodes.get(pending.node)
            if pending.written or node is None or node.uid != uid or node.deleting:
                continue
            if ANNOTATION_MACHINE_ID in node.annotations:
                continue
            record = _machine_record(pending.machine)
            # Bound to the cached resourceVersion: nothing written since is overwritten.
            patch = {"metadata": {"resourceVersion": node.resource_version, "annotations": record}}
            try:
                self._client.patch(NODES, pending.node, patch)
                written += 1
            except ApiError as error:
                log.warning(
                    "recording machine %s on Node %s at shutdown: %s", pending.machine.name, pending.node, error
                )
        return written

    def _forget_unrecorded(self, name: str) -> None:
        for uid, pending in list(self._unrecorded.items()):
            if pending.node == name:
                self._unrecorded.pop(uid, None)

    # -- helpers -----------------------------------------------------------------------------------------

    def _machine_spec(self, node: NodeRecord, nodeclass: NodeClass) -> MachineSpec:
        taints = [t.to_json() for t in node.taints if t.key != TAINT_STARTUP]
        node_provider_id = node.provider_id or provider_id(nodeclass.metadata.name, node.name)
        user_data = ""
        if nodeclass.spec.user_data:
            join = {}
            if self._join is not None:
                join = self._join.values(
                    node,
                    nodeclass.metadata.name,
                    self._token_ttl(node),
                    user_data_variables(nodeclass.spec.user_data),
                )
            user_data = render_user_data(
                nodeclass.spec.user_data,
                node_name=node.name,
                nodeclass=nodeclass.metadata.name,
                provider_id=node_provider_id,
                labels=node.labels,
                taints=taints,
                join=join,
            )
        return MachineSpec(
            name=machine_name(node.name, node.uid),
            node_name=node.name,
            node_uid=node.uid,
            nodeclass=nodeclass.metadata.name,
            cluster=self.settings.cluster,
            provider_id=node_provider_id,
            user_data=user_data,
            capacity={k: str(v) for k, v in nodeclass.spec.capacity.items()},
            labels=dict(node.labels),
            taints=taints,
        )

    def _patch(self, node: NodeRecord, patch: dict[str, Any], *, precondition: bool = True) -> None:
        """Write ``patch``; with ``precondition`` it carries the record's resourceVersion (already in the patch),
        so a stale record fails with a Conflict and the Node is reconciled again from fresh state."""
        if not precondition:
            patch["metadata"].pop("resourceVersion", None)
        try:
            self._client.patch(NODES, node.name, patch)
        except ApiError as error:
            if error.not_found:
                return
            raise

    def _record_problem(
        self,
        node: NodeRecord,
        reason: str,
        message: str,
        error_class: ErrorClass | None = None,
        code: str | None = None,
    ) -> None:
        self._event(node, "Warning", reason, message)
        annotations = {
            ANNOTATION_MACHINE_ERROR: message,
            ANNOTATION_MACHINE_ERROR_CLASS: str(error_class or ErrorClass.INVALID_CONFIGURATION),
            ANNOTATION_MACHINE_ERROR_CODE: code or _code_for(reason),
        }
        pending = self._unrecorded.get(node.uid)
        if pending is not None and ANNOTATION_MACHINE_ID not in node.annotations:
            # An error beside no machine id reads as a failed create (to the cluster-autoscaler too): a machine
            # waiting to be recorded is recorded with it.
            annotations[ANNOTATION_MACHINE_ID] = pending.machine.id
        # Compared by class and code, not by message: a text that changes every time (request ids, timestamps)
        # must not cost a write per attempt.
        if ANNOTATION_MACHINE_ERROR not in node.annotations or any(
            node.annotations.get(key) != annotations[key]
            for key in (ANNOTATION_MACHINE_ERROR_CLASS, ANNOTATION_MACHINE_ERROR_CODE, ANNOTATION_MACHINE_ID)
            if key in annotations
        ):
            annotations[ANNOTATION_MACHINE_ERROR_TIME] = now_rfc3339(micro=True)
            self._patch(node, {"metadata": {"annotations": annotations}}, precondition=False)

    def _release_tokens(self, node: NodeRecord, why: str) -> None:
        """Delete the bootstrap tokens named on the Node (it joined, or is going); a failure is retried by
        the Node's next reconcile (a Ready Node that still names tokens), or fails its finalization."""
        if self._join is not None:
            self._join.release(node, why)

    def _event(self, node: NodeRecord, type_: EventType, reason: str, message: str) -> None:
        self._recorder.event(ObjectReference("Node", node.name, node.uid), type_, reason, message)

    @property
    def may_destroy(self) -> Callable[[], bool]:
        """Whether this process may destroy orphans now (the leader's check, asked right before each destroy)."""
        return self._orphans.may_destroy

    @may_destroy.setter
    def may_destroy(self, check: Callable[[], bool]) -> None:
        self._orphans.may_destroy = check

    @property
    def orphans_destroyed(self) -> int:
        """How many orphan machines this controller destroyed."""
        return self._orphans.destroyed

    # -- the machine sweep -------------------------------------------------------------------------------

    def _sweep_forever(self, stop: threading.Event) -> None:
        while not stop.wait(self.settings.sweep_interval):
            try:
                self.sweep()
            except NotLeaderError as error:  # the fence has said so; the process is about to stop
                log.debug("machine sweep stopped: %s", error)
            except Exception:
                log.exception("machine sweep failed")

    def sweep(self) -> int:
        """List each NodeClass's machines once: Nodes whose machine vanished or failed are reconciled (a dead
        machine's kubelet cannot say so itself), and machines no Node owns are destroyed once they are older
        than the grace period. Returns how many orphans were destroyed."""
        if not (self._nodes.synced and self._nodeclasses.synced):
            return 0
        destroyed = 0
        for nodeclass in self._nodeclasses.list():
            try:
                provider = self._providers.provider_for(nodeclass)
                machines = provider.list()
            except ProviderError as error:
                log.warning("machine sweep: NodeClass %s: %s", nodeclass.metadata.name, error)
                continue
            self._notice_changed_machines(nodeclass, machines)
            destroyed += self._orphans.collect_duplicates(provider, machines)
            destroyed += self._orphans.collect_orphans(nodeclass, provider, machines, self.settings.orphan_grace)
        return destroyed

    def _notice_changed_machines(self, nodeclass: NodeClass, machines: list[Machine]) -> None:
        by_name = {m.name: m for m in machines}
        for node in self._nodes.by_index("nodeclass", nodeclass.metadata.name):
            if node.deleting or ANNOTATION_MACHINE_ID not in node.annotations:
                continue
            machine = by_name.get(machine_name(node.name, node.uid))
            phase = Phase.FAILED if machine is None else _phase_of(machine)
            if node.annotations.get(ANNOTATION_MACHINE_PHASE) != phase:
                self.queue.add(node.name)


@dataclass(frozen=True)
class _Unrecorded:
    """A machine not yet shown on its Node in the cache: one created running, recorded with the startup taint's
    removal or on its own at ``deadline`` (a monotonic time); or one ``written`` already, whose record the cache
    has not caught up with (so a reconcile on the older version neither creates nor announces it again)."""

    node: str
    machine: Machine
    deadline: float
    written: bool = False  #: recorded on the Node already; waiting only for the cache to show it


_ERROR_ANNOTATIONS = (
    ANNOTATION_MACHINE_ERROR,
    ANNOTATION_MACHINE_ERROR_CLASS,
    ANNOTATION_MACHINE_ERROR_CODE,
    ANNOTATION_MACHINE_ERROR_TIME,
)
_MAX_BOOT_POLL = 30.0  #: the slowest a booting machine is polled (seconds)


def _only_own_annotations_changed(old: NodeRecord, new: NodeRecord) -> bool:
    """Whether the update changed nothing but kube-node's own annotations (a write of this controller's)."""
    return dataclasses.replace(old, resource_version=new.resource_version, annotations=new.annotations) == new


def _machine_record(machine: Machine) -> dict[str, str | None]:
    """The annotations that record a machine on its Node, clearing any error recorded before it."""
    return {
        ANNOTATION_MACHINE_ID: machine.id,
        ANNOTATION_MACHINE_PHASE: _phase_of(machine),
        **dict.fromkeys(_ERROR_ANNOTATIONS),
    }


def _has_error(node: NodeRecord) -> bool:
    """Whether the Node records a machine error (which only a write clears)."""
    return any(key in node.annotations for key in _ERROR_ANNOTATIONS)


def _code_for(reason: str) -> str:
    """A stable error code from an Event reason: NodeClassNotFound -> NODE_CLASS_NOT_FOUND."""
    return "".join(f"_{c}" if c.isupper() and i else c for i, c in enumerate(reason)).upper()


def _phase_of(machine: Machine) -> str:
    return {
        MachineState.PENDING: Phase.CREATING,
        MachineState.RUNNING: Phase.RUNNING,
        MachineState.FAILED: Phase.FAILED,
        MachineState.TERMINATING: Phase.FAILED,
        MachineState.TERMINATED: Phase.FAILED,
    }[machine.state]
