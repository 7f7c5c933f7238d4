"""The NodeSetController: a NodeSet keeps ``replicas`` Nodes of its NodeClass, as a ReplicaSet keeps pods.

Level-triggered, per NodeSet:

- **create** the missing Nodes from the template (name ``<set>-<random>``, the NodeSet and NodeClass labels,
  the class's and the template's labels and taints, an ownerReference, and, from the first moment, the
  machine finalizer, the providerID and the startup taint); the NodeController then gives each a machine.
  Creation starts slowly (1, 2, 4, ... at once) and stops at the first error, as the ReplicaSet controller's
  does, so a broken API or quota is not hammered.
- **scale down** by choosing victims (see ``_scale_down``), cordoning them and draining them through the
  Eviction API (see ``_drain``), then deleting them; a drain that outlasts ``drain.timeoutSeconds`` ends
  with a DrainTimeout Event and the Node is deleted anyway.
- **replace** Nodes whose machine failed, at most ``replacement.maxInFlight`` at a time and with a growing
  pause while replacements keep failing, so a broken cloud cannot make the set churn (not in
  ClusterAutoscaler mode: there the autoscaler sees the failures and deletes them itself).
- **status**: replicas, readyReplicas, observedGeneration, selector and the Ready, Progressing and
  ReplicaFailure conditions, written with the NodeSet's resourceVersion so no write is lost.
- **delete** the Nodes of a NodeSet that is gone (no garbage collector is needed).
"""

from __future__ import annotations

import concurrent.futures
import logging
import secrets
import string
import threading
import time
from dataclasses import dataclass
from typing import Any

from ..api import (
    ANNOTATION_DRAIN_STARTED,
    ANNOTATION_MACHINE_ERROR,
    ANNOTATION_MACHINE_ERROR_CLASS,
    ANNOTATION_MACHINE_PHASE,
    ANNOTATION_REMOVAL_REASON,
    API_VERSION,
    FINALIZER_MACHINE,
    LABEL_NODECLASS,
    LABEL_NODESET,
    NODESET_KIND,
    TAINT_STARTUP,
    Condition,
    NodeClass,
    NodeSet,
    nodeset_selector,
    provider_id,
)
from ..kube import (
    NODES,
    NODESETS,
    ApiError,
    EventRecorder,
    EventType,
    Informer,
    KubeClient,
    NodeRecord,
    ObjectReference,
    PodRecord,
    Result,
    WorkQueue,
    now_rfc3339,
    parse_time,
    run_workers,
)
from ._drain import Drainer
from ._expectations import Expectations
from ._node_template import node_labels, node_taints
from ._removal import prune_requested, request_removal, requested_nodes
from ._scale_down import choose_victims, is_failed, is_ready

log = logging.getLogger(__name__)

_SUFFIX_ALPHABET = string.ascii_lowercase + string.digits
_DRAIN_POLL = 1.0


@dataclass(frozen=True)
class NodeSetControllerSettings:
    """Tunables of the NodeSetController."""

    workers: int = 4
    create_parallelism: int = 16
    resync: float = 30.0
    replacement_backoff: float = 5.0  #: the first pause after a replacement; doubles while they keep failing
    replacement_backoff_max: float = 300.0
    #: In ClusterAutoscaler mode, how long a failed instance stays for the autoscaler to see (its loop is
    #: 10 s by default) before kube-node removes it and lowers replicas.
    failed_instance_ttl: float = 60.0


