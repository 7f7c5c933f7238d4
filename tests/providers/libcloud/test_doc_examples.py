"""Every NodeClass example in docs/nodeclasses.md works: each test reads its cloud's example from the doc itself
(see _docs.py), gives it to the provider with the example Secret's data, and drives libcloud's real driver against
its offline fake (see _clouds.py), which has the resources the example names (libcloud's fixtures, renamed). It
asserts the arguments create_node receives from the adapter and the request the driver sends; a changed example
changes what is tested."""

from __future__ import annotations

import base64
import dataclasses
import functools
import json
from typing import Any

import pytest

from nodeset_controller.providers import MachineSpec
from nodeset_controller.providers.libcloud import LibcloudProvider

from ._clouds import CLUSTER, SPEC, DigitalOceanApi, Ec2Api, OpenStackApi, fake
from ._docs import Example, example


def spy_on_create_node(monkeypatch: pytest.MonkeyPatch, driver_class: type) -> list[dict[str, Any]]:
    """The keyword arguments of every create_node call on ``driver_class``'s drivers (which still make it)."""
    calls: list[dict[str, Any]] = []
    original = driver_class.create_node

    @functools.wraps(original)
    def create_node(self: Any, **kwargs: Any) -> Any:
        calls.append(kwargs)
        return original(self, **kwargs)

    monkeypatch.setattr(driver_class, "create_node", create_node)
    return calls


def spec_for(doc: Example) -> MachineSpec:
    return dataclasses.replace(SPEC, nodeclass=doc.nodeclass.metadata.name, user_data=doc.nodeclass.spec.user_data)


def provider_for(doc: Example) -> LibcloudProvider:
    return LibcloudProvider(doc.nodeclass, doc.credentials, CLUSTER, timeout=7.5)


def extra(doc: Example) -> dict[str, Any]:
    return {arg.name: arg.value for arg in doc.nodeclass.spec.extra_create_args}


# -- Amazon EC2 ---------------------------------------------------------------------------------------------------


def test_the_ec2_example(monkeypatch: pytest.MonkeyPatch) -> None:
    from libcloud.compute.drivers.ec2 import EC2NodeDriver

    doc = example("ec2")
    spec, args = doc.nodeclass.spec, extra(doc)
    [group] = args["ex_security_group_ids"]
    renames = {"ami-57ba933a": spec.image, "subnet-ce0e7ce5": args["ex_subnet"], "sg-443d0a12": group}
    cloud = fake(monkeypatch, Ec2Api, EC2NodeDriver.connectionCls, renames={"responses": renames})
    calls = spy_on_create_node(monkeypatch, EC2NodeDriver)
    provider = provider_for(doc)

    assert provider.validate().startswith(f"size {spec.size}, image ")
    machine = provider.create(spec_for(doc))

    [call] = calls
    assert call["size"].id == spec.size
    assert call["image"].id == spec.image
    assert call["location"].name == spec.location
    assert call["ex_subnet"].id == args["ex_subnet"]  # a libcloud subnet, looked up by its id
    assert call["ex_security_group_ids"] == [group]
    assert call["ex_userdata"] == spec.user_data
    [run] = cloud.sent("RunInstances")
    assert run["InstanceType"] == spec.size
    assert run["ImageId"] == spec.image
    assert run["Placement.AvailabilityZone"] == spec.location
    assert run["SubnetId"] == args["ex_subnet"]
    assert run["SecurityGroupId.1"] == group
    assert base64.b64decode(run["UserData"]).decode() == spec.user_data
    assert machine.id == Ec2Api.INSTANCE_ID


# -- OpenStack ----------------------------------------------------------------------------------------------------


def test_the_openstack_example(monkeypatch: pytest.MonkeyPatch) -> None:
    from libcloud.compute.drivers.openstack import OpenStack_2_NodeDriver as Driver

    doc = example("openstack")
    spec, args = doc.nodeclass.spec, extra(doc)
    [group] = references(args["ex_security_groups"])
    [network] = references(args["networks"])
    region = spec.driver_options["ex_force_service_region"]
    renames = {
        "responses": {
            "regionOne": region,  # _v3__auth.json's catalog
            '"1GB slice"': json.dumps(spec.size),  # _flavors_detail.json
            '"default"': json.dumps(group),  # _v2_0__security_groups.json
            '"net1"': json.dumps(network),  # _v2_0__networks.json
        },
        # neutron's and glance's paths, where libcloud's fake answers them
        "paths": {"/v2.0/": "/v2/1337/v2.0/", "/v2/images": "/v2/1337/v2/images"},
        "image_names": {"f24a3c1b-d52a-4116-91da-25b3eee8f55e": spec.image},
        "key_pairs": frozenset({args["ex_keyname"]}),
    }
    connections = [
        Driver.connectionCls,
        Driver.image_connectionCls,
        Driver.network_connectionCls,
        Driver.volumev2_connectionCls,
        Driver.volumev3_connectionCls,
        Driver.reservation_connectionCls,
    ]
    cloud = fake(monkeypatch, OpenStackApi, *connections, renames=renames)
    calls = spy_on_create_node(monkeypatch, Driver)
    provider = provider_for(doc)

    provider.validate()
    machine = provider.create(spec_for(doc))

    auths = cloud.sent("auth/tokens")  # one per service's connection
    auth = auths[0]
    assert auths == [auth] * len(auths)
    user = auth["auth"]["identity"]["password"]["user"]
    assert (user["name"], user["domain"]["name"]) == (doc.credentials["key"], spec.driver_options["ex_domain_name"])
    assert auth["auth"]["scope"]["project"]["name"] == doc.credentials["ex_tenant_name"]
    [call] = calls
    assert call["size"].name == spec.size
    assert call["image"].name == spec.image
    assert call["ex_keyname"] == args["ex_keyname"]
    assert [g.name for g in call["ex_security_groups"]] == [group]
    assert [n.name for n in call["networks"]] == [network]
    assert call["ex_userdata"] == spec.user_data
    [server] = cloud.sent("servers")
    assert server["flavorRef"] == call["size"].id
    assert server["imageRef"] == call["image"].id
    assert server["key_name"] == args["ex_keyname"]
    assert server["security_groups"] == [{"name": group}]
    assert server["networks"] == [{"uuid": call["networks"][0].id}]
    assert base64.b64decode(server["user_data"]).decode() == spec.user_data
    assert machine.id == OpenStackApi.SERVER_ID


