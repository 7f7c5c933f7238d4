"""An in-memory machine provider: the :class:`MachineProvider` interface, whole, with nothing behind it.

For code that needs a provider but not a cloud, a SQLite file or a control plane (what httpx's
MockTransport is to HTTP clients): a :class:`MemoryCloud` is one account whose machines are a dict, shared
by every :class:`MemoryProvider` over it (one per NodeClass, as the registry builds them), so that "another
process after a restart" is another provider over the same cloud. It keeps the contract the real providers
keep: ``create`` is idempotent by machine name, ``list`` shows this cluster's machines of this NodeClass,
``destroy`` of a missing machine succeeds, and with ``machine_id`` destroys only that duplicate.

A test steers it in plain Python: ``fault`` decides, before each call reaches the account, whether that call
fails (return or raise a :class:`ProviderError`); :meth:`MemoryCloud.set_state` boots or fails a machine;
:meth:`MemoryCloud.add` puts in a machine kube-node did not make (an orphan, a twin, another cluster's);
``calls`` is every call that reached the account, in order.
"""

from __future__ import annotations

import dataclasses
import itertools
import threading
import time
from collections.abc import Callable

from ._machine import Machine, MachineSpec, MachineState, ProviderError

#: Decides whether a call fails: given the operation ("create", "get", "list", "destroy", "validate") and the
#: machine name ("" for list and validate), it returns (or raises) the ProviderError to fail with, or None.
Fault = Callable[[str, str], ProviderError | None]


class MemoryCloud:
    """One in-memory account: its machines by id, what reached it, and how it answers. Thread-safe."""

    def __init__(self, *, state: MachineState = MachineState.RUNNING, fault: Fault | None = None) -> None:
        self.state = state  #: the state a new machine starts in
        self.fault = fault
        self.calls: list[tuple[str, str]] = []  #: (operation, machine name) of every call that reached it
        self._machines: dict[str, Machine] = {}
        self._ids = itertools.count(1)
        self._lock = threading.Lock()

    def machines(self) -> list[Machine]:
        """Every machine in the account, in the order they were made."""
        with self._lock:
            return list(self._machines.values())

    def add(self, machine: Machine) -> Machine:
        """Put ``machine`` in the account as it is (its id must be new): one kube-node did not make."""
        with self._lock:
            if machine.id in self._machines:
                raise ValueError(f"a machine with id {machine.id} is already in the account")
            self._machines[machine.id] = machine
        return machine

    def set_state(self, name: str, state: MachineState, error: str | None = None) -> None:
        """Move every machine called ``name`` to ``state`` (with ``error``, why it failed)."""
        with self._lock:
            for id_, machine in self._machines.items():
                if machine.name == name:
                    self._machines[id_] = dataclasses.replace(machine, state=state, error=error)

    def _called(self, operation: str, name: str) -> None:
        with self._lock:
            self.calls.append((operation, name))
            fault = self.fault
        if fault is not None:
            error = fault(operation, name)
            if error is not None:
                raise error

    def _create(self, spec: MachineSpec) -> Machine:
        with self._lock:
            existing = self._named(spec.name, spec.cluster)
            if existing:
                return existing[0]
            number = next(self._ids)
            machine = Machine(
                name=spec.name,
                id=f"mem-{number}",
                state=self.state,
                node_name=spec.node_name,
                nodeclass=spec.nodeclass,
                cluster=spec.cluster,
                created_at=time.time(),
                private_ips=(f"10.{number // 65536 % 256}.{number // 256 % 256}.{number % 256}",),
            )
            self._machines[machine.id] = machine
            return machine

    def _named(self, name: str, cluster: str) -> list[Machine]:
        """``cluster``'s machines called ``name``, live ones first (the lock is held)."""
        named = [m for m in self._machines.values() if m.name == name and m.cluster == cluster]
        return sorted(named, key=lambda m: m.state is MachineState.TERMINATED)

    def _get(self, name: str, cluster: str) -> Machine | None:
        with self._lock:
            named = self._named(name, cluster)
        return named[0] if named else None

    def _destroy(self, name: str, cluster: str, machine_id: str | None) -> None:
        with self._lock:
            for machine in self._named(name, cluster):
                if machine_id is None or machine.id == machine_id:
                    del self._machines[machine.id]


class MemoryProvider:
    """The MachineProvider for one NodeClass over a :class:`MemoryCloud` (a new one if none is given)."""

    def __init__(self, cloud: MemoryCloud | None = None, *, cluster: str, nodeclass: str) -> None:
        self.cloud = cloud if cloud is not None else MemoryCloud()
        self._cluster = cluster
        self._nodeclass = nodeclass

    def __repr__(self) -> str:
        return f"MemoryProvider(cluster={self._cluster!r}, nodeclass={self._nodeclass!r})"

    def create(self, spec: MachineSpec) -> Machine:
        """Create the machine, or return this cluster's machine of that name."""
        self.cloud._called("create", spec.name)
        return self.cloud._create(spec)

    def get(self, name: str) -> Machine | None:
        """The machine called ``name`` if it is this cluster's (a live one before a terminated one), or None."""
        self.cloud._called("get", name)
        return self.cloud._get(name, self._cluster)

    def list(self) -> list[Machine]:
        """This cluster's machines of this NodeClass."""
        self.cloud._called("list", "")
        return [m for m in self.cloud.machines() if m.cluster == self._cluster and m.nodeclass == self._nodeclass]

    def destroy(self, name: str, machine_id: str | None = None) -> None:
        """Destroy every machine of this cluster called ``name`` (with ``machine_id``, only that one); none is
        fine."""
        self.cloud._called("destroy", name)
        self.cloud._destroy(name, self._cluster, machine_id)

    def validate(self) -> str:
        """Succeeds unless ``fault`` says otherwise: memory has every size, image and location."""
        self.cloud._called("validate", "")
        return "in-memory machines"
