"""The EC2 dialect, through libcloud's real EC2 driver against its offline fake (see _clouds.py)."""

from __future__ import annotations

import base64
import types

import pytest

from nodeset_controller.api import ExtraArgument
from nodeset_controller.providers import TAG_CLUSTER, ErrorClass, MachineState, ProviderError, QuotaExceededError
from nodeset_controller.providers.libcloud import LibcloudProvider

from ._clouds import CLUSTER, MACHINE, OUR_TAGS, SPEC, Ec2Api, Harness, nodeclass_for


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


# -- what extraCreateArgs name, and sizes libcloud does not know, resolved before the create -------------------


def test_an_instance_type_newer_than_libclouds_table_is_used_by_its_name(ec2: Harness) -> None:
    from libcloud.compute.constants.ec2_instance_types import INSTANCE_TYPES

    assert "m8i.large" not in INSTANCE_TYPES  # libcloud 3.9's table predates it
    provider = ec2.make(size="m8i.large")

    assert provider.validate().startswith("size m8i.large, image ")
    provider.create(SPEC)

    [run] = ec2.cloud.sent("RunInstances")
    assert run["InstanceType"] == "m8i.large"
    [asked] = ec2.cloud.sent("DescribeInstanceTypes")  # once per thread: validate's lookup is kept for creates
    assert asked["InstanceType.1"] == "m8i.large"


@pytest.mark.parametrize("size", ["m9.huge", "large"])
def test_a_size_neither_libcloud_nor_ec2_knows_is_not_found(ec2: Harness, size: str) -> None:
    with pytest.raises(ProviderError) as raised:
        ec2.make(size=size).validate()

    assert raised.value.code == "SIZE_NOT_FOUND"
    assert f"'{size}'" in str(raised.value)


def test_ec2_subnet_by_name_tag_and_security_groups_by_name(ec2: Harness) -> None:
    # describe_subnets.xml: subnet-ce0e7ce5 is tagged Name=Test Subnet 1; describe_security_groups.xml has
    # sg-443d0a12 called WebServers.
    provider = ec2.make(
        extra_create_args=[
            ExtraArgument("ex_subnet", "Test Subnet 1"),
            ExtraArgument("ex_security_group_ids", ["WebServers", {"id": "sg-5ff8a023"}]),
        ]
    )

    provider.create(SPEC)

    [run] = ec2.cloud.sent("RunInstances")
    assert run["SubnetId"] == "subnet-ce0e7ce5"
    assert (run["SecurityGroupId.1"], run["SecurityGroupId.2"]) == ("sg-443d0a12", "sg-5ff8a023")
    [by_name] = ec2.cloud.sent("DescribeSubnets")
    assert (by_name["Filter.1.Name"], by_name["Filter.1.Value.1"]) == ("tag:Name", "Test Subnet 1")


@pytest.mark.parametrize(
    ("args", "code", "named"),
    [
        ([ExtraArgument("ex_subnet", "subnet-00000000")], "SUBNET_NOT_FOUND", "'subnet-00000000'"),
        (
            [ExtraArgument("ex_subnet", "subnet-ce0e7ce5"), ExtraArgument("ex_security_group_ids", ["nope"])],
            "SECURITY_GROUP_NOT_FOUND",
            "'nope'",
        ),
        ([ExtraArgument("ex_security_group_ids", ["sg-443d0a12"])], "INVALID_CREATE_ARGUMENT", "without ex_subnet"),
        ([ExtraArgument("ex_subnet", {"cidr": "10.0.0.0/24"})], "INVALID_CREATE_ARGUMENT", "ex_subnet must name"),
    ],
)
def test_what_extra_create_args_name_must_exist_before_anything_is_created(
    ec2: Harness, args: list[ExtraArgument], code: str, named: str
) -> None:
    with pytest.raises(ProviderError) as raised:
        ec2.make(extra_create_args=args).validate()

    assert raised.value.code == code
    assert raised.value.error_class is ErrorClass.INVALID_CONFIGURATION
    assert named in str(raised.value)
    assert ec2.cloud.sent("RunInstances") == []


def test_a_missing_ec2_key_pair_is_named_before_anything_is_created(
    ec2: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    from libcloud.compute.drivers.ec2 import EC2NodeDriver

    missing = Ec2Api.fixtures.load("describe_key_pairs_doesnt_exist.xml")
    api = EC2NodeDriver.connectionCls.conn_class
    monkeypatch.setattr(api, "_DescribeKeyPairs", lambda self, *a: (400, missing, {}, "Bad Request"), raising=False)

    with pytest.raises(ProviderError) as raised:
        ec2.provider.create(SPEC)

    assert raised.value.code == "KEY_PAIR_NOT_FOUND"
    assert "'kube-node'" in str(raised.value)
    assert ec2.cloud.sent("RunInstances") == []
