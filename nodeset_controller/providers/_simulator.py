"""The simulator: a real machine provider for development and tests, whose machines are simulated.

A :class:`SimulatorCloud` is one simulated cloud account. Its machines are rows in a SQLite file in a
directory of your choice, committed before ``create`` returns, so they survive a restart (or a SIGKILL) of
kube-node exactly as a cloud's machines would. Machines boot after a delay and can be made to fail:
settings come from the NodeClass's ``driverOptions`` on every call, so changing the NodeClass changes the
cloud's behaviour at once:

=====================  ========================================================================
bootDelaySeconds       seconds from create until the machine is Running (default 0)
createDelaySeconds     how long ``create`` itself blocks, like a slow cloud API (default 0)
createFailureRate      share of creates refused with a quota error, 0..1 (default 0)
maxMachines            creates beyond this many live machines of the class are refused (quota)
destroyFailureRate     share of destroys that fail with a transient error, 0..1 (default 0)
crashAfterSeconds      a Running machine fails this long after it booted (default: never, or 30 with crashRate)
crashRate              share of machines that crash, crashAfterSeconds after they booted, 0..1 (default 1
                       when crashAfterSeconds is set, else 0)
reportCreationTime     "false": machines are listed without their creation time, as some clouds do
=====================  ========================================================================

Every create and destroy call is also written down as it arrives, with the calling process's pid, in the
same file (:meth:`SimulatorCloud.calls`): the account's audit log, shared by every process that uses it, as
a cloud's would be.

The simulated kubelets that run on these machines live in :mod:`._simkubelet`.
"""

from __future__ import annotations

import dataclasses
import json
import os
import random
import sqlite3
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..api import NodeClass
from ._machine import ErrorClass, Machine, MachineSpec, MachineState, ProviderError, QuotaExceededError

_SCHEMA = """
CREATE TABLE IF NOT EXISTS machines (
    name TEXT PRIMARY KEY,
    id TEXT NOT NULL,
    cluster TEXT NOT NULL,
    nodeclass TEXT NOT NULL,
    node_name TEXT NOT NULL,
    created_at REAL NOT NULL,
    boot_at REAL NOT NULL,
    crash_at REAL,
    private_ip TEXT NOT NULL,
    spec TEXT NOT NULL
)
"""
_CALLS_SCHEMA = """
CREATE TABLE IF NOT EXISTS calls (
    operation TEXT NOT NULL,
    machine TEXT NOT NULL,
    pid INTEGER NOT NULL,
    at REAL NOT NULL
)
"""


@dataclass(frozen=True)
class CloudCall:
    """One create or destroy call as it reached the simulated cloud."""

    operation: str  #: "create" or "destroy"
    machine: str  #: the machine's name
    pid: int  #: the calling process
    at: float  #: when it arrived (seconds since the epoch)


@dataclass(frozen=True)
class SimulatorSettings:
    """The simulator's behaviour for one NodeClass (from its driverOptions)."""

    boot_delay: float = 0.0
    create_delay: float = 0.0
    create_failure_rate: float = 0.0
    max_machines: int | None = None
    destroy_failure_rate: float = 0.0
    crash_after: float | None = None
    crash_rate: float = 1.0  #: the share of machines that crash crash_after seconds after booting
    report_creation_time: bool = True

    @classmethod
    def from_nodeclass(cls, nodeclass: NodeClass) -> SimulatorSettings:
        """Read the settings; a malformed value is an InvalidConfiguration error naming the option."""
        options = nodeclass.spec.driver_options

        def number(key: str) -> float | None:
            if key not in options:
                return None
            try:
                value = float(options[key])
            except ValueError:
                raise ProviderError(
                    f"NodeClass {nodeclass.metadata.name}: driverOptions.{key} must be a number, got {options[key]!r}",
                    error_class=ErrorClass.INVALID_CONFIGURATION,
                    code="INVALID_DRIVER_OPTION",
                ) from None
            if value < 0:
                raise ProviderError(
                    f"NodeClass {nodeclass.metadata.name}: driverOptions.{key} must not be negative",
                    error_class=ErrorClass.INVALID_CONFIGURATION,
                    code="INVALID_DRIVER_OPTION",
                )
            return value

        max_machines = number("maxMachines")
        crash_rate = number("crashRate")
        crash_after = number("crashAfterSeconds")
        if crash_after is None and crash_rate:
            crash_after = 30.0
        return cls(
            boot_delay=number("bootDelaySeconds") or 0.0,
            create_delay=number("createDelaySeconds") or 0.0,
            create_failure_rate=number("createFailureRate") or 0.0,
            max_machines=None if max_machines is None else int(max_machines),
            destroy_failure_rate=number("destroyFailureRate") or 0.0,
            crash_after=crash_after,
            crash_rate=1.0 if crash_rate is None else crash_rate,
            report_creation_time=str(options.get("reportCreationTime", "true")).lower() not in ("false", "0"),
        )