def references(value: list[Any]) -> list[str]:
    """The names in a list of ``{name: ...}``, as the OpenStack example writes them."""
    return [item["name"] for item in value]


# -- DigitalOcean -------------------------------------------------------------------------------------------------


def test_the_digitalocean_example(monkeypatch: pytest.MonkeyPatch) -> None:
    from libcloud.compute.drivers.digitalocean import DigitalOcean_v2_NodeDriver as Driver

    doc = example("digitalocean")
    spec, args = doc.nodeclass.spec, extra(doc)
    # list_sizes.json, list_images.json (a slug), list_locations.json
    renames = {"512mb": spec.size, "ubuntu-14-04-x64": spec.image, "nyc1": spec.location}
    cloud = fake(monkeypatch, DigitalOceanApi, Driver.connectionCls, renames={"responses": renames})
    calls = spy_on_create_node(monkeypatch, Driver)
    provider = provider_for(doc)

    provider.validate()
    machine = provider.create(spec_for(doc))

    [call] = calls
    assert call["size"].name == spec.size
    assert call["image"].extra["slug"] == spec.image
    assert call["location"].id == spec.location
    assert call["ex_user_data"] == spec.user_data
    [droplet] = cloud.sent("droplets")
    assert (droplet["size"], droplet["region"], droplet["user_data"]) == (spec.size, spec.location, spec.user_data)
    assert droplet["image"] == call["image"].id
    for key, value in args["ex_create_attr"].items():  # every attribute the example sets reaches DigitalOcean
        assert droplet[key] == value, key
    assert machine.id == str(DigitalOceanApi.DROPLET_ID)


# -- Google Compute Engine ----------------------------------------------------------------------------------------


def test_the_gce_example(monkeypatch: pytest.MonkeyPatch) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from libcloud.common import google
    from libcloud.compute.drivers.gce import GCENodeDriver

    from ._clouds import GceApi, google_tests

    doc = example("gce")
    spec = doc.nodeclass.spec
    project = spec.driver_options["project"]
    # libcloud's GCE fake finds its handlers by path: the example's names map onto its fixtures' there, and
    # back in what it answers.
    names = {
        spec.location: "us-central1-a",
        spec.size: "n1-standard-1",
        spec.image: "debian-7-wheezy-v20131120",
        f"projects/{project}/": "projects/project_name/",
    }
    # (a fixture zone of the example's name is renamed out of the way first)
    responses = {spec.location: f"{spec.location}-fixture"} | {fixture: ours for ours, fixture in names.items()}
    renames = {"paths": names, "responses": responses}
    cloud = fake(monkeypatch, GceApi, GCENodeDriver.connectionCls, renames=renames)
    # What libcloud's GoogleTestCase patches: OAuth against a fake, no metadata server, a token at hand.
    monkeypatch.setattr(google.GoogleBaseAuthConnection, "conn_class", google_tests.GoogleAuthMockHttp)
    monkeypatch.setattr(google, "_utcnow", lambda: google_tests.STUB_UTCNOW)
    monkeypatch.setattr(google.GoogleAuthType, "_is_gce", staticmethod(lambda: False))
    monkeypatch.setattr(
        google.GoogleOAuth2Credential, "_get_token_from_file", lambda self: google_tests.STUB_TOKEN_FROM_FILE
    )
    monkeypatch.setattr(google.GoogleOAuth2Credential, "_write_token_to_file", lambda self: None)
    calls = spy_on_create_node(monkeypatch, GCENodeDriver)
    # The example's private key is elided ("..."): a real one in its place, as the JSON key file would give.
    assert doc.credentials["secret"].startswith("-----BEGIN PRIVATE KEY-----")
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    provider = LibcloudProvider(doc.nodeclass, {**doc.credentials, "secret": pem.decode()}, CLUSTER, timeout=7.5)

    provider.validate()
    machine = provider.create(spec_for(doc))

    [call] = calls
    assert call["size"].name == spec.size
    assert call["image"].name == spec.image
    assert call["location"].name == spec.location
    [insert] = cloud.sent("insert")
    assert insert["machineType"].endswith(f"/zones/{spec.location}/machineTypes/{spec.size}")
    assert insert["disks"][0]["initializeParams"]["sourceImage"].endswith(f"/global/images/{spec.image}")
    metadata = {item["key"]: item["value"] for item in insert["metadata"]["items"]}
    assert metadata["user-data"] == spec.user_data
    assert machine.id
