"""The EC2 dialect, through libcloud's real EC2 driver against its offline fake (see _clouds.py)."""

from __future__ import annotations

import base64
import types

import pytest

from nodeset_controller.providers import TAG_CLUSTER, MachineState, QuotaExceededError
from nodeset_controller.providers.libcloud import LibcloudProvider

from ._clouds import CLUSTER, MACHINE, OUR_TAGS, SPEC, Harness, nodeclass_for


def test_ec2_create_sends_size_image_zone_user_data_and_tags(ec2: Harness) -> None:
    machine = ec2.provider.create(SPEC)

    [run] = ec2.cloud.sent("RunInstances")
    assert run["InstanceType"] == "m5.large"
    assert run["ImageId"] == "ami-57ba933a"
    assert run["Placement.AvailabilityZone"] == "eu-west-1a"
    assert base64.b64decode(run["UserData"]).decode() == SPEC.user_data
    assert run["KeyName"] == "kube-node"  # from extraCreateArgs
    assert run["ClientToken"] == MACHINE  # EC2's own idempotency key
    tags = {
        run[k]: run[k.replace(".Key", ".Value")]
        for k in run
        if k.startswith("TagSpecification.1.Tag.") and k.endswith(".Key")
    }
    assert tags == {"Name": MACHINE, "team": "blue", **OUR_TAGS}  # the user's ex_metadata tags, and ours
    # The listing before the create asked EC2 for this cluster's instances only.
    [describe] = ec2.cloud.sent("DescribeInstances")
    assert (describe["Filter.1.Name"], describe["Filter.1.Value.1"]) == (f"tag:{TAG_CLUSTER}", CLUSTER)

    assert machine.name == MACHINE
    assert machine.id == "i-2ba64342"
    assert machine.state is MachineState.PENDING
    assert (machine.node_name, machine.nodeclass, machine.cluster) == ("web-1.example.com", "small", CLUSTER)


def test_ec2_insufficient_capacity_is_a_stockout_not_a_5xx(ec2: Harness) -> None:
    ec2.cloud.create_error = (
        500,
        "<Response><Errors><Error><Code>InsufficientInstanceCapacity</Code><Message>We currently do not have "
        "sufficient m5.large capacity in the Availability Zone you requested (eu-west-1a).</Message></Error>"
        "</Errors><RequestID>r-1</RequestID></Response>",
    )

    with pytest.raises(QuotaExceededError) as raised:
        ec2.provider.create(SPEC)

    assert raised.value.code == "STOCKOUT"
    assert "InsufficientInstanceCapacity" in str(raised.value)


def test_an_ec2_instance_stopped_on_its_own_is_failed_not_pending() -> None:
    from libcloud.compute.base import Node

    # libcloud's EC2 driver reports "stopped" as UNKNOWN; the raw state is in extra["status"].
    node = Node("i-1", MACHINE, "unknown", [], [], None, extra={"status": "stopped", "tags": {TAG_CLUSTER: CLUSTER}})
    provider = LibcloudProvider(
        nodeclass_for("ec2"),
        {},
        CLUSTER,
        driver_factory=lambda: types.SimpleNamespace(list_nodes=lambda **kwargs: [node]),
    )

    machine = provider.get(MACHINE)

    assert machine is not None
    assert machine.state is MachineState.FAILED
    assert machine.error == "the provider reports the machine as stopped"


def test_validate_on_ec2_names_what_it_resolved(ec2: Harness) -> None:
    assert ec2.provider.validate() == "size m5.large, image Test Image (ami-57ba933a), location eu-west-1a (0)"