@dataclass(frozen=True)
class SimulatedMachine:
    """A machine row, with the spec it was created from (the simulated kubelet reads capacity from it)."""

    name: str
    id: str
    cluster: str
    nodeclass: str
    node_name: str
    created_at: float
    boot_at: float
    crash_at: float | None
    private_ip: str
    spec: dict[str, Any]

    def state(self, now: float) -> MachineState:
        """Pending until it boots, then Running until it crashes (if it is set to)."""
        if self.crash_at is not None and now >= self.crash_at:
            return MachineState.FAILED
        return MachineState.RUNNING if now >= self.boot_at else MachineState.PENDING

    def to_machine(self, now: float) -> Machine:
        """The provider-neutral record."""
        state = self.state(now)
        return Machine(
            name=self.name,
            id=self.id,
            state=state,
            node_name=self.node_name,
            nodeclass=self.nodeclass,
            cluster=self.cluster,
            created_at=self.created_at,
            private_ips=(self.private_ip,),
            error="simulated crash" if state is MachineState.FAILED else None,
        )


class SimulatorCloud:
    """One simulated cloud account, persisted in ``directory/machines.db``; safe to share between threads."""

    def __init__(self, directory: Path, *, seed: int | None = None) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.directory = directory
        self._db = sqlite3.connect(directory / "machines.db", check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")  # durable across a crash of this process
        self._db.execute(_SCHEMA)
        self._db.execute(_CALLS_SCHEMA)
        self._lock = threading.Lock()
        self._random = random.Random(seed)
        self._machines: dict[str, SimulatedMachine] = {}
        self.creates = 0  #: create calls that made a machine (for tests and benchmarks)
        #: (machine name, time.monotonic(), error code or "" ) of every create that reached the cloud's API,
        #: as a cloud's audit log would show them (the last 10,000).
        self.create_log: deque[tuple[str, float, str]] = deque(maxlen=10000)
        self._data_version = -1
        with self._lock:
            self._refresh_locked()

    def _refresh_locked(self) -> None:
        """Reload the machines if another process (another kube-node, a test) changed the account: the
        database is the cloud, shared like a real one; the dict is this process's view of it."""
        (version,) = self._db.execute("PRAGMA data_version").fetchone()
        if version == self._data_version:
            return
        self._data_version = version
        machines: dict[str, SimulatedMachine] = {}
        for row in self._db.execute("SELECT * FROM machines"):
            name, id_, cluster, nodeclass, node_name, created_at, boot_at, crash_at, private_ip, spec = row
            machines[name] = SimulatedMachine(
                name=name,
                id=id_,
                cluster=cluster,
                nodeclass=nodeclass,
                node_name=node_name,
                created_at=created_at,
                boot_at=boot_at,
                crash_at=crash_at,
                private_ip=private_ip,
                spec=json.loads(spec),
            )
        self._machines = machines

    def close(self) -> None:
        """Close the database."""
        with self._lock:
            self._db.close()

    def calls(self) -> list[CloudCall]:
        """Every create and destroy call that reached the account, from any process, oldest first."""
        with self._lock:
            rows = self._db.execute("SELECT operation, machine, pid, at FROM calls ORDER BY rowid").fetchall()
        return [CloudCall(*row) for row in rows]

    def _log_call(self, operation: str, name: str) -> None:
        with self._lock:
            self._db.execute("INSERT INTO calls VALUES (?, ?, ?, ?)", (operation, name, os.getpid(), time.time()))

    def machines(self) -> list[SimulatedMachine]:
        """Every machine in the account."""
        with self._lock:
            self._refresh_locked()
            return list(self._machines.values())

    def get(self, name: str) -> SimulatedMachine | None:
        """The machine called ``name``."""
        with self._lock:
            self._refresh_locked()
            return self._machines.get(name)

    def create(self, spec: MachineSpec, settings: SimulatorSettings) -> SimulatedMachine:
        """Create the machine (idempotent by name), after the configured delay and fault checks."""
        self._log_call("create", spec.name)
        existing = self.get(spec.name)
        if existing is not None:
            return existing
        if settings.create_delay:
            time.sleep(settings.create_delay)
        with self._lock:
            self._refresh_locked()
            existing = self._machines.get(spec.name)
            if existing is not None:
                return existing
            if settings.create_failure_rate and self._random.random() < settings.create_failure_rate:
                self.create_log.append((spec.name, time.monotonic(), "QUOTA_EXCEEDED"))
                raise QuotaExceededError(  # with a request id that changes every time, as a real cloud's does
                    f"simulator: quota exceeded creating {spec.name} for NodeClass {spec.nodeclass} "
                    f"(createFailureRate={settings.create_failure_rate:g}; request id {uuid.uuid4()})"
                )
            if settings.max_machines is not None:
                live = sum(1 for m in self._machines.values() if m.nodeclass == spec.nodeclass)
                if live >= settings.max_machines:
                    self.create_log.append((spec.name, time.monotonic(), "QUOTA_EXCEEDED"))
                    raise QuotaExceededError(
                        f"simulator: quota exceeded: NodeClass {spec.nodeclass} already has {live} of "
                        f"maxMachines={settings.max_machines} machines"
                    )
            now = time.time()
            boot_at = now + settings.boot_delay
            machine = SimulatedMachine(
                name=spec.name,
                id=f"sim-{uuid.uuid4().hex[:12]}",
                cluster=spec.cluster,
                nodeclass=spec.nodeclass,
                node_name=spec.node_name,
                created_at=now,
                boot_at=boot_at,
                crash_at=None
                if settings.crash_after is None or self._random.random() >= settings.crash_rate
                else boot_at + settings.crash_after,
                private_ip=self._address(),
                spec={
                    "nodeUID": spec.node_uid,
                    "capacity": spec.capacity,
                    "labels": spec.labels,
                    "userData": spec.user_data,
                },
            )
            try:
                self._insert(machine)
            except sqlite3.IntegrityError:  # another process created it in the meantime: that one it is
                self._refresh_locked()
                return self._machines[spec.name]
            self._machines[machine.name] = machine
            self.creates += 1
            self.create_log.append((spec.name, time.monotonic(), ""))
            return machine

    def _insert(self, machine: SimulatedMachine) -> None:
        self._db.execute(
            "INSERT INTO machines VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                machine.name,
                machine.id,
                machine.cluster,
                machine.nodeclass,
                machine.node_name,
                machine.created_at,
                machine.boot_at,
                machine.crash_at,
                machine.private_ip,
                json.dumps(machine.spec),
            ),
        )

    def destroy(self, name: str, settings: SimulatorSettings) -> None:
        """Destroy the machine; a missing one is already destroyed."""
        self._log_call("destroy", name)
        with self._lock:
            self._refresh_locked()
            if name not in self._machines:
                return
            if settings.destroy_failure_rate and self._random.random() < settings.destroy_failure_rate:
                raise ProviderError(
                    f"simulator: destroying {name} failed (destroyFailureRate={settings.destroy_failure_rate:g})",
                    error_class=ErrorClass.TRANSIENT,
                    code="DESTROY_FAILED",
                )
            self._db.execute("DELETE FROM machines WHERE name = ?", (name,))
            self._machines.pop(name, None)

    def _address(self) -> str:
        # Loopback addresses: nothing ever listens there, and nothing may ever be sent off this machine.
        used = {m.private_ip for m in self._machines.values()}
        while True:
            address = (
                f"127.{self._random.randint(1, 254)}.{self._random.randint(0, 255)}.{self._random.randint(1, 254)}"
            )
            if address not in used:
                return address


