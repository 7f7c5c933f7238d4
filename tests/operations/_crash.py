"""Crash anywhere: SIGKILL ``kube-node run`` at seeded random moments while NodeSets scale 0 -> 40 -> 5 -> 0 and
hand-made Nodes come and go, restart it after every kill, and check after each step that nothing leaked,
doubled or got lost. Shared by tests/operations/test_crash_anywhere.py and bench/crash_harness.py.

One process, ``--no-leader-elect``, restarted at once after each kill: what is under test is that the API
server and the cloud alone carry kube-node through a crash (nothing in memory may matter), which a restarted
process and a standby taking over rely on alike; a standby would add a lease duration per kill and nothing
else (the handover has its own tests in test_leader_election.py).

Each kill is either a timer (a seeded delay after the process started: during startup, cache sync or any
reconcile) or a failpoint (see :mod:`nodeset_controller.failpoints`) armed for that process only, at one of
the moments a timer rarely hits: between a machine's create and the write that records it
(``after-machine-create``), between a machine's destroy and its finalizer's removal, between a drain's
evictions and the Node's deletion (``mid-drain``), and between DeleteNodes' write and its answer
(``mid-delete-nodes``, after which the client retries). The plan (which process arms what, the timers, when
each change is made) comes from the seed; the interleaving of threads does not, so a seed replays the plan,
not every instant.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import random
import re
import signal
import time
import uuid
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc

from autoscaler_provider._proto import externalgrpc_pb2 as pb
from autoscaler_provider._proto import externalgrpc_pb2_grpc as pb_grpc
from kube_node.controlplane import ControlPlane
from nodeset_controller.api import (
    ANNOTATION_DRAIN_STARTED,
    ANNOTATION_MACHINE_ID,
    LABEL_NODECLASS,
    LABEL_NODESET,
    TAINT_STARTUP,
)
from nodeset_controller.failpoints import (
    AFTER_MACHINE_CREATE,
    AFTER_MACHINE_DESTROY,
    FAILPOINTS_ENV,
    MID_DELETE_NODES,
    MID_DRAIN,
    SEED_ENV,
)
from nodeset_controller.kube import NODECLASSES, NODES, NODESETS, ApiError, KubeClient, Resource
from nodeset_controller.providers import SimulatorCloud, machine_name

from ._process import KubeNodeProcess, free_port

#: Replay a run: KUBE_NODE_CRASH_SEED=<seed> .venv/bin/pytest tests/operations/test_crash_anywhere.py
SEED_ENV_CRASH = "KUBE_NODE_CRASH_SEED"
TIMER = "timer"
NODECLASS = "crash"
MANUAL_SET = "web"  #: scaled by patching spec.replicas
CA_SET = "ca"  #: ClusterAutoscaler mode: scaled up by patching spec.replicas, down by DeleteNodes over gRPC
LABEL_HAND_MADE = "crash.kube-node.io/hand-made"
PODS = Resource("", "v1", "pods", namespaced=True)
NAMESPACES = Resource("", "v1", "namespaces")
SERVICE_ACCOUNTS = Resource("", "v1", "serviceaccounts", namespaced=True)
_FIRED = re.compile(r"failpoint (\S+): SIGKILL on pass (\d+)")


@dataclass(frozen=True)
class CrashSettings:
    """How big and how violent a run is."""

    peak: int = 40  #: replicas of each NodeSet at the top
    middle: int = 5  #: ... after the first scale-down
    kills: tuple[int, int, int] = (10, 9, 7)  #: SIGKILLs while going up, down to ``middle``, down to 0
    timer: tuple[float, float] = (0.3, 5.0)  #: a process with no failpoint is killed this long after its start
    backstop: tuple[float, float] = (2.0, 6.0)  #: ... one with a failpoint this long after it is ready
    hand_made: int = 6  #: names of hand-made Nodes (reused: deleted and created again)
    create_delay: float = 0.3  #: the simulator's createDelaySeconds
    boot_delay: float = 1.0  #: ... and bootDelaySeconds
    delete_batch: int = 5  #: Nodes per DeleteNodes call
    converge_timeout: float = 90.0
    #: per failpoint, the chance that a pass through it kills (a process arms one failpoint at a time)
    probabilities: tuple[tuple[str, float], ...] = (
        (AFTER_MACHINE_CREATE, 0.15),
        (AFTER_MACHINE_DESTROY, 0.1),
        (MID_DRAIN, 0.3),
        (MID_DELETE_NODES, 1.0),
    )


@dataclass(frozen=True)
class Kill:
    """One SIGKILL: which process, what it had armed, what killed it, how long after its start."""

    phase: str
    incarnation: int
    armed: str
    cause: str
    after: float
    passes: int = 0  #: the failpoint's pass that fired (0 for the timer)

    def __str__(self) -> str:
        what = TIMER if self.cause == TIMER else f"{self.cause} (pass {self.passes})"
        return f"[{self.phase} #{self.incarnation}] armed {self.armed}: {what} at {self.after:.2f} s"


@dataclass
class PhaseResult:
    """One step of the scenario after its last kill."""

    name: str
    converge_seconds: float  #: from the last kill to everything checked being in line (inf: never)
    nodes: int
    machines: int
    leaked: list[str] = field(default_factory=list)  #: machines no Node names by machine-id
    doubles: list[str] = field(default_factory=list)  #: Nodes (name or uid) with more than one machine
    problems: list[str] = field(default_factory=list)  #: everything else that is wrong


@dataclass
class CrashReport:
    """What a run did and found."""

    seed: int
    kills: list[Kill] = field(default_factory=list)
    phases: list[PhaseResult] = field(default_factory=list)
    incidents: list[str] = field(default_factory=list)  #: a process that died other than by SIGKILL

    @property
    def problems(self) -> list[str]:
        """Every leak, double and other problem, by phase; empty when the run passed."""
        found = list(self.incidents)
        for phase in self.phases:
            found += [f"{phase.name}: leaked machine {m}" for m in phase.leaked]
            found += [f"{phase.name}: double machines for {n}" for n in phase.doubles]
            found += [f"{phase.name}: {p}" for p in phase.problems]
        return found

    def by_cause(self) -> Counter[str]:
        return Counter(kill.cause for kill in self.kills)

    def summary(self) -> str:
        causes = ", ".join(f"{cause} {count}" for cause, count in sorted(self.by_cause().items()))
        converge = ", ".join(f"{p.name} {p.converge_seconds:.1f} s" for p in self.phases)
        return (
            f"seed {self.seed}: {len(self.kills)} kills ({causes}); converged after the last kill: {converge}; "
            f"leaked {sum(len(p.leaked) for p in self.phases)}, doubles {sum(len(p.doubles) for p in self.phases)}, "
            f"other problems {sum(len(p.problems) for p in self.phases)}"
        )


@dataclass
class _Action:
    """A change to the cluster, tried from incarnation ``at`` of its phase on until ``run`` says it is done."""

    at: int
    what: str
    run: Callable[[], bool]
    needs_provider: bool = False
    done: bool = False
    not_before: float = 0.0  #: after a failed try, the next one waits a little


@dataclass
class _Expected:
    replicas: dict[str, int] = field(default_factory=lambda: {MANUAL_SET: 0, CA_SET: 0})
    hand_made: set[str] = field(default_factory=set)


class CrashRun:
    """One run of the scenario against a control plane, with its own simulator directory and gRPC port."""

    def __init__(
        self,
        control_plane: ControlPlane,
        client: KubeClient,
        workdir: Path,
        seed: int,
        settings: CrashSettings | None = None,
        *,
        say: Callable[[str], None] = print,
    ) -> None:
        self.plane = control_plane
        self.client = client
        self.workdir = workdir
        self.seed = seed
        self.settings = settings or CrashSettings()
        self.say = say
        self.simulator_dir = workdir / "simulator"
        self.grpc_address = f"127.0.0.1:{free_port()}"
        self.namespace = f"crash-{uuid.uuid4().hex[:6]}"
        self.report = CrashReport(seed)
        self._plan = random.Random(seed)  # the plan: kinds, timers, when each change is made
        self._choices = random.Random(seed + 1)  # which Nodes DeleteNodes names
        self._expected = _Expected()
        self._process: KubeNodeProcess | None = None
        self._picked: set[str] = set()  # Nodes of the ClusterAutoscaler set that DeleteNodes was asked to remove

    # -- the scenario ------------------------------------------------------------------------------------

    def run(self) -> CrashReport:
        """Run the three steps; stops early when one does not converge. Never raises for what it finds."""
        s = self.settings
        self.say(f"crash harness: seed {self.seed} (replay with {SEED_ENV_CRASH}={self.seed}); logs in {self.workdir}")
        self._setup()
        hand = [f"hand-{i}" for i in range(s.hand_made)]
        down_kinds = (MID_DRAIN, MID_DELETE_NODES, AFTER_MACHINE_DESTROY, TIMER)
        try:
            # Up: both sets to the peak, every hand-made Node created, each at a random moment.
            plan = self._kinds(s.kills[0], (AFTER_MACHINE_CREATE, AFTER_MACHINE_CREATE, TIMER), (AFTER_MACHINE_CREATE,))
            actions = [self._patch_replicas(0, MANUAL_SET, s.peak), self._patch_replicas(0, CA_SET, s.peak)]
            actions += [self._create_hand_made(self._at(plan), name) for name in hand]
            if not self._phase("up", plan, actions):
                return self.report
            self._bind_pods()
            # Down to the middle: the manual set by patch, the other by DeleteNodes; half the hand-made Nodes
            # deleted, and most of those names created again (a new Node, which must get a new machine).
            plan = self._kinds(s.kills[1], down_kinds, (MID_DRAIN, MID_DELETE_NODES))
            actions = [self._patch_replicas(0, MANUAL_SET, s.middle)]
            actions += self._delete_nodes_batches(plan, s.peak - s.middle)
            for name in self._plan.sample(hand, len(hand) // 2):
                at = self._at(plan)
                actions.append(self._delete_hand_made(at, name))
                if self._plan.random() < 0.7:
                    actions.append(self._create_hand_made(min(at + 1, len(plan) - 1), name, again=True))
            if not self._phase("down", plan, actions):
                return self.report
            # Down to zero, every hand-made Node left deleted.
            plan = self._kinds(s.kills[2], down_kinds, (MID_DRAIN, MID_DELETE_NODES))
            actions = [self._patch_replicas(0, MANUAL_SET, 0)]
            actions += self._delete_nodes_batches(plan, s.middle)
            actions += [self._delete_hand_made(self._at(plan), name) for name in sorted(self._expected.hand_made)]
            self._phase("zero", plan, actions)
            return self.report
        finally:
            self._stop_process()
            with contextlib.suppress(ApiError):
                self.client.delete(NAMESPACES, self.namespace)

    def _kinds(self, kills: int, kinds: tuple[str, ...], first: tuple[str, ...]) -> list[str]:
        """What each process of a step arms: a failpoint, or nothing (the timer kills it). The first ones arm
        ``first``, which the step's changes set off at once (creates going up; drains and DeleteNodes going
        down), so that every seed hits each of them; the rest are drawn from ``kinds``."""
        return [*first, *(self._plan.choice(kinds) for _ in range(kills - len(first)))]

    def _at(self, plan: list[str]) -> int:
        return self._plan.randrange(len(plan))

    def _setup(self) -> None:
        s = self.settings
        self.client.create(
            NODECLASSES,
            {
                "apiVersion": "kube-node.io/v1alpha1",
                "kind": "NodeClass",
                "metadata": {"name": NODECLASS},
                "spec": {
                    "provider": "simulator",
                    "capacity": {"cpu": "4", "memory": "16Gi", "pods": "110"},
                    "driverOptions": {
                        "createDelaySeconds": f"{s.create_delay:g}",
                        "bootDelaySeconds": f"{s.boot_delay:g}",
                    },
                },
            },
        )
        drain = {"timeoutSeconds": 300}
        for name, autoscaling in ((MANUAL_SET, {"mode": "Manual"}), (CA_SET, {"mode": "ClusterAutoscaler"})):
            spec = {"nodeClassName": NODECLASS, "replicas": 0, "maxReplicas": s.peak + 10, "drain": drain}
            self.client.create(
                NODESETS,
                {
                    "apiVersion": "kube-node.io/v1alpha1",
                    "kind": "NodeSet",
                    "metadata": {"name": name},
                    "spec": {**spec, "autoscaling": autoscaling},
                },
            )
        self.client.create(NAMESPACES, {"metadata": {"name": self.namespace}})
        # The namespace's default service account, made by hand unless the session's controller-manager (started
        # by an earlier test) made it first.
        try:
            self.client.create(SERVICE_ACCOUNTS, {"metadata": {"name": "default"}}, namespace=self.namespace)
        except ApiError as error:
            if not error.already_exists:
                raise

    # -- one step: kills, then a clean process until everything is in line ------------------------------

    def _phase(self, name: str, plan: list[str], actions: list[_Action]) -> bool:
        s = self.settings
        kills = len(plan)
        # A timer kills at any moment from the start (during startup and cache sync too); a process armed with
        # a failpoint gets its timer, a backstop, only once it is ready.
        timers = [self._plan.uniform(*(s.timer if k == TIMER else s.backstop)) for k in plan]
        probabilities = dict(s.probabilities)
        for index, (kind, timer) in enumerate(zip(plan, timers, strict=True)):
            env: dict[str, str] = {}
            if kind != TIMER:
                seed = str(self.seed * 1000 + len(self.report.kills))
                env = {FAILPOINTS_ENV: f"{kind}={probabilities[kind]}", SEED_ENV: seed}
            process = self._start(f"{name}-{index:02d}", env)
            started = time.monotonic()
            deadline = started + timer if kind == TIMER else started + s.converge_timeout
            provider_ready = False
            while time.monotonic() < deadline and process.process.poll() is None:
                self._try(actions, index, provider=provider_ready)
                if not provider_ready and process.ready():
                    provider_ready = True
                    if kind != TIMER:
                        deadline = time.monotonic() + timer
                    self._try(actions, index, provider=True)
                time.sleep(0.05)
            after = time.monotonic() - started
            if process.process.poll() is None:
                process.kill()
            kill = self._kill_of(name, index, kind, process, after)
            self.report.kills.append(kill)
            self.say(f"kill {len(self.report.kills)}: {kill}")
        last_kill = time.monotonic()
        deadline = last_kill + s.converge_timeout
        waiting = "?"
        clean = self._start(f"{name}-clean", {})
        while time.monotonic() < deadline:
            ready = clean.ready()
            self._try(actions, kills, provider=ready)
            if not ready:
                waiting = "the clean process is not ready"
            elif all(a.done for a in actions):
                waiting = self._waiting_for()
                if not waiting or self._lost_replicas():
                    break  # in line; or replicas no longer what was asked, which nothing here would put right
            else:
                waiting = "changes not made yet: " + ", ".join(a.what for a in actions if not a.done)
            time.sleep(0.2)
        converged = not waiting
        result = self._check(name, time.monotonic() - last_kill if converged else float("inf"))
        if not converged:
            result.problems.append(f"not in line {s.converge_timeout:.0f} s after the last kill: {waiting}")
        self.report.phases.append(result)
        self.say(
            f"{name}: {'converged' if converged else 'did NOT converge'} {result.converge_seconds:.1f} s after the "
            f"last kill; {result.nodes} Nodes, {result.machines} machines, leaked {len(result.leaked)}, "
            f"doubles {len(result.doubles)}, problems {len(result.problems)}"
        )
        if self._process is not None and converged:
            code = self._process.terminate()
            if code != 0:
                result.problems.append(f"the clean process exited with {code} on SIGTERM")
            self._process.close()
            self._process = None
        return converged and not (result.leaked or result.doubles or result.problems)

    def _start(self, name: str, env: dict[str, str]) -> KubeNodeProcess:
        self._stop_process()
        self._process = KubeNodeProcess(
            self.plane,
            self.workdir,
            name,
            f"--simulator-dir={self.simulator_dir}",
            "--no-leader-elect",
            "--grpc-insecure",
            f"--grpc-address={self.grpc_address}",
            "--shutdown-grace-period=2",
            kubeconfig=self.plane.kubeconfig,
            env=env,
        )
        return self._process

    def _stop_process(self) -> None:
        """SIGKILL the process if it still runs (nothing is checked after it)."""
        if self._process is None:
            return
        self._process.close()
        self._process = None

    def _kill_of(self, phase: str, index: int, armed: str, process: KubeNodeProcess, after: float) -> Kill:
        code = process.process.wait(10)
        fired = _FIRED.findall(process.log())
        cause, passes = (fired[-1][0], int(fired[-1][1])) if fired else (TIMER, 0)
        if code != -signal.SIGKILL:
            self.report.incidents.append(f"process {phase}-{index} exited with {code}: {process.log()[-2000:]}")
        return Kill(phase, index, armed, cause, after, passes)

    def _try(self, actions: list[_Action], index: int, *, provider: bool) -> None:
        for action in actions:
            if action.done or action.at > index or (action.needs_provider and not provider):
                continue
            if time.monotonic() < action.not_before:
                continue
            try:
                action.done = action.run()
            except ApiError as error:
                self.say(f"  {action.what}: {error} (tried again)")
            if action.done:
                self.say(f"  done: {action.what}")
            else:
                action.not_before = time.monotonic() + 0.5

    # -- the changes -------------------------------------------------------------------------------------

    def _patch_replicas(self, at: int, nodeset: str, replicas: int) -> _Action:
        def run() -> bool:
            self.client.patch(NODESETS, nodeset, {"spec": {"replicas": replicas}})
            self._expected.replicas[nodeset] = replicas
            return True

        return _Action(at, f"NodeSet {nodeset} replicas -> {replicas}", run)

    def _delete_nodes_batches(self, plan: list[str], count: int) -> list[_Action]:
        """DeleteNodes calls naming ``count`` Nodes of the ClusterAutoscaler set in all, ``delete_batch`` at a
        time, each retried (with those of its Nodes still there) until it answers OK, as the cluster-autoscaler
        would. Every process that arms mid-delete-nodes gets a call of its own (one left without becomes a
        mid-drain); the other calls go to processes at random."""
        size = self.settings.delete_batch
        sizes = [min(size, count - i) for i in range(0, count, size)]
        armed = [i for i, kind in enumerate(plan) if kind == MID_DELETE_NODES]
        for index in armed[len(sizes) :]:
            plan[index] = MID_DRAIN
        slots = armed[: len(sizes)]
        slots += [self._plan.randrange(len(plan)) for _ in sizes[len(slots) :]]
        return [self._delete_nodes(at, n) for at, n in zip(sorted(slots), sizes, strict=True)]

    def _delete_nodes(self, at: int, count: int) -> _Action:
        names: list[str] = []

        def run() -> bool:
            if not names:
                members = sorted(
                    n["metadata"]["name"]
                    for n in self.client.list(NODES, labelSelector=f"{LABEL_NODESET}={CA_SET}")["items"]
                    if n["metadata"]["name"] not in self._picked and not n["metadata"].get("deletionTimestamp")
                )
                names.extend(self._choices.sample(members, min(count, len(members))))
                self._picked.update(names)
                self._expected.replicas[CA_SET] -= len(names)
            present = []
            for name in names:
                try:
                    present.append(self.client.get(NODES, name))
                except ApiError as error:
                    if not error.not_found:
                        raise
            if not present:
                return True  # removed already: an earlier try was written before its answer was lost
            request = pb.NodeGroupDeleteNodesRequest(id=CA_SET, nodes=[_grpc_node(n) for n in present])
            with grpc.insecure_channel(self.grpc_address) as channel:
                try:
                    pb_grpc.CloudProviderStub(channel).NodeGroupDeleteNodes(request, timeout=10)
                except grpc.RpcError as error:
                    self.say(f"  DeleteNodes {len(present)} Nodes: {error.code().name} (tried again)")  # type: ignore[attr-defined]
                    return False
            return True

        return _Action(at, f"DeleteNodes {count} Nodes of {CA_SET}", run, needs_provider=True)

    def _create_hand_made(self, at: int, name: str, *, again: bool = False) -> _Action:
        def run() -> bool:
            if again and name in self._expected.hand_made:
                return False  # its deletion has not been asked for yet
            try:
                self.client.create(
                    NODES,
                    {"metadata": {"name": name, "labels": {LABEL_NODECLASS: NODECLASS, LABEL_HAND_MADE: "true"}}},
                )
            except ApiError as error:
                if error.already_exists:
                    return False  # its predecessor is still being deleted
                raise
            self._expected.hand_made.add(name)
            return True

        return _Action(at, f"create hand-made Node {name}" + (" again" if again else ""), run)

    def _delete_hand_made(self, at: int, name: str) -> _Action:
        def run() -> bool:
            if name not in self._expected.hand_made:
                return False  # not created yet
            try:
                self.client.delete(NODES, name)
            except ApiError as error:
                if not error.not_found:
                    raise
            self._expected.hand_made.discard(name)
            return True

        return _Action(at, f"delete hand-made Node {name}", run)

    def _bind_pods(self) -> None:
        """A pod on each NodeSet Node, so every scale-down drains something (the simulated kubelets run them
        and finish them when evicted)."""
        nodes = [
            n["metadata"]["name"] for n in self.client.list(NODES)["items"] if LABEL_NODESET in n["metadata"]["labels"]
        ]

        def bind(node: str) -> None:
            pod = {
                "metadata": {"name": f"app-{node}", "labels": {"app": "crash"}},
                "spec": {
                    "nodeName": node,
                    "automountServiceAccountToken": False,
                    "containers": [{"name": "app", "image": "registry.example/app:1"}],
                },
            }
            self.client.create(PODS, pod, namespace=self.namespace)

        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            list(pool.map(bind, nodes))

    # -- convergence and the checks ----------------------------------------------------------------------

    def _waiting_for(self) -> str:
        """What is not in line yet ("" when everything is)."""
        nodes = self.client.list(NODES)["items"]
        waiting: list[str] = []
        for name, replicas in self._expected.replicas.items():
            nodeset = self.client.get(NODESETS, name)
            asked = nodeset["spec"].get("replicas", 0)
            if asked != replicas:
                waiting.append(f"NodeSet {name} has replicas {asked}, last asked {replicas}")
            members = [n for n in nodes if n["metadata"]["labels"].get(LABEL_NODESET) == name]
            if len(members) != replicas:
                waiting.append(f"NodeSet {name}: {len(members)} Nodes, want {replicas}")
            status = nodeset.get("status") or {}
            if status.get("readyReplicas", 0) != replicas or status.get("replicas", 0) != replicas:
                waiting.append(f"NodeSet {name}: status {status.get('replicas')}/{status.get('readyReplicas')} Ready")
        hand = {n["metadata"]["name"] for n in nodes if LABEL_HAND_MADE in n["metadata"]["labels"]}
        if hand != self._expected.hand_made:
            waiting.append(f"hand-made Nodes {sorted(hand)}, want {sorted(self._expected.hand_made)}")
        unsettled = [n["metadata"]["name"] for n in nodes if not _settled(n)]
        if unsettled:
            waiting.append(f"{len(unsettled)} Nodes not Ready, recorded and settled: {unsettled[:5]}")
        return "; ".join(waiting)

    def _lost_replicas(self) -> bool:
        """Whether a NodeSet's replicas differ from the last value asked once every change was made (only the
        harness and DeleteNodes write them here, and no Node fails, so kube-node has no reason to)."""
        return any(
            self.client.get(NODESETS, name)["spec"].get("replicas", 0) != replicas
            for name, replicas in self._expected.replicas.items()
        )

    def _check(self, name: str, seconds: float) -> PhaseResult:
        nodes = self.client.list(NODES)["items"]
        cloud = SimulatorCloud(self.simulator_dir)
        try:
            machines = cloud.machines()
        finally:
            cloud.close()
        result = PhaseResult(name, seconds, len(nodes), len(machines))
        recorded = {(n["metadata"].get("annotations") or {}).get(ANNOTATION_MACHINE_ID): n for n in nodes}
        by_id = {m.id: m for m in machines}
        result.leaked = sorted(f"{m.name} ({m.id}, for Node {m.node_name})" for m in machines if m.id not in recorded)
        per_name = Counter(m.node_name for m in machines)
        per_uid = Counter(m.spec.get("nodeUID") for m in machines)
        result.doubles = sorted(
            [f"Node {n} ({c} machines)" for n, c in per_name.items() if c > 1]
            + [f"Node uid {u} ({c} machines)" for u, c in per_uid.items() if c > 1]
        )
        for node in nodes:
            meta = node["metadata"]
            machine_id = (meta.get("annotations") or {}).get(ANNOTATION_MACHINE_ID)
            machine = by_id.get(machine_id or "")
            if machine is None:
                result.problems.append(f"Node {meta['name']} records machine {machine_id}, which does not exist")
            elif machine.name != machine_name(meta["name"], meta["uid"]) or machine.spec.get("nodeUID") != meta["uid"]:
                result.problems.append(f"Node {meta['name']} records machine {machine.name}, made for another Node")
        stranded = [
            p["metadata"]["name"]
            for p in self.client.list(PODS, self.namespace)["items"]
            if p["spec"].get("nodeName") not in {n["metadata"]["name"] for n in nodes}
        ]
        if stranded:
            result.problems.append(f"pods left on deleted Nodes (deleted without a drain): {stranded[:5]}")
        return result


def _settled(node: dict[str, Any]) -> bool:
    meta = node["metadata"]
    annotations = meta.get("annotations") or {}
    ready = any(
        c.get("type") == "Ready" and c.get("status") == "True" for c in (node.get("status") or {}).get("conditions", [])
    )
    startup = any(t.get("key") == TAINT_STARTUP for t in node["spec"].get("taints") or [])
    return (
        ready
        and not startup
        and not meta.get("deletionTimestamp")
        and ANNOTATION_MACHINE_ID in annotations
        and ANNOTATION_DRAIN_STARTED not in annotations
    )


def _grpc_node(node: dict[str, Any]) -> pb.ExternalGrpcNode:
    return pb.ExternalGrpcNode(
        providerID=node["spec"].get("providerID", ""),
        name=node["metadata"]["name"],
        labels=node["metadata"].get("labels", {}),
    )


def seed_from_environment(environ: Mapping[str, str], default: int) -> int:
    """``KUBE_NODE_CRASH_SEED`` if set, else ``default``."""
    value = environ.get(SEED_ENV_CRASH)
    return int(value) if value else default


__all__ = ["CrashReport", "CrashRun", "CrashSettings", "Kill", "PhaseResult", "seed_from_environment"]
