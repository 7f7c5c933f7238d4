"""The NodeSetController: a NodeSet keeps ``replicas`` Nodes of its NodeClass, as a ReplicaSet keeps pods.

Level-triggered, per NodeSet:

- **create** the missing Nodes from the template (name ``<set>-<random>``, the NodeSet and NodeClass labels,
  the class's and the template's labels and taints, an ownerReference, and, from the first moment, the
  machine finalizer, the providerID and the startup taint); the NodeController then gives each a machine.
  Creation starts slowly (1, 2, 4, ... at once) and stops at the first error, as the ReplicaSet controller's
  does, so a broken API or quota is not hammered.
- **scale down** by choosing victims, cordoning them and draining them through the Eviction API, then
  deleting them; a drain that outlasts ``drain.timeoutSeconds`` ends with a DrainTimeout Event and the Node
  is deleted anyway (the ``removal`` package: why a Node goes, the budget, cordon, drain, delete).
- **replace** Nodes whose machine failed, at most ``replacement.maxInFlight`` at a time and with a growing
  pause while replacements keep failing, so a broken cloud cannot make the set churn (not in
  ClusterAutoscaler mode: there the autoscaler sees the failures and deletes them itself, and failed
  instances it leaves are given back after ``failed_instance_ttl``, named, with replicas lowered, through
  the NodeSetScaler, as DeleteNodes does).
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

import urllib3

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
    MODE_MANUAL,
    NODESET_KIND,
    TAINT_STARTUP,
    NodeClass,
    NodeSet,
    condition_json,
    make_condition,
    node_labels,
    node_taints,
    nodeset_selector,
    provider_id,
    requested_nodes,
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
    NodeSetScaler,
    ObjectReference,
    PodRecord,
    Result,
    WorkQueue,
    is_foreign,
    is_member,
    labelled,
    run_workers,
)
from ._expectations import Expectations
from .removal import Failure, NodeRemover, RemediationBudget, choose_victims, is_ready, removable_failures

log = logging.getLogger(__name__)

_SUFFIX_ALPHABET = string.ascii_lowercase + string.digits
_DRAIN_POLL = 1.0
#: How long a Node create of unknown outcome is counted as made: past the API server's request timeout (60 s),
#: after which a request it received can no longer land.
_UNKNOWN_CREATE_LAPSE = 90.0
#: Refusals that may not hold a moment later (authentication or authorization still starting, throttling).
_NOT_YET = frozenset({401, 403, 429})


@dataclass(frozen=True)
class _Created:
    """The result of one Node create: no error, or the error and whether the Node may exist anyway."""

    error: str | None = None
    maybe_created: bool = False


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
    max_creates_per_reconcile: int = 500  #: Node creations per reconcile of one NodeSet; the rest on a requeue
    #: How long a Node create of unknown outcome (a broken connection, a 5xx) is sent again, by the same name.
    create_retry_timeout: float = 30.0
    max_create_batch: int = 128  #: the most Node manifests built (and created in parallel) at once


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
        scaler: NodeSetScaler | None = None,
    ) -> None:
        """``scaler`` writes the NodeSets' sizes (the process's one, shared with the autoscalers; by default its
        own, over ``nodesets``)."""
        self._client = client
        self._nodesets = nodesets
        self._scaler = scaler or NodeSetScaler(client, nodesets)
        self._nodes = nodes
        self._nodeclasses = nodeclasses
        self._pods = pods
        self._recorder = recorder
        self.settings = settings or NodeSetControllerSettings()
        self.queue = WorkQueue("nodeset-controller")
        self.expectations = Expectations()
        self._remover = NodeRemover(client, pods, self.expectations, recorder, requeue=self.queue.add_after)
        self._create_pool = concurrent.futures.ThreadPoolExecutor(
            self.settings.create_parallelism, thread_name_prefix="nodeset-create"
        )
        self._lock = threading.Lock()
        self._replace_after: dict[str, tuple[float, float]] = {}  # set -> (not before, next pause)
        self._create_errors: dict[str, str] = {}  # set -> last error creating a Node
        self._stop: threading.Event | None = None
        self._held: set[str] = set()  # sets whose failed Nodes are held back (more than maxUnhealthy)
        self._foreign_reported: set[str] = set()  # uids of foreign Nodes already reported
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
        self._stop = stop
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
        labelled_nodes = labelled(self._nodes, name)
        if nodeset is None or nodeset.metadata.deletion_timestamp:
            # Only Nodes a NodeSet of this name made; a foreign Node with the label is not ours to delete.
            self._delete_all(name, [n for n in labelled_nodes if n.owner_uid])
            return None
        now = time.time()
        uid = nodeset.metadata.uid or ""
        stale = [n for n in labelled_nodes if n.owner_uid and n.owner_uid != uid and not n.deleting]
        for node in stale:  # left by an earlier NodeSet of the same name, which is gone: names are unique
            self._remover.delete(nodeset, node, "its NodeSet, an earlier one of the same name, no longer exists")
        self._report_foreign(nodeset, [n for n in labelled_nodes if is_foreign(n)])
        members = [n for n in labelled_nodes if is_member(n, nodeset)]
        pending_deletions = self.expectations.pending_deletions(name)
        live = [n for n in members if not n.deleting and n.name not in pending_deletions]
        leaving = [n for n in live if ANNOTATION_DRAIN_STARTED in n.annotations]
        active = [n for n in live if ANNOTATION_DRAIN_STARTED not in n.annotations]
        pending_creations = self.expectations.pending_creations(name) - {n.name for n in members}

        requeue: float | None = None
        for node in leaving:
            if self._remover.step(nodeset, node, now):
                requeue = _DRAIN_POLL
        in_flight = sum(1 for n in members if n.annotations.get(ANNOTATION_REMOVAL_REASON) == "Replace")
        failures, budget = removable_failures(nodeset.spec, active, in_flight, now)
        self._report_budget(nodeset, budget)
        replacing = in_flight
        requested = requested_nodes(nodeset)
        if failures:
            if nodeset.spec.autoscaling.mode == MODE_MANUAL:
                active, replacing = self._replace_failed(nodeset, active, failures, in_flight, now)
            else:
                self._remove_failed_instances(nodeset, active, failures, requested, now)
        elif budget.allowed and all(is_ready(n) for n in active):
            with self._lock:
                self._replace_after.pop(name, None)  # healthy again: the next failure starts a fresh backoff

        if requested - {n.name for n in members}:
            self._scaler.prune_requested(nodeset, {n.name for n in members})
        # Nodes the autoscaler named go whatever replicas says by now: the write that named them gave their
        # replicas back, and a rise since (an IncreaseSize, a kubectl scale) asks for new Nodes, not for these
        # to stay (they would stay forever, reported as deleting, with no new Node made for the rise).
        for node in (n for n in active if n.name in requested):
            self._remover.start(nodeset, node, "ScaleDown", "the cluster-autoscaler asked for this Node by name")
            requeue = _DRAIN_POLL
        active = [n for n in active if n.name not in requested]

        nodeclass = self._nodeclasses.get(nodeset.spec.node_class_name)
        desired = nodeset.spec.replicas
        current = len(active) + len(pending_creations)
        if nodeclass is not None and current < desired:
            self._create_nodes(nodeset, nodeclass, desired - current)
        elif current > desired:
            excess = current - desired
            victims = choose_victims(active, min(excess, len(active)), nodeset.spec, now=now, requested=requested)
            for node in victims:
                self._remover.start(nodeset, node, "ScaleDown", "the NodeSet is scaling down")
                requeue = _DRAIN_POLL
            active = [n for n in active if n not in victims]
        self._write_status(
            nodeset,
            nodeclass,
            active=active,
            leaving=leaving,
            replacing=replacing,
            pending_creations=pending_creations,
            budget=budget,
            foreign=[n.name for n in labelled_nodes if is_foreign(n)],
        )
        if requeue is None and (len(active) != desired or any(not is_ready(n) for n in active)):
            requeue = 5.0  # registration timeouts and failures are time-based
        return Result(requeue_after=requeue or self.settings.resync)

    # -- scale up ----------------------------------------------------------------------------------------

    def _create_nodes(self, nodeset: NodeSet, nodeclass: NodeClass, count: int) -> None:
        name = nodeset.metadata.name
        # Bounded, so that a huge replicas never builds every manifest in memory: the rest come on the requeue.
        count = min(count, self.settings.max_creates_per_reconcile)
        created = 0
        batch = 1
        while created < count:
            size = min(batch, count - created, self.settings.max_create_batch)
            bodies = [self._node_manifest(nodeset, nodeclass) for _ in range(size)]
            for body in bodies:
                self.expectations.expect_creation(name, body["metadata"]["name"])
            results = list(self._create_pool.map(self._create_one, bodies))
            errors = [r.error for r in results if r.error is not None]
            for body, result in zip(bodies, results, strict=True):
                node_name = body["metadata"]["name"]
                if result.error is None:
                    self._event_nodeset(nodeset, "Normal", "SuccessfulCreate", f"created Node {node_name}")
                elif result.maybe_created:
                    # It may still land (the API server acts on a request it received for up to its request
                    # timeout, 60 s): count it that long, so that no second Node is made in its place.
                    self.expectations.expect_creation(name, node_name, timeout=_UNKNOWN_CREATE_LAPSE)
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

    def _create_one(self, body: dict[str, Any]) -> _Created:
        """Create one Node from ``body``.

        A create whose outcome is unknown (the connection broke after the request went out, a read timed out,
        a 5xx) is sent again with the same name, for up to ``create_retry_timeout``: the name is the create's
        idempotency key, so if the first one landed the next is refused AlreadyExists, and a Node of that name
        controlled by this NodeSet (its uid) is the one we made. A name taken by another Node is a collision:
        a new name is drawn. The client itself retries what is known not to have been acted on (429, no
        connection)."""
        owner = body["metadata"]["labels"][LABEL_NODESET]
        deadline = time.monotonic() + self.settings.create_retry_timeout
        unknown: str | None = None  # why an attempt's outcome is unknown, until an answer settles it
        renames = 0
        delay = 0.2
        while True:
            try:
                self._client.create(NODES, body)
                return _Created()
            except ApiError as error:
                ours = self._created_by_us(body) if error.already_exists and unknown is not None else False
                if ours:
                    log.info("Node %s: a create of unknown outcome had landed", body["metadata"]["name"])
                    return _Created()
                if error.already_exists and ours is None:
                    unknown = "AlreadyExists, and the Node could not be read to see whose it is"
                elif error.already_exists:
                    if renames == 2:
                        return _Created("could not find a free Node name")
                    renames += 1
                    unknown = None
                    self._rename(owner, body)
                    continue
                elif unknown is not None and error.status in _NOT_YET:
                    # Refused for now, which says nothing of the earlier attempt (an API server that has just
                    # restarted answers 403 until its authorizer has caught up): ask again.
                    unknown = f"{unknown}, then {error.status} {error.reason}"
                elif error.status < 500:
                    # Refused for what the body is (or, first time, for who we are): nothing was made, and an
                    # earlier attempt with the same body was refused the same way.
                    return _Created(f"{error.reason}: {error.message}")
                else:
                    unknown = f"{error.status} {error.reason}: {error.message}"
            except (urllib3.exceptions.HTTPError, OSError) as error:
                unknown = f"{type(error).__name__}: {error}"
            if time.monotonic() + delay > deadline or (self._stop is not None and self._stop.is_set()):
                return _Created(f"outcome unknown ({unknown})", maybe_created=True)
            log.info("Node %s: create of unknown outcome (%s); sending it again", body["metadata"]["name"], unknown)
            time.sleep(delay)
            delay = min(delay * 2, 5.0)

    def _created_by_us(self, body: dict[str, Any]) -> bool | None:
        """Whether the Node named in ``body`` is controlled by the NodeSet ``body`` names (same uid); None if it
        cannot be read."""
        try:
            existing = self._client.get(NODES, body["metadata"]["name"])
        except ApiError as error:
            return False if error.not_found else None
        except (urllib3.exceptions.HTTPError, OSError):
            return None
        uid = body["metadata"]["ownerReferences"][0]["uid"]
        owners = existing["metadata"].get("ownerReferences") or []
        return any(o.get("uid") == uid and o.get("controller") for o in owners)

    def _rename(self, owner: str, body: dict[str, Any]) -> None:
        """Give ``body`` a fresh random name (and the name-derived fields), moving its expectation along."""
        self.expectations.observed(owner, body["metadata"]["name"], present=False)
        new = _node_name(owner)
        body["metadata"]["name"] = new
        body["metadata"]["labels"]["kubernetes.io/hostname"] = new
        body["spec"]["providerID"] = provider_id(body["metadata"]["labels"][LABEL_NODECLASS], new)
        self.expectations.expect_creation(owner, new)

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
        self,
        nodeset: NodeSet,
        active: list[NodeRecord],
        failures: dict[str, Failure],
        in_flight: int,
        now: float,
    ) -> tuple[list[NodeRecord], int]:
        """Start replacing failed Nodes within the in-flight bound (Manual mode); returns the remaining active
        Nodes and how many replacements are under way."""
        name = nodeset.metadata.name
        budget = nodeset.spec.replacement.max_in_flight - in_flight
        with self._lock:
            not_before, pause = self._replace_after.get(name, (0.0, self.settings.replacement_backoff))
        if budget <= 0 or now < not_before:
            return active, in_flight
        chosen: list[NodeRecord] = []
        for node in [n for n in active if n.name in failures][:budget]:
            failure = failures[node.name]
            if self._remover.start(nodeset, node, "Replace", f"replacing it: {failure.message}"):
                chosen.append(node)
                self._event_nodeset(
                    nodeset,
                    "Warning",
                    "ReplacingFailedNode",
                    f"replacing Node {node.name} ({failure.reason}): {failure.message}",
                )
        if chosen:
            with self._lock:
                self._replace_after[name] = (now + pause, min(pause * 2, self.settings.replacement_backoff_max))
        return [n for n in active if n not in chosen], in_flight + len(chosen)

    def _remove_failed_instances(
        self,
        nodeset: NodeSet,
        active: list[NodeRecord],
        failures: dict[str, Failure],
        requested: set[str],
        now: float,
    ) -> None:
        """Under an autoscaler a failed machine is not replaced: the autoscaler sees the error (the
        cluster-autoscaler in NodeGroupNodes), backs the set off and tries another. After a while kube-node removes
        the Node and lowers replicas with it, as a cloud's instance group drops a failed instance, so the
        failed replica is neither kept for the autoscaler's 20-minute unready timeout nor recreated later when
        quota frees up, when nobody wants it any more. The removal drains like a scale-down unless no machine
        runs behind the Node."""
        ttl = self.settings.failed_instance_ttl
        # Measured from the failure, not the Node's creation: a create that took longer than the TTL to fail
        # would otherwise be given back before the autoscaler ever saw its error, and never backed off.
        expired = sorted(
            n.name
            for n in active
            if n.name in failures and n.name not in requested and now - failures[n.name].since >= ttl
        )
        if not expired:
            return
        removed = self._scaler.request_removal(nodeset.metadata.name, expired)
        if removed:
            reasons = "; ".join(f"{n}: {failures[n].message}" for n in expired[:5])
            self._event_nodeset(
                nodeset,
                "Warning",
                "RemovingFailedInstances",
                f"removing {removed} failed Nodes and lowering replicas with them: {reasons}",
            )

    def _report_budget(self, nodeset: NodeSet, budget: RemediationBudget) -> None:
        """A Warning Event when the set starts holding back its failed Nodes (the condition says it too)."""
        name = nodeset.metadata.name
        with self._lock:
            was_held = name in self._held
            if budget.allowed:
                self._held.discard(name)
                return
            self._held.add(name)
        if not was_held:
            log.warning("NodeSet %s: %s", name, budget.message)
            self._event_nodeset(nodeset, "Warning", "RemediationHeld", budget.message)

    def _report_foreign(self, nodeset: NodeSet, foreign: list[NodeRecord]) -> None:
        """A Warning Event, once per Node, for a Node with this set's label that the set did not make."""
        for node in foreign:
            with self._lock:
                if node.uid in self._foreign_reported:
                    continue
                self._foreign_reported.add(node.uid)
            self._event_node(
                node,
                "Warning",
                "ForeignNode",
                f"carries the label {LABEL_NODESET}={nodeset.metadata.name} but NodeSet {nodeset.metadata.name} "
                "did not create it (no controller ownerReference to it): it is not counted as a member and "
                "never drained or removed by the set",
            )

    def _delete_all(self, name: str, members: list[NodeRecord]) -> None:
        """The NodeSet is gone: its Nodes go too (their finalizers destroy the machines)."""
        for node in members:
            if not node.deleting:
                log.info("NodeSet %s is gone: deleting its Node %s", name, node.name)
                self._remover.delete(None, node, "its NodeSet was deleted")
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
        budget: RemediationBudget,
        foreign: list[str],
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

        if budget.allowed:
            remediation = ("True", "WithinMaxUnhealthy", budget.message)
        else:
            remediation = ("False", "TooManyUnhealthy", budget.message)
        if foreign:
            shown = ", ".join(foreign[:5]) + (f" and {len(foreign) - 5} more" if len(foreign) > 5 else "")
            foreign_cond = (
                "True",
                "NodesNotCreatedBySet",
                f"{len(foreign)} Nodes carry this set's label but were not created by it (not counted): {shown}",
            )
        else:
            foreign_cond = ("False", "NoForeignNodes", "every Node with this set's label was created by it")

        generation = nodeset.metadata.generation
        old = {c.type: c for c in (nodeset.status.conditions if nodeset.status else [])}
        ours = (
            ("Ready", ready_cond),
            ("Progressing", progressing),
            ("ReplicaFailure", failure),
            ("RemediationAllowed", remediation),
            ("ForeignNodes", foreign_cond),
        )
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
        self._recorder.event(ObjectReference.to(nodeset), type_, reason, message)

    def _event_node(self, node: NodeRecord, type_: EventType, reason: str, message: str) -> None:
        self._recorder.event(ObjectReference("Node", node.name, node.uid), type_, reason, message)


def _node_name(nodeset: str) -> str:
    suffix = "".join(secrets.choice(_SUFFIX_ALPHABET) for _ in range(5))
    return f"{nodeset[: 253 - 6]}-{suffix}"


__all__ = ["NodeSetController", "NodeSetControllerSettings"]
