"""The DigitalOcean dialect, through libcloud's real DigitalOcean driver against its offline fake (see
_clouds.py)."""

from __future__ import annotations

from typing import Any

import pytest

from nodeset_controller.api import ExtraArgument
from nodeset_controller.providers import TAG_CLUSTER, TAG_NODE, TAG_NODECLASS, ErrorClass, ProviderError

from ._clouds import CLUSTER, MACHINE, SPEC, DigitalOceanApi, Harness


def test_digitalocean_create_sends_size_image_region_user_data_and_tags(digitalocean: Harness) -> None:
    machine = digitalocean.provider.create(SPEC)

    [droplet] = digitalocean.cloud.sent("droplets")
    assert droplet["name"] == MACHINE
    assert droplet["size"] == "512mb"
    assert droplet["image"] == "119192817"  # the image whose slug is ubuntu-14-04-x64
    assert droplet["region"] == "nyc1"
    assert droplet["user_data"] == SPEC.user_data
    assert droplet["ipv6"] is True  # from extraCreateArgs' ex_create_attr
    # DigitalOcean tags are flat strings of [A-Za-z0-9_:-]: ours are key:value, dots become "_".
    assert droplet["tags"] == [
        "team:blue",
        f"{TAG_CLUSTER}:Prod_EU",
        f"{TAG_NODE}:web-1_example_com",
        f"{TAG_NODECLASS}:small",
    ]

    assert machine.name == MACHINE
    assert machine.id == "4242"
    assert (machine.node_name, machine.nodeclass, machine.cluster) == ("web-1.example.com", "small", CLUSTER)


def test_digitalocean_rejected_token_is_invalid_credentials(digitalocean: Harness) -> None:
    digitalocean.cloud.create_error = (401, DigitalOceanApi.fixtures.load("error.json"))

    with pytest.raises(ProviderError) as raised:
        digitalocean.provider.create(SPEC)

    assert raised.value.error_class is ErrorClass.INVALID_CONFIGURATION
    assert raised.value.code == "INVALID_CREDENTIALS"
    assert not raised.value.retryable
    assert "Unable to authenticate you" in str(raised.value)


# -- nothing in ex_create_attr is dropped without a word ----------------------------------------------------------


def test_droplet_attributes_libcloud_does_not_list_are_sent(digitalocean: Harness) -> None:
    attrs = {"vpc_uuid": "5a4981aa-9653-4bd1-bef5-d6bff52042e4", "monitoring": True, "ssh_keys": [12345678]}
    digitalocean.make(extra_create_args=[ExtraArgument("ex_create_attr", attrs)]).create(SPEC)

    [droplet] = digitalocean.cloud.sent("droplets")
    assert {key: droplet[key] for key in attrs} == attrs


@pytest.mark.parametrize(
    ("attrs", "code", "named"),
    [
        ({"vpc_id": "x"}, "INVALID_CREATE_ARGUMENT", "'vpc_id'"),  # a misspelt vpc_uuid: once silently dropped
        ({"region": "ams3"}, "CONFLICTING_CREATE_ARGUMENT", "ex_create_attr['region']"),
        ({"user_data": "#!/bin/sh"}, "CONFLICTING_CREATE_ARGUMENT", "userData"),
    ],
)
def test_an_ex_create_attr_key_the_driver_would_not_send_is_refused(
    digitalocean: Harness, attrs: dict[str, Any], code: str, named: str
) -> None:
    with pytest.raises(ProviderError) as raised:
        digitalocean.make(extra_create_args=[ExtraArgument("ex_create_attr", attrs)]).validate()

    assert raised.value.code == code
    assert raised.value.error_class is ErrorClass.INVALID_CONFIGURATION
    assert named in str(raised.value)
    assert digitalocean.cloud.sent("droplets") == []
