"""The MachineProvider contract of the libcloud adapter, on each of libcloud's offline fakes of EC2, GCE,
DigitalOcean and OpenStack (see _clouds.py): every test records the HTTP requests the driver sent and asserts on
them. Nothing touches the network."""

from __future__ import annotations

import pytest

from nodeset_controller.providers import ErrorClass, MachineState, QuotaExceededError

from ._clouds import CLUSTER, MACHINE, SPEC, Harness

# -- the contract, on every provider ------------------------------------------------------------------------


def test_creating_the_same_name_twice_returns_the_first_machine_without_a_second_create(cloud: Harness) -> None:
    provider = cloud.provider
    first = provider.create(SPEC)
    second = provider.create(SPEC)

    assert len(cloud.cloud.sent(cloud.create_action)) == 1
    assert second.id == first.id == cloud.machine_id
    assert second.name == MACHINE
    assert (second.node_name, second.nodeclass, second.cluster) == ("web-1.example.com", "small", CLUSTER)


def test_a_new_provider_finds_the_machine_by_its_name_and_tags(cloud: Harness) -> None:
    cloud.provider.create(SPEC)

    machine = cloud.make().get(MACHINE)  # another process, say, after a restart

    assert machine is not None
    assert machine.id == cloud.machine_id
    assert machine.state is MachineState.RUNNING
    assert (machine.node_name, machine.nodeclass, machine.cluster) == ("web-1.example.com", "small", CLUSTER)
    assert machine.private_ips == cloud.private_ips
    assert cloud.make().get("web-2-0a1b2c3d") is None


def test_list_shows_only_this_clusters_machines(cloud: Harness) -> None:
    assert cloud.provider.list() == []  # the fixtures' machines carry no kube-node tags

    cloud.provider.create(SPEC)

    assert [m.name for m in cloud.provider.list()] == [MACHINE]
    assert cloud.make(cluster="staging").list() == []
    assert cloud.make(cluster="staging").get(MACHINE) is None


def test_destroy_destroys_the_machine_once_and_a_missing_machine_is_success(cloud: Harness) -> None:
    provider = cloud.provider
    provider.create(SPEC)

    provider.destroy(MACHINE)
    provider.destroy(MACHINE)  # gone (EC2: listed as terminated): nothing more to do
    provider.destroy("web-2-0a1b2c3d")

    assert cloud.cloud.destroyed == [cloud.machine_id]
    assert len(cloud.cloud.sent(cloud.destroy_action)) == 1
    after = provider.get(MACHINE)
    assert after is None or after.state is MachineState.TERMINATED


def test_the_providers_quota_error_is_a_quota_exceeded_error(cloud: Harness) -> None:
    cloud.cloud.create_error = cloud.quota_error

    with pytest.raises(QuotaExceededError) as raised:
        cloud.provider.create(SPEC)

    error = raised.value
    assert error.error_class is ErrorClass.OUT_OF_RESOURCES
    assert error.code == "QUOTA_EXCEEDED"
    assert error.retryable
    assert str(error).startswith(f"{cloud.name}: create machine {MACHINE} failed: quota exceeded (")
    assert cloud.cloud.machines == {}


def test_validate_resolves_size_image_and_location_and_creates_nothing(cloud: Harness) -> None:
    provider = cloud.provider

    summary = provider.validate()

    assert summary.startswith("size ") and ", image " in summary
    assert cloud.cloud.sent(cloud.create_action) == [] and cloud.cloud.machines == {}
    assert provider.create(SPEC).id == cloud.machine_id  # and a create still works after it