class NodeSetController:
    """Keeps each NodeSet's Nodes in line with its spec."""

    def __init__(  # noqa: PLR0917 - the caches it reads, each named
        self,
        client: KubeClient,
        nodesets: Informer[NodeSet],
        nodes: Informer[NodeRecord],
        nodeclasses: Informer[NodeClass],
        pods: Informer[PodRecord],
        recorder: EventRecorder,
        *,
        settings: NodeSetControllerSettings | None = None,
    ) -> None:
        self._client = client
        self._nodesets = nodesets
        self._nodes = nodes
        self._nodeclasses = nodeclasses
        self._pods = pods
        self._recorder = recorder
        self.settings = settings or NodeSetControllerSettings()
        self.queue = WorkQueue("nodeset-controller")
        self.expectations = Expectations()
        self._drainer = Drainer(client, pods)
        self._create_pool = concurrent.futures.ThreadPoolExecutor(
            self.settings.create_parallelism, thread_name_prefix="nodeset-create"
        )
        self._lock = threading.Lock()
        self._replace_after: dict[str, tuple[float, float]] = {}  # set -> (not before, next pause)
        self._create_errors: dict[str, str] = {}  # set -> last error creating a Node
        self._blocked_reported: dict[str, str] = {}  # node -> last eviction refusal reported
        nodesets.add_handler(self._on_nodeset)
        nodes.add_handler(self._on_node)
        nodeclasses.add_handler(self._on_nodeclass)
        pods.add_handler(self._on_pod)

    # -- wiring ------------------------------------------------------------------------------------------

    def _on_nodeset(self, old: NodeSet | None, new: NodeSet | None) -> None:
        nodeset = new or old
        if nodeset is not None:
            self.queue.add(nodeset.metadata.name)

    def _on_node(self, old: NodeRecord | None, new: NodeRecord | None) -> None:
        node = new or old
        if node is None:
            return
        owner = node.labels.get(LABEL_NODESET)
        if owner:
            self.expectations.observed(owner, node.name, present=new is not None)
            self.queue.add(owner)

    def _on_nodeclass(self, old: NodeClass | None, new: NodeClass | None) -> None:
        nodeclass = new or old
        if nodeclass is None:
            return
        for nodeset in self._nodesets.list():
            if nodeset.spec.node_class_name == nodeclass.metadata.name:
                self.queue.add(nodeset.metadata.name)

    def _on_pod(self, old: PodRecord | None, new: PodRecord | None) -> None:
        pod = new or old
        if pod is None or not pod.node:
            return
        node = self._nodes.get(pod.node)
        if node is not None and ANNOTATION_DRAIN_STARTED in node.annotations:
            owner = node.labels.get(LABEL_NODESET)
            if owner:
                self.queue.add(owner)

    def start(self, stop: threading.Event) -> list[threading.Thread]:
        """Start the workers; they run until ``stop`` is set. Sets whose NodeSet is gone are looked at too."""
        for node in self._nodes.list():
            owner = node.labels.get(LABEL_NODESET)
            if owner:
                self.queue.add(owner)
        threads = run_workers(self.queue, self.reconcile, self.settings.workers, stop)

        def shutdown_on_stop() -> None:
            stop.wait()
            self.queue.shutdown()
            self._create_pool.shutdown(wait=False, cancel_futures=True)

        threading.Thread(target=shutdown_on_stop, name="nodeset-controller-stop", daemon=True).start()
        return threads

    # -- reconcile ---------------------------------------------------------------------------------------

    def reconcile(self, name: str) -> Result | None:
        """Bring one NodeSet's Nodes and status in line with its spec."""
        nodeset = self._nodesets.get(name)
        members = self._nodes.by_index("nodeset", name)
        if nodeset is None or nodeset.metadata.deletion_timestamp:
            self._delete_all(name, members)
            return None
        now = time.time()
        uid = nodeset.metadata.uid or ""
        stale = [n for n in members if n.owner_uid and n.owner_uid != uid and not n.deleting]
        for node in stale:  # left by an earlier NodeSet of the same name
            self._delete_node(nodeset, node, "a NodeSet of the same name that no longer exists")
        pending_deletions = self.expectations.pending_deletions(name)
        live = [n for n in members if n not in stale and not n.deleting and n.name not in pending_deletions]
        leaving = [n for n in live if ANNOTATION_DRAIN_STARTED in n.annotations]
        active = [n for n in live if ANNOTATION_DRAIN_STARTED not in n.annotations]
        pending_creations = self.expectations.pending_creations(name) - {n.name for n in members}

        requeue: float | None = None
        for node in leaving:
            if self._continue_removal(nodeset, node, now):
                requeue = _DRAIN_POLL
        active, replacing = self._replace_failed(nodeset, active, members, now)

        requested = requested_nodes(nodeset)
        if requested - {n.name for n in members}:
            prune_requested(self._client, nodeset, {n.name for n in members})
        if nodeset.spec.autoscaling.mode in ("ClusterAutoscaler", "KubeNode"):
            self._remove_failed_instances(nodeset, active, requested, now)

        nodeclass = self._nodeclasses.get(nodeset.spec.node_class_name)
        desired = nodeset.spec.replicas
        current = len(active) + len(pending_creations)
        if nodeclass is not None and current < desired:
            self._create_nodes(nodeset, nodeclass, desired - current)
        elif current > desired:
            excess = current - desired
            victims = choose_victims(
                active,
                min(excess, len(active)),
                nodeset.spec.delete_policy,
                now=now,
                registration_timeout=nodeset.spec.replacement.registration_timeout_seconds,
                requested=requested,
            )
            for node in victims:
                self._start_removal(nodeset, node, "ScaleDown")
                requeue = _DRAIN_POLL
            active = [n for n in active if n not in victims]
        self._write_status(
            nodeset, nodeclass, active=active, leaving=leaving, replacing=replacing, pending_creations=pending_creations
        )
        if requeue is None and (len(active) != desired or any(not is_ready(n) for n in active)):
            requeue = 5.0  # registration timeouts and failures are time-based
        return Result(requeue_after=requeue or self.settings.resync)

    # -- scale up ----------------------------------------------------------------------------------------

    def _create_nodes(self, nodeset: NodeSet, nodeclass: NodeClass, count: int) -> None:
        name = nodeset.metadata.name
        created = 0
        batch = 1
        while created < count:
            size = min(batch, count - created)
            bodies = [self._node_manifest(nodeset, nodeclass) for _ in range(size)]
            for body in bodies:
                self.expectations.expect_creation(name, body["metadata"]["name"])
            results = list(self._create_pool.map(self._create_one, bodies))
            errors = [r for r in results if r is not None]
            for body, error in zip(bodies, results, strict=True):
                node_name = body["metadata"]["name"]
                if error is None:
                    self._event_nodeset(nodeset, "Normal", "SuccessfulCreate", f"created Node {node_name}")
                else:
                    self.expectations.observed(name, node_name, present=False)
            created += size - len(errors)
            if errors:
                with self._lock:
                    self._create_errors[name] = errors[0]
                self._event_nodeset(nodeset, "Warning", "FailedCreate", f"creating a Node: {errors[0]}")
                return
            batch *= 2
        with self._lock:
            self._create_errors.pop(name, None)

    def _create_one(self, body: dict[str, Any]) -> str | None:
        for _ in range(3):
            try:
                self._client.create(NODES, body)
                return None
            except ApiError as error:
                if not error.already_exists:
                    return f"{error.reason}: {error.message}"
                body["metadata"]["name"] = _node_name(body["metadata"]["labels"][LABEL_NODESET])
                body["metadata"]["labels"]["kubernetes.io/hostname"] = body["metadata"]["name"]
                body["spec"]["providerID"] = provider_id(
                    body["metadata"]["labels"][LABEL_NODECLASS], body["metadata"]["name"]
                )
        return "could not find a free Node name"

    def _node_manifest(self, nodeset: NodeSet, nodeclass: NodeClass) -> dict[str, Any]:
        set_name = nodeset.metadata.name
        class_name = nodeclass.metadata.name
        name = _node_name(set_name)
        template = nodeset.spec.template
        labels = node_labels(nodeset, nodeclass, name)
        taints = [t.to_json() for t in node_taints(nodeset, nodeclass)]
        taints.append({"key": TAINT_STARTUP, "effect": "NoSchedule"})
        return {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": name,
                "labels": labels,
                "annotations": {
                    **(template.metadata.annotations if template else {}),
                    ANNOTATION_MACHINE_PHASE: "Pending",
                },
                "finalizers": [FINALIZER_MACHINE],
                "ownerReferences": [
                    {
                        "apiVersion": API_VERSION,
                        "kind": NODESET_KIND,
                        "name": set_name,
                        "uid": nodeset.metadata.uid,
                        "controller": True,
                        "blockOwnerDeletion": False,
                    }
                ],
            },
            "spec": {"providerID": provider_id(class_name, name), "taints": taints},
        }

    # -- scale down and replacement ----------------------------------------------------------------------

    def _replace_failed(
        self, nodeset: NodeSet, active: list[NodeRecord], members: list[NodeRecord], now: float
    ) -> tuple[list[NodeRecord], int]:
        """Start replacing failed Nodes within the in-flight bound; returns the remaining active Nodes and how
        many replacements are under way."""
        name = nodeset.metadata.name
        in_flight = sum(1 for n in members if n.annotations.get(ANNOTATION_REMOVAL_REASON) == "Replace")
        if nodeset.spec.autoscaling.mode != "Manual":
            return active, in_flight  # an autoscaler decides what replaces a failed machine
        timeout = nodeset.spec.replacement.registration_timeout_seconds
        failed = [n for n in active if is_failed(n, now, timeout)]
        if not failed:
            if all(is_ready(n) for n in active):
                with self._lock:
                    self._replace_after.pop(name, None)  # healthy again: the next failure starts a fresh backoff
            return active, in_flight
        budget = nodeset.spec.replacement.max_in_flight - in_flight
        with self._lock:
            not_before, pause = self._replace_after.get(name, (0.0, self.settings.replacement_backoff))
        if budget <= 0 or now < not_before:
            return active, in_flight
        chosen = failed[:budget]
        for node in chosen:
            reason = node.annotations.get(ANNOTATION_MACHINE_ERROR) or "it did not become Ready in time"
            self._event_nodeset(nodeset, "Warning", "ReplacingFailedNode", f"replacing Node {node.name}: {reason}")
            self._start_removal(nodeset, node, "Replace")
        with self._lock:
            self._replace_after[name] = (now + pause, min(pause * 2, self.settings.replacement_backoff_max))
        return [n for n in active if n not in chosen], in_flight + len(chosen)

    def _remove_failed_instances(
        self, nodeset: NodeSet, active: list[NodeRecord], requested: set[str], now: float
    ) -> None:
        """Under an autoscaler a failed machine is not replaced: the autoscaler sees the error (the
        cluster-autoscaler in NodeGroupNodes), backs the set off and tries another. After a while kube-node removes
        the Node and lowers replicas with it, as a cloud's instance group drops a failed instance, so the
        failed replica is neither kept for the autoscaler's 20-minute unready timeout nor recreated later when
        quota frees up, when nobody wants it any more."""
        ttl = self.settings.failed_instance_ttl
        timeout = nodeset.spec.replacement.registration_timeout_seconds
        expired = [
            n.name for n in active if n.name not in requested and is_failed(n, now, timeout) and now - n.created >= ttl
        ]
        if expired:
            removed = request_removal(self._client, nodeset.metadata.name, expired)
            if removed:
                self._event_nodeset(
                    nodeset,
                    "Warning",
                    "RemovingFailedInstances",
                    f"removing {removed} Nodes whose machine failed, and lowering replicas with them: "
                    f"{', '.join(sorted(expired)[:5])}",
                )

    def _start_removal(self, nodeset: NodeSet, node: NodeRecord, reason: str) -> None:
        """Cordon ``node`` and mark it as leaving; a failed machine's Node (Replace) is deleted without a drain."""
        drain = nodeset.spec.drain.timeout_seconds > 0 and reason == "ScaleDown"
        if not drain and reason == "ScaleDown":
            self._delete_node(nodeset, node, "scale-down")  # nothing to drain: no cordon needed either
            return
        patch: dict[str, Any] = {
            "metadata": {
                "resourceVersion": node.resource_version,
                "annotations": {ANNOTATION_DRAIN_STARTED: now_rfc3339(micro=True), ANNOTATION_REMOVAL_REASON: reason},
            },
            "spec": {"unschedulable": True},
        }
        try:
            self._client.patch(NODES, node.name, patch)
        except ApiError as error:
            if error.not_found:
                return
            raise
        if drain:
            self._event_node(
                node,
                "Normal",
                "DrainStarted",
                f"NodeSet {nodeset.metadata.name} is scaling down: "
                f"cordoned; evicting pods (timeout {nodeset.spec.drain.timeout_seconds} s)",
            )
        else:
            self._delete_node(nodeset, node, "its machine failed" if reason == "Replace" else "scale-down")

    def _continue_removal(self, nodeset: NodeSet, node: NodeRecord, now: float) -> bool:
        """One drain step for a leaving Node; deletes it once drained or timed out. True while it is draining."""
        reason = node.annotations.get(ANNOTATION_REMOVAL_REASON, "ScaleDown")
        timeout = nodeset.spec.drain.timeout_seconds
        if reason != "ScaleDown" or timeout <= 0:
            self._delete_node(nodeset, node, "its machine failed" if reason == "Replace" else "scale-down")
            return False
        started = parse_time(node.annotations.get(ANNOTATION_DRAIN_STARTED)) or now
        step = self._drainer.step(node, nodeset.spec.drain.pod_grace_period_seconds)
        if step.done:
            self._event_node(node, "Normal", "Drained", "all pods evicted; deleting the Node")
            self._delete_node(nodeset, node, "scale-down")
            return False
        if now - started >= timeout:
            self._event_node(
                node,
                "Warning",
                "DrainTimeout",
                f"drain did not finish within {timeout} s ({len(step.remaining)} pods left: "
                f"{', '.join(sorted(step.remaining)[:5])}); deleting the Node anyway",
            )
            self._delete_node(nodeset, node, "scale-down after the drain timeout")
            return False
        if step.blocked:
            summary = "; ".join(f"{pod}: {why}" for pod, why in sorted(step.blocked.items())[:3])
            if self._blocked_reported.get(node.name) != summary:
                self._blocked_reported[node.name] = summary
                self._event_node(node, "Warning", "EvictionBlocked", summary)
        return True

    def _delete_node(self, nodeset: NodeSet | None, node: NodeRecord, why: str) -> None:
        owner = node.labels.get(LABEL_NODESET, "")
        self.expectations.expect_deletion(owner, node.name)
        try:
            self._client.delete(NODES, node.name, preconditions={"uid": node.uid})
        except ApiError as error:
            if not (error.not_found or error.conflict):
                self.expectations.observed(owner, node.name, present=False)
                raise
        self._blocked_reported.pop(node.name, None)
        if nodeset is not None:
            self._event_nodeset(nodeset, "Normal", "SuccessfulDelete", f"deleted Node {node.name} ({why})")

    def _delete_all(self, name: str, members: list[NodeRecord]) -> None:
        """The NodeSet is gone: its Nodes go too (their finalizers destroy the machines)."""
        for node in members:
            if not node.deleting:
                log.info("NodeSet %s is gone: deleting its Node %s", name, node.name)
                self._delete_node(None, node, "its NodeSet was deleted")
        if not members:
            self.expectations.forget(name)
            with self._lock:
                self._replace_after.pop(name, None)
                self._create_errors.pop(name, None)

    # -- status ------------------------------------------------------------------------------------------

    def _write_status(
        self,
        nodeset: NodeSet,
        nodeclass: NodeClass | None,
        *,
        active: list[NodeRecord],
        leaving: list[NodeRecord],
        replacing: int,
        pending_creations: set[str],
    ) -> None:
        name = nodeset.metadata.name
        desired = nodeset.spec.replicas
        replicas = len(active)
        ready = sum(1 for n in active if is_ready(n))
        errors = [n for n in active if ANNOTATION_MACHINE_ERROR in n.annotations]
        with self._lock:
            create_error = self._create_errors.get(name)

        if nodeclass is None:
            ready_cond = ("False", "NodeClassNotFound", f"NodeClass {nodeset.spec.node_class_name} does not exist")
        elif ready == desired == replicas:
            ready_cond = ("True", "AllNodesReady", f"{ready} of {desired} Nodes are Ready")
        else:
            ready_cond = ("False", "NodesNotReady", f"{ready} of {desired} Nodes are Ready")

        if replicas + len(pending_creations) < desired:
            progressing = ("True", "ScalingUp", f"{replicas} of {desired} Nodes exist")
        elif leaving:
            progressing = ("True", "ScalingDown", f"draining or removing {len(leaving)} Nodes")
        elif replacing:
            progressing = ("True", "ReplacingFailedNodes", f"replacing {replacing} Nodes whose machine failed")
        elif ready < desired:
            progressing = ("True", "WaitingForNodes", f"{desired - ready} Nodes are not Ready yet")
        else:
            progressing = ("False", "Idle", f"{desired} Nodes, all Ready")

        if nodeclass is None:
            failure = ("True", "NodeClassNotFound", ready_cond[2])
        elif create_error:
            failure = ("True", "FailedCreate", create_error)
        elif errors:
            node = errors[0]
            failure = (
                "True",
                node.annotations.get(ANNOTATION_MACHINE_ERROR_CLASS) or "MachineError",
                f"Node {node.name}: {node.annotations[ANNOTATION_MACHINE_ERROR]}",
            )
        else:
            failure = ("False", "NoFailures", "no Node of this set reports a machine failure")

        generation = nodeset.metadata.generation
        old = {c.type: c for c in (nodeset.status.conditions if nodeset.status else [])}
        ours = (("Ready", ready_cond), ("Progressing", progressing), ("ReplicaFailure", failure))
        conditions = [make_condition(kind, values, old.get(kind), generation) for kind, values in ours]
        # Conditions other writers own (the pending-pod autoscaler's ScalingLimited) are kept as they are.
        conditions += [c for kind, c in old.items() if kind not in {k for k, _ in ours}]
        status = {
            "replicas": replicas,
            "readyReplicas": ready,
            "observedGeneration": generation,
            "selector": nodeset_selector(name),
            "conditions": [condition_json(c) for c in conditions],
        }
        current = nodeset.status
        if (
            current is not None
            and current.replicas == replicas
            and current.ready_replicas == ready
            and current.observed_generation == generation
            and current.selector == status["selector"]
            and current.conditions == conditions
        ):
            return
        try:
            self._client.patch(
                NODESETS,
                name,
                {"metadata": {"resourceVersion": nodeset.metadata.resource_version}, "status": status},
                subresource="status",
            )
        except ApiError as error:
            if error.not_found:
                return
            if error.conflict:
                self.queue.add_after(name, 0.05)  # the NodeSet changed meanwhile: recompute from the new one
                return
            raise

    # -- events ------------------------------------------------------------------------------------------

    def _event_nodeset(self, nodeset: NodeSet, type_: EventType, reason: str, message: str) -> None:
        ref = ObjectReference(NODESET_KIND, nodeset.metadata.name, nodeset.metadata.uid or "", api_version=API_VERSION)
        self._recorder.event(ref, type_, reason, message)

    def _event_node(self, node: NodeRecord, type_: EventType, reason: str, message: str) -> None:
        self._recorder.event(ObjectReference("Node", node.name, node.uid), type_, reason, message)


def condition_json(condition: Condition) -> dict[str, object]:
    """A condition as the API server takes it."""
    entry: dict[str, object] = {
        "type": condition.type,
        "status": condition.status,
        "reason": condition.reason,
        "message": condition.message,
        "lastTransitionTime": condition.last_transition_time,
    }
    if condition.observed_generation is not None:
        entry["observedGeneration"] = condition.observed_generation
    return entry


def make_condition(kind: str, values: tuple[str, str, str], old: Condition | None, generation: int | None) -> Condition:
    """A condition of ``kind`` with (status, reason, message), keeping ``old``'s transition time if the status
    did not change."""
    status, reason, message = values
    changed = old is None or old.status != status
    return Condition(
        type=kind,
        status=status,  # type: ignore[arg-type]
        reason=reason,
        message=message,
        last_transition_time=now_rfc3339() if changed or old is None else old.last_transition_time,
        observed_generation=generation,
    )


def _node_name(nodeset: str) -> str:
    suffix = "".join(secrets.choice(_SUFFIX_ALPHABET) for _ in range(5))
    return f"{nodeset[: 253 - 6]}-{suffix}"


__all__ = ["NodeSetController", "NodeSetControllerSettings"]
