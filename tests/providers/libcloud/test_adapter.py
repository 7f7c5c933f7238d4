"""The adapter itself: its drivers (one per thread, with a timeout), the NodeClass resolved by name before anything
is made, and libcloud's node states as machine states."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from nodeset_controller.api import ExtraArgument
from nodeset_controller.providers import TAG_CLUSTER, ErrorClass, MachineState, ProviderError
from nodeset_controller.providers.libcloud import LibcloudProvider

from ._clouds import CLUSTER, MACHINE, SPEC, Harness, nodeclass_for

# -- drivers, timeouts --------------------------------------------------------------------------------------------


def test_the_request_timeout_reaches_the_drivers_connections(ec2: Harness, gce: Harness) -> None:
    ec2_provider, gce_provider = ec2.provider, gce.provider
    ec2_provider.list()
    gce_provider.list()

    assert ec2_provider._driver().connection.timeout == 7.5
    # GCE's connection also spends its timeout waiting for operations: never below libcloud's 180 s.
    assert gce_provider._driver().connection.timeout == 180


def test_each_thread_builds_its_own_driver_once() -> None:
    built: list[int] = []

    class Driver:
        def __init__(self) -> None:
            built.append(threading.get_ident())

        def list_nodes(self, **kwargs: Any) -> list[Any]:
            return []

    # Every call lists (no shared listing), so that each thread needs a driver.
    provider = LibcloudProvider(nodeclass_for("ec2"), {}, CLUSTER, driver_factory=Driver, listing_max_age=0.0)
    provider.list()
    provider.list()
    worker = threading.Thread(target=provider.list)
    worker.start()
    worker.join()

    assert len(built) == 2
    assert built[0] == threading.get_ident() != built[1]


def test_an_unknown_provider_name_is_invalid_configuration() -> None:
    with pytest.raises(ProviderError) as raised:
        LibcloudProvider(nodeclass_for("nosuchcloud"), {"key": "k"}, CLUSTER).list()

    assert raised.value.code == "UNKNOWN_PROVIDER"
    assert raised.value.error_class is ErrorClass.INVALID_CONFIGURATION


# -- a NodeClass that does not resolve fails by name, making nothing ----------------------------------------------


@pytest.mark.parametrize(
    ("change", "code", "named"),
    [
        ({"size": "m9.huge"}, "SIZE_NOT_FOUND", "'m9.huge'"),
        ({"location": "eu-west-1z"}, "LOCATION_NOT_FOUND", "'eu-west-1z'"),
        ({"image": "no-such-image"}, "IMAGE_NOT_FOUND", "'no-such-image'"),
        ({"extra_create_args": [ExtraArgument("ex_no_such_arg", 1)]}, "INVALID_CREATE_ARGUMENT", "'ex_no_such_arg'"),
        ({"extra_create_args": [ExtraArgument("ex_userdata", "x")]}, "CONFLICTING_CREATE_ARGUMENT", "ex_userdata"),
    ],
)
def test_a_bad_nodeclass_fails_by_name_before_anything_is_created(
    ec2: Harness, change: dict[str, Any], code: str, named: str
) -> None:
    with pytest.raises(ProviderError) as raised:
        ec2.make(**change).create(SPEC)

    assert raised.value.code == code
    assert raised.value.error_class is ErrorClass.INVALID_CONFIGURATION
    assert named in str(raised.value) and str(raised.value).startswith("ec2: ")
    assert ec2.cloud.sent("RunInstances") == []


@pytest.mark.parametrize(
    ("change", "code", "named"),
    [
        ({"size": "m9.huge"}, "SIZE_NOT_FOUND", "'m9.huge'"),
        ({"location": "eu-west-1z"}, "LOCATION_NOT_FOUND", "'eu-west-1z'"),
        ({"image": "no-such-image"}, "IMAGE_NOT_FOUND", "'no-such-image'"),
        ({"extra_create_args": [ExtraArgument("ex_no_such_arg", 1)]}, "INVALID_CREATE_ARGUMENT", "'ex_no_such_arg'"),
        (
            {"user_data": "#cloud-config", "extra_create_args": [ExtraArgument("ex_userdata", "x")]},
            "CONFLICTING_CREATE_ARGUMENT",
            "ex_userdata",
        ),
    ],
)
def test_validate_names_what_does_not_resolve(ec2: Harness, change: dict[str, Any], code: str, named: str) -> None:
    with pytest.raises(ProviderError) as raised:
        ec2.make(**change).validate()

    assert raised.value.code == code
    assert raised.value.error_class is ErrorClass.INVALID_CONFIGURATION
    assert named in str(raised.value) and str(raised.value).startswith("ec2: ")
    assert ec2.cloud.sent("RunInstances") == []


# -- states ----------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("state", "expected"),
    [
        ("pending", MachineState.PENDING),
        ("starting", MachineState.PENDING),
        ("rebooting", MachineState.PENDING),
        ("unknown", MachineState.PENDING),
        ("running", MachineState.RUNNING),
        ("stopped", MachineState.FAILED),
        ("error", MachineState.FAILED),
        ("suspended", MachineState.FAILED),
        ("paused", MachineState.FAILED),
        ("terminated", MachineState.TERMINATED),
        ("stopping", MachineState.TERMINATING),
    ],
)
def test_libcloud_node_states_map_to_machine_states(state: str, expected: MachineState) -> None:
    from libcloud.compute.base import Node

    class Driver:
        def __init__(self) -> None:
            self.node = Node(MACHINE, MACHINE, state, [], [], None, extra={"tags": {TAG_CLUSTER: CLUSTER}})

        def list_nodes(self, **kwargs: Any) -> list[Any]:
            return [self.node]

    machine = LibcloudProvider(nodeclass_for("ec2"), {}, CLUSTER, driver_factory=Driver).get(MACHINE)

    assert machine is not None
    assert machine.state is expected
    assert (machine.error is not None) == (expected is MachineState.FAILED)
