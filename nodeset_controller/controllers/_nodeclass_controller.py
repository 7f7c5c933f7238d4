"""The NodeClassController: a NodeClass in use is never deleted from under its Nodes, and says how it is.

Level-triggered, per NodeClass:

- **in use**: every NodeClass carries the ``kube-node.io/in-use`` finalizer. A NodeClass being deleted keeps
  it while a Node labelled with the class or a NodeSet naming it remains, so the Nodes' machine finalizers
  can still destroy their machines, the machine sweep still lists them, and no Node is marked failed for a
  missing class; a Warning ``DeletionBlocked`` Event and the InUse condition say what still uses it. Once
  nothing does (checked against the API server, not only the cache), the finalizer goes, and so does the
  NodeClass.
- **Ready**: the class's provider can be built (the provider is available, the credentials Secret is found)
  and resolves the size, image and location (``MachineProvider.validate``). That is a cloud call, so it is
  made once per generation and then again on a timer (sooner after a failure), never per reconcile.
- **CapacityMatches**: once a Node of the class is Ready, whether the capacity it reports is what the class
  declares (within 10 %); if not, the figures, and a Warning ``CapacityMismatch`` Event once per change.
  Templates and bin-packing use what the Nodes report either way (``node_resources``, the one place both
  take it from).
- **status**: observedGeneration, how many Nodes and NodeSets use the class, and the conditions Ready,
  InUse and CapacityMatches, written to the status subresource with the NodeClass's resourceVersion (a
  concurrent writer makes it fail with a Conflict and the NodeClass is reconciled again); Events on every
  transition.

Node changes reach a NodeClass after a short pause, so a NodeSet of a thousand Nodes coming up costs a few
status writes, not a thousand.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Any

from ..api import (
    FINALIZER_IN_USE,
    LABEL_NODECLASS,
    Condition,
    NodeClass,
    NodeSet,
    capacity_differences,
    condition_json,
    make_condition,
    node_resources,
)
from ..kube import (
    NODECLASSES,
    NODES,
    NODESETS,
    ApiError,
    EventRecorder,
    EventType,
    Informer,
    KubeClient,
    NodeRecord,
    ObjectReference,
    Result,
    WorkQueue,
    run_workers,
)
from ..providers import ErrorClass, ProviderError, ProviderRegistry

log = logging.getLogger(__name__)

READY = "Ready"
IN_USE = "InUse"
CAPACITY_MATCHES = "CapacityMatches"
#: The conditions this controller owns; others on the NodeClass are kept as they are.
_OWN = (READY, IN_USE, CAPACITY_MATCHES)
#: Names listed in a message, at most.
_NAMES_SHOWN = 3
#: Label values are at most 63 characters: a longer NodeClass name cannot be on any Node.
_MAX_LABEL_VALUE = 63


@dataclass(frozen=True)
class NodeClassControllerSettings:
    """Tunables of the NodeClassController."""

    workers: int = 2
    recheck: float = 300.0  #: how often a Ready NodeClass's provider is checked again (seconds)
    recheck_failed: float = 30.0  #: how often one that is not Ready is checked again
    node_delay: float = 1.0  #: how long a Node change waits before its NodeClass is looked at (batching)


@dataclass(frozen=True)
class _Check:
    """The outcome of one provider check of one generation of a NodeClass."""

    uid: str
    generation: int | None
    values: tuple[str, str, str]  #: (status, reason, message) of the Ready condition
    at: float  #: time.monotonic() of the check

    @property
    def interval_ok(self) -> bool:
        return self.values[0] == "True"


class NodeClassController:
    """Guards NodeClasses in use against deletion and reports whether machines can be made from them."""

    def __init__(  # noqa: PLR0917 - the caches it reads, each named
        self,
        client: KubeClient,
        nodeclasses: Informer[NodeClass],
        nodes: Informer[NodeRecord],
        nodesets: Informer[NodeSet],
        providers: ProviderRegistry,
        recorder: EventRecorder,
        *,
        settings: NodeClassControllerSettings | None = None,
    ) -> None:
        self._client = client
        self._nodeclasses = nodeclasses
        self._nodes = nodes
        self._nodesets = nodesets
        self._providers = providers
        self._recorder = recorder
        self.settings = settings or NodeClassControllerSettings()
        self.queue = WorkQueue("nodeclass-controller")
        self._lock = threading.Lock()
        self._checks: dict[str, _Check] = {}
        nodeclasses.add_handler(self._on_nodeclass)
        nodes.add_handler(self._on_node)
        nodesets.add_handler(self._on_nodeset)

    # -- wiring ------------------------------------------------------------------------------------------

    def _on_nodeclass(self, old: NodeClass | None, new: NodeClass | None) -> None:
        nodeclass = new or old
        if nodeclass is not None:
            self.queue.add(nodeclass.metadata.name)

    def _on_node(self, old: NodeRecord | None, new: NodeRecord | None) -> None:
        if old is not None and new is not None and _summary(old) == _summary(new):
            return  # a heartbeat, an annotation: nothing a NodeClass reports
        for node in (old, new):
            if node is not None and (name := node.labels.get(LABEL_NODECLASS)):
                self._soon(name)

    def _on_nodeset(self, old: NodeSet | None, new: NodeSet | None) -> None:
        if old is not None and new is not None and old.spec.node_class_name == new.spec.node_class_name:
            return
        for nodeset in (old, new):
            if nodeset is not None:
                self._soon(nodeset.spec.node_class_name)

    def _soon(self, name: str) -> None:
        """Look at NodeClass ``name`` after the batching pause, at once if it is waiting to be deleted."""
        nodeclass = self._nodeclasses.get(name)
        if nodeclass is None:
            return
        if nodeclass.metadata.deletion_timestamp:
            self.queue.add(name)
        else:
            self.queue.add_after(name, self.settings.node_delay)

    def start(self, stop: threading.Event) -> list[threading.Thread]:
        """Start the workers; they run until ``stop`` is set."""
        for nodeclass in self._nodeclasses.list():
            self.queue.add(nodeclass.metadata.name)
        threads = run_workers(self.queue, self.reconcile, self.settings.workers, stop)

        def shutdown_on_stop() -> None:
            stop.wait()
            self.queue.shutdown()

        threading.Thread(target=shutdown_on_stop, name="nodeclass-controller-stop", daemon=True).start()
        return threads

    # -- reconcile ---------------------------------------------------------------------------------------

    def reconcile(self, name: str) -> Result | None:
        """Bring one NodeClass's finalizer and status in line with what uses it and what its provider says."""
        nodeclass = self._nodeclasses.get(name)
        if nodeclass is None:
            with self._lock:
                self._checks.pop(name, None)
            return None
        meta = nodeclass.metadata
        deleting = bool(meta.deletion_timestamp)
        if not deleting and FINALIZER_IN_USE not in meta.finalizers:
            self._set_finalizers(nodeclass, [*meta.finalizers, FINALIZER_IN_USE])
            return None  # the write brings the NodeClass back
        members = self._nodes.by_index("nodeclass", name)
        nodes = sorted(n.name for n in members)
        nodesets = sorted(ns.metadata.name for ns in self._nodesets.list() if ns.spec.node_class_name == name)
        if deleting and FINALIZER_IN_USE in meta.finalizers and not nodes and not nodesets:
            if self._used_at_api_server(name):
                return Result(requeue_after=1.0)  # the caches are behind: they will show what the server has
            self._set_finalizers(nodeclass, [f for f in meta.finalizers if f != FINALIZER_IN_USE])
            self._event(nodeclass, "Normal", "Released", "no Node or NodeSet uses this NodeClass any more")
            return None
        check = self._check(nodeclass)
        values = {
            READY: check.values,
            IN_USE: _in_use(nodes, nodesets, deleting=deleting),
            CAPACITY_MATCHES: _capacity_matches(nodeclass, members),
        }
        self._write_status(nodeclass, values, nodes=len(nodes), nodesets=len(nodesets))
        interval = self.settings.recheck if check.interval_ok else self.settings.recheck_failed
        return Result(requeue_after=max(0.1, check.at + interval - time.monotonic()))

    def _used_at_api_server(self, name: str) -> bool:
        """Whether the API server has a Node of class ``name`` or a NodeSet naming it (before the finalizer
        goes: one created a moment ago may not be in the caches yet)."""
        if len(name) <= _MAX_LABEL_VALUE:
            found = self._client.list(NODES, labelSelector=f"{LABEL_NODECLASS}={name}", limit=1)
            if found.get("items"):
                return True
        nodesets = self._client.list(NODESETS).get("items") or []
        return any((ns.get("spec") or {}).get("nodeClassName") == name for ns in nodesets)

    def _set_finalizers(self, nodeclass: NodeClass, finalizers: list[str]) -> None:
        """Write the finalizers, bound to the cached resourceVersion (a stale cache fails with a Conflict and
        the NodeClass is reconciled again)."""
        patch = {"metadata": {"resourceVersion": nodeclass.metadata.resource_version, "finalizers": finalizers or None}}
        try:
            self._client.patch(NODECLASSES, nodeclass.metadata.name, patch)
        except ApiError as error:
            if not error.not_found:
                raise

    # -- the provider check ------------------------------------------------------------------------------

    def _check(self, nodeclass: NodeClass) -> _Check:
        """The Ready condition's values for this generation: from the last check while it is fresh, else from
        a new one (the workqueue never reconciles one NodeClass on two workers, so never two at once)."""
        name, meta = nodeclass.metadata.name, nodeclass.metadata
        now = time.monotonic()
        with self._lock:
            check = self._checks.get(name)
        if check is not None and check.uid == (meta.uid or "") and check.generation == meta.generation:
            interval = self.settings.recheck if check.interval_ok else self.settings.recheck_failed
            if now - check.at < interval:
                return check
        check = _Check(meta.uid or "", meta.generation, self._validate(nodeclass), time.monotonic())
        with self._lock:
            self._checks[name] = check
        return check

    def _validate(self, nodeclass: NodeClass) -> tuple[str, str, str]:
        try:
            summary = self._providers.provider_for(nodeclass).validate()
        except ProviderError as error:
            # A check that could not be made (the cloud unreachable, throttled) says nothing of the class.
            status = "Unknown" if error.error_class is ErrorClass.TRANSIENT else "False"
            return status, _camel(error.code), f"{error} [{error.code}]"
        except Exception as error:  # a driver's bug: say so on the NodeClass, and log the traceback
            log.exception("checking NodeClass %s", nodeclass.metadata.name)
            return "Unknown", "CheckFailed", f"checking the provider failed: {type(error).__name__}: {error}"
        return "True", "Resolved", f"{nodeclass.spec.provider}: {summary}"

    # -- status ------------------------------------------------------------------------------------------

    def _write_status(
        self, nodeclass: NodeClass, values: dict[str, tuple[str, str, str]], *, nodes: int, nodesets: int
    ) -> None:
        name = nodeclass.metadata.name
        generation = nodeclass.metadata.generation
        current = nodeclass.status
        old = {c.type: c for c in (current.conditions if current else [])}
        conditions = [make_condition(kind, values[kind], old.get(kind), generation) for kind in _OWN]
        conditions += [c for kind, c in old.items() if kind not in _OWN]
        if (
            current is not None
            and current.observed_generation == generation
            and current.nodes == nodes
            and current.node_sets == nodesets
            and _same(current.conditions, conditions)
        ):
            return
        status: dict[str, Any] = {
            "observedGeneration": generation,
            "nodes": nodes,
            "nodeSets": nodesets,
            "conditions": [condition_json(c) for c in conditions],
        }
        try:
            self._client.patch(
                NODECLASSES,
                name,
                {"metadata": {"resourceVersion": nodeclass.metadata.resource_version}, "status": status},
                subresource="status",
            )
        except ApiError as error:
            if error.not_found:
                return
            if error.conflict:
                self.queue.add_after(name, 0.05)  # changed meanwhile: recompute from the new version
                return
            raise
        self._transition_events(nodeclass, old, {c.type: c for c in conditions})

    def _transition_events(self, nodeclass: NodeClass, old: dict[str, Condition], new: dict[str, Condition]) -> None:
        ready, was = new[READY], old.get(READY)
        if was is None or (was.status, was.reason) != (ready.status, ready.reason):
            if ready.status == "True":
                self._event(nodeclass, "Normal", "Ready", ready.message)
            else:
                self._event(nodeclass, "Warning", ready.reason, ready.message)
        use, was = new[IN_USE], old.get(IN_USE)
        if use.reason == "DeletionBlocked" and (was is None or was.reason != "DeletionBlocked"):
            self._event(nodeclass, "Warning", "DeletionBlocked", use.message)
        capacity, was = new[CAPACITY_MATCHES], old.get(CAPACITY_MATCHES)
        if capacity.status == "False" and (was is None or (was.status, was.message) != ("False", capacity.message)):
            self._event(nodeclass, "Warning", "CapacityMismatch", capacity.message)

    def _event(self, nodeclass: NodeClass, type_: EventType, reason: str, message: str) -> None:
        self._recorder.event(ObjectReference.to(nodeclass), type_, reason, message)