class SimulatorProvider:
    """The MachineProvider for one simulator NodeClass."""

    def __init__(self, cloud: SimulatorCloud, nodeclass: NodeClass, cluster: str) -> None:
        self._cloud = cloud
        self._nodeclass = nodeclass.metadata.name
        self._cluster = cluster
        self._settings = SimulatorSettings.from_nodeclass(nodeclass)

    def create(self, spec: MachineSpec) -> Machine:
        """Create (or return) the machine."""
        return self._seen(self._cloud.create(spec, self._settings), time.time())

    def get(self, name: str) -> Machine | None:
        """The machine, or None."""
        machine = self._cloud.get(name)
        return None if machine is None else self._seen(machine, time.time())

    def list(self) -> list[Machine]:
        """This cluster's machines of this NodeClass."""
        now = time.time()
        return [
            self._seen(m, now)
            for m in self._cloud.machines()
            if m.cluster == self._cluster and m.nodeclass == self._nodeclass
        ]

    def _seen(self, machine: SimulatedMachine, now: float) -> Machine:
        seen = machine.to_machine(now)
        return seen if self._settings.report_creation_time else dataclasses.replace(seen, created_at=None)

    def destroy(self, name: str, machine_id: str | None = None) -> None:
        """Destroy the machine (missing is fine); with ``machine_id``, only if it has that id."""
        machine = self._cloud.get(name)
        if machine_id is not None and (machine is None or machine.id != machine_id):
            return  # the simulator's creates are idempotent: it never holds a duplicate of a name
        self._cloud.destroy(name, self._settings)

    def validate(self) -> str:
        """Always succeeds: the simulator has every size, image and location (its driverOptions were read
        when this provider was built, and a malformed one failed then)."""
        return f"simulated machines (boot delay {self._settings.boot_delay:g} s)"
