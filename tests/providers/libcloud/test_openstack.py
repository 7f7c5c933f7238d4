"""The OpenStack dialect, through libcloud's real OpenStack driver against its offline fake (see
_clouds.py)."""

from __future__ import annotations

import base64

import pytest

from nodeset_controller.providers import MachineState, ProviderError

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