def _summary(node: NodeRecord) -> tuple[Any, ...]:
    """What of a Node a NodeClass's status depends on."""
    return (node.labels.get(LABEL_NODECLASS), node.deleting, node.ready, node.capacity, node.allocatable)


def _capacity_matches(nodeclass: NodeClass, nodes: list[NodeRecord]) -> tuple[str, str, str]:
    """The CapacityMatches condition's (status, reason, message). The message carries no Node name, so that
    one more Node reporting the same figures changes nothing (and sends no Event)."""
    resources = node_resources(nodeclass, nodes)
    if resources.reported_by is None:
        return (
            "Unknown",
            "NoNodeRegistered",
            "no Node of this class is Ready yet; templates and bin-packing use the declared capacity",
        )
    differences = capacity_differences(nodeclass, resources)
    if not differences:
        return "True", "Matches", "a Ready Node of this class reports the declared capacity"
    reported = ", ".join(
        f"{resource} {got} where the class declares {want}" if got is not None else f"no {resource} (declared {want})"
        for resource, want, got in differences
    )
    return (
        "False",
        "Mismatch",
        f"a Ready Node of this class reports {reported}; templates and bin-packing use what the Nodes report",
    )


def _in_use(nodes: list[str], nodesets: list[str], *, deleting: bool) -> tuple[str, str, str]:
    """The InUse condition's (status, reason, message)."""
    if not nodes and not nodesets:
        return "False", "Unused", "no Node is of this class and no NodeSet names it"
    users = " and ".join(part for part in (_names(nodes, "Node"), _names(nodesets, "NodeSet")) if part)
    if deleting:
        return (
            "True",
            "DeletionBlocked",
            f"deletion waits for {users}: their machines are made and destroyed through this NodeClass; "
            "delete them (or scale the NodeSets to 0 and delete them) and the NodeClass goes",
        )
    return "True", "InUse", f"used by {users}"


def _names(names: list[str], kind: str) -> str:
    if not names:
        return ""
    shown = ", ".join(names[:_NAMES_SHOWN]) + (", ..." if len(names) > _NAMES_SHOWN else "")
    return f"{len(names)} {kind}{'' if len(names) == 1 else 's'} ({shown})"


def _same(old: list[Condition], new: list[Condition]) -> bool:
    """Whether two condition lists say the same, in any order."""
    return sorted(old, key=lambda c: c.type) == sorted(new, key=lambda c: c.type)


def _camel(code: str) -> str:
    """A condition reason from an error code: CREDENTIALS_NOT_FOUND -> CredentialsNotFound."""
    return "".join(part.capitalize() for part in code.split("_") if part) or "ProviderError"


__all__ = ["NodeClassController", "NodeClassControllerSettings"]
