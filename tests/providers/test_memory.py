"""The in-memory provider keeps the MachineProvider contract the real ones keep, and does what a test tells it."""

from __future__ import annotations

import threading

import pytest

from nodeset_controller.providers import (
    ErrorClass,
    Machine,
    MachineProvider,
    MachineSpec,
    MachineState,
    MemoryCloud,
    MemoryProvider,
    ProviderError,
    QuotaExceededError,
    machine_name,
)

UID = "7e1d5c3a-0000-4000-8000-000000000000"


def _spec(node: str, *, nodeclass: str = "small", cluster: str = "prod") -> MachineSpec:
    return MachineSpec(
        name=machine_name(node, UID),
        node_name=node,
        node_uid=UID,
        nodeclass=nodeclass,
        cluster=cluster,
        provider_id=f"kube-node://{nodeclass}/{node}",
    )


def _provider(cloud: MemoryCloud, nodeclass: str = "small", cluster: str = "prod") -> MemoryProvider:
    return MemoryProvider(cloud, cluster=cluster, nodeclass=nodeclass)


def test_it_is_a_machine_provider() -> None:
    assert isinstance(MemoryProvider(cluster="prod", nodeclass="small"), MachineProvider)


def test_creating_the_same_name_twice_returns_the_first_machine() -> None:
    cloud = MemoryCloud()
    first = _provider(cloud).create(_spec("web-1"))

    second = _provider(cloud).create(_spec("web-1"))  # another process, after a restart

    assert second == first
    assert len(cloud.machines()) == 1
    assert (first.name, first.node_name, first.nodeclass, first.cluster) == (
        "web-1-7e1d5c3a",
        "web-1",
        "small",
        "prod",
    )
    assert first.state is MachineState.RUNNING and first.created_at is not None and first.private_ips


def test_two_machines_get_different_ids_and_addresses() -> None:
    provider = _provider(MemoryCloud())

    one, two = provider.create(_spec("web-1")), provider.create(_spec("web-2"))

    assert one.id != two.id
    assert one.private_ips != two.private_ips


def test_concurrent_creates_of_one_name_make_one_machine() -> None:
    cloud = MemoryCloud()
    start = threading.Barrier(20)
    made: list[Machine] = []

    def create() -> None:
        start.wait()
        made.append(_provider(cloud).create(_spec("web-1")))

    threads = [threading.Thread(target=create) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(cloud.machines()) == 1
    assert {m.id for m in made} == {cloud.machines()[0].id}


def test_list_shows_this_clusters_machines_of_this_nodeclass_and_get_this_clusters() -> None:
    cloud = MemoryCloud()
    ours = _provider(cloud).create(_spec("web-1"))
    _provider(cloud, nodeclass="large").create(_spec("db-1", nodeclass="large"))
    theirs = _provider(cloud, cluster="staging").create(_spec("web-9", cluster="staging"))

    assert _provider(cloud).list() == [ours]
    assert _provider(cloud).get(ours.name) == ours
    assert _provider(cloud).get(theirs.name) is None  # another cluster's machine is not ours to see
    assert _provider(cloud).get("web-2-7e1d5c3a") is None


def test_destroy_destroys_every_machine_of_the_name_and_a_missing_one_is_success() -> None:
    cloud = MemoryCloud()
    provider = _provider(cloud)
    machine = provider.create(_spec("web-1"))

    provider.destroy(machine.name)
    provider.destroy(machine.name)
    provider.destroy("web-2-7e1d5c3a")

    assert cloud.machines() == []
    assert provider.get(machine.name) is None


def test_destroy_with_an_id_destroys_only_that_duplicate() -> None:
    cloud = MemoryCloud()
    provider = _provider(cloud)
    kept = provider.create(_spec("web-1"))
    twin = cloud.add(Machine(kept.name, "twin-1", MachineState.RUNNING, "web-1", nodeclass="small", cluster="prod"))

    provider.destroy(kept.name, twin.id)

    assert cloud.machines() == [kept]


def test_destroy_leaves_another_clusters_machine_of_the_same_name() -> None:
    cloud = MemoryCloud()
    theirs = _provider(cloud, cluster="staging").create(_spec("web-1", cluster="staging"))

    _provider(cloud).destroy(theirs.name)

    assert cloud.machines() == [theirs]


def test_a_fault_fails_the_call_it_names_after_the_call_reached_the_account() -> None:
    def quota(operation: str, name: str) -> ProviderError | None:
        return QuotaExceededError(f"no room for {name}") if operation == "create" else None

    cloud = MemoryCloud(fault=quota)
    provider = _provider(cloud)

    with pytest.raises(QuotaExceededError, match="no room for web-1-7e1d5c3a"):
        provider.create(_spec("web-1"))
    assert cloud.machines() == []
    assert provider.list() == []  # other calls pass

    cloud.fault = None
    provider.create(_spec("web-1"))
    assert cloud.calls == [("create", "web-1-7e1d5c3a"), ("list", ""), ("create", "web-1-7e1d5c3a")]


def test_a_fault_may_raise_too() -> None:
    def down(operation: str, name: str) -> ProviderError | None:
        raise ProviderError("the cloud is down", error_class=ErrorClass.TRANSIENT, code="PROVIDER_UNAVAILABLE")

    provider = _provider(MemoryCloud(fault=down))

    with pytest.raises(ProviderError) as raised:
        provider.validate()
    assert raised.value.code == "PROVIDER_UNAVAILABLE"


def test_machines_start_in_the_clouds_state_and_move_when_told() -> None:
    cloud = MemoryCloud(state=MachineState.PENDING)
    provider = _provider(cloud)
    machine = provider.create(_spec("web-1"))
    assert machine.state is MachineState.PENDING

    cloud.set_state(machine.name, MachineState.FAILED, error="kernel panic")

    failed = provider.get(machine.name)
    assert failed is not None and (failed.state, failed.error) == (MachineState.FAILED, "kernel panic")
    assert failed.id == machine.id


def test_get_prefers_a_live_machine_to_a_terminated_one_of_the_same_name() -> None:
    cloud = MemoryCloud()
    name = machine_name("web-1", UID)
    cloud.add(Machine(name, "old", MachineState.TERMINATED, cluster="prod", nodeclass="small"))
    live = cloud.add(Machine(name, "new", MachineState.RUNNING, cluster="prod", nodeclass="small"))

    assert _provider(cloud).get(name) == live
    assert _provider(cloud).create(_spec("web-1")) == live  # and create finds it, as the real providers do
