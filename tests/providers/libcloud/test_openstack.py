"""The OpenStack dialect, through libcloud's real OpenStack driver against its offline fake (see
_clouds.py)."""

from __future__ import annotations

import base64

import pytest

from nodeset_controller.api import ExtraArgument
from nodeset_controller.providers import ErrorClass, MachineState, ProviderError

from ._clouds import CLUSTER, MACHINE, OUR_TAGS, SPEC, Harness, OpenStackApi


def test_openstack_create_sends_flavor_image_zone_user_data_and_metadata(openstack: Harness) -> None:
    machine = openstack.provider.create(SPEC)

    [server] = openstack.cloud.sent("servers")
    assert server["name"] == MACHINE
    assert server["flavorRef"] == "3"  # the flavor named "1GB slice"
    assert server["imageRef"] == "f24a3c1b-d52a-4116-91da-25b3eee8f55e"
    assert server["availability_zone"] == "nova"
    assert base64.b64decode(server["user_data"]).decode() == SPEC.user_data
    assert server["key_name"] == "kube-node"
    assert server["metadata"] == {"team": "blue", **OUR_TAGS}

    assert machine.name == MACHINE
    assert machine.id == OpenStackApi.SERVER_ID
    assert machine.state is MachineState.RUNNING
    assert (machine.node_name, machine.nodeclass, machine.cluster) == ("web-1.example.com", "small", CLUSTER)
    assert machine.private_ips == ("10.0.0.12",)


def test_openstack_image_names_shared_by_several_images_are_refused(openstack: Harness) -> None:
    with pytest.raises(ProviderError) as raised:
        openstack.make(image="hypernode").create(SPEC)  # two images in the fixture are called hypernode

    assert raised.value.code == "IMAGE_AMBIGUOUS"
    assert openstack.cloud.sent("servers") == []


# -- what extraCreateArgs name, resolved before the create; the current compute API by default ------------------


def test_security_groups_and_networks_are_given_by_name_or_id(openstack: Harness) -> None:
    # libcloud's neutron fixtures: security groups "default" and "ftp", networks "net1" and "net2".
    provider = openstack.make(
        extra_create_args=[
            ExtraArgument("ex_security_groups", [{"name": "default"}, "ftp"]),
            ExtraArgument("networks", [{"id": "db193ab3-96e3-4cb3-8fc5-05f4296d0324"}, "net1"]),
        ]
    )

    provider.create(SPEC)

    [server] = openstack.cloud.sent("servers")
    assert server["security_groups"] == [{"name": "default"}, {"name": "ftp"}]
    assert server["networks"] == [
        {"uuid": "db193ab3-96e3-4cb3-8fc5-05f4296d0324"},  # net2
        {"uuid": "d32019d3-bc6e-4319-9c1d-6722fc136a22"},  # net1
    ]


@pytest.mark.parametrize(
    ("arg", "code", "named"),
    [
        (ExtraArgument("ex_security_groups", [{"name": "k8s"}]), "SECURITY_GROUP_NOT_FOUND", "'k8s'"),
        (ExtraArgument("networks", ["nowhere"]), "NETWORK_NOT_FOUND", "'nowhere'"),
        (ExtraArgument("ex_keyname", "nobody"), "KEY_PAIR_NOT_FOUND", "'nobody'"),
        (ExtraArgument("ex_security_groups", [{"cidr": "0.0.0.0/0"}]), "INVALID_CREATE_ARGUMENT", "ex_security_groups"),
        (ExtraArgument("security_groups", ["default"]), "INVALID_CREATE_ARGUMENT", "'security_groups'"),
    ],
)
def test_what_extra_create_args_name_must_exist_before_anything_is_created(
    openstack: Harness, arg: ExtraArgument, code: str, named: str
) -> None:
    with pytest.raises(ProviderError) as raised:
        openstack.make(extra_create_args=[arg]).validate()

    assert raised.value.code == code
    assert raised.value.error_class is ErrorClass.INVALID_CONFIGURATION
    assert named in str(raised.value)
    assert openstack.cloud.sent("servers") == []


def test_networks_is_openstacks_own_not_every_drivers(ec2: Harness) -> None:
    with pytest.raises(ProviderError) as raised:
        ec2.make(extra_create_args=[ExtraArgument("networks", ["net1"])]).validate()

    assert raised.value.code == "INVALID_CREATE_ARGUMENT"
    assert "'networks' must start with 'ex_'" in str(raised.value)


def test_without_an_api_version_the_driver_is_the_current_one_not_libclouds_old_default(openstack: Harness) -> None:
    from libcloud.compute.drivers.openstack import OpenStack_1_1_NodeDriver, OpenStack_2_NodeDriver

    options = {"ex_force_auth_url": "https://auth.api.example.com", "ex_force_auth_version": "2.0"}
    current = openstack.make(driver_options=options)
    old = openstack.make(driver_options={**options, "api_version": "1.1"})

    assert type(current._driver()) is OpenStack_2_NodeDriver
    assert type(old._driver()) is OpenStack_1_1_NodeDriver  # still there for whoever asks for it
    current.create(SPEC)
    assert len(openstack.cloud.sent("servers")) == 1
