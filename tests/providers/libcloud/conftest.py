"""One harness per fake cloud (see _clouds.py): ``ec2``, ``gce``, ``digitalocean``, ``openstack``, and ``cloud``,
each of the four in turn."""

from __future__ import annotations

import json

import pytest

from nodeset_controller.api import ExtraArgument

from ._clouds import DigitalOceanApi, Ec2Api, GceApi, Harness, OpenStackApi, fake, google_tests, maker


@pytest.fixture
def ec2(monkeypatch: pytest.MonkeyPatch) -> Harness:
    from libcloud.compute.drivers.ec2 import EC2NodeDriver

    cloud = fake(monkeypatch, Ec2Api, EC2NodeDriver.connectionCls)
    quota = """<?xml version="1.0" encoding="UTF-8"?>
<Response><Errors><Error><Code>InstanceLimitExceeded</Code><Message>You have requested more instances (21) than your
current instance limit of 20 allows for the specified instance type. Please visit
http://aws.amazon.com/contact-us/ec2-request to request an adjustment to this limit.</Message></Error></Errors>
<RequestID>5dabd361-d2e0-4f79-937d-4b2852a3b719</RequestID></Response>"""
    make = maker(
        "ec2",
        {"key": "access_id", "secret": "secret-ec2-key"},
        size="m5.large",
        image="ami-57ba933a",
        location="eu-west-1a",
        driver_options={"region": "eu-west-1"},
        extra_create_args=[ExtraArgument("ex_keyname", "kube-node"), ExtraArgument("ex_metadata", {"team": "blue"})],
    )
    return Harness(
        "ec2", cloud, make, "RunInstances", "TerminateInstances", Ec2Api.INSTANCE_ID, (400, quota), ("10.0.0.12",)
    )


@pytest.fixture
def gce(monkeypatch: pytest.MonkeyPatch) -> Harness:
    from libcloud.common import google
    from libcloud.compute.drivers.gce import GCENodeDriver

    cloud = fake(monkeypatch, GceApi, GCENodeDriver.connectionCls)
    # What libcloud's GoogleTestCase patches: OAuth against a fake, no metadata server, no token file.
    monkeypatch.setattr(google.GoogleBaseAuthConnection, "conn_class", google_tests.GoogleAuthMockHttp)
    monkeypatch.setattr(google, "_utcnow", lambda: google_tests.STUB_UTCNOW)
    monkeypatch.setattr(google.GoogleAuthType, "_is_gce", staticmethod(lambda: False))
    monkeypatch.setattr(
        google.GoogleOAuth2Credential, "_get_token_from_file", lambda self: google_tests.STUB_TOKEN_FROM_FILE
    )
    monkeypatch.setattr(google.GoogleOAuth2Credential, "_write_token_to_file", lambda self: None)
    quota = {
        "status": "DONE",
        "error": {
            "errors": [
                {"code": "QUOTA_EXCEEDED", "message": "Quota 'CPUS' exceeded.  Limit: 24.0 in region us-central1."}
            ]
        },
        "httpErrorStatusCode": 403,
        "httpErrorMessage": "FORBIDDEN",
    }
    make = maker(
        "gce",
        {"key": "email@developer.gserviceaccount.com", "secret": "secret-gce-key"},
        size="n1-standard-1",
        image="debian-7",
        location="us-central1-a",
        driver_options={"project": "project_name", "auth_type": "IA", "datacenter": "us-central1-a"},
        extra_create_args=[
            ExtraArgument("ex_metadata", {"team": "blue"}),
            ExtraArgument("ex_labels", {"team": "blue"}),
        ],
    )
    return Harness(
        "gce", cloud, make, "insert", "delete", "4006034190819017667", (200, json.dumps(quota)), ("10.240.72.75",)
    )


@pytest.fixture
def digitalocean(monkeypatch: pytest.MonkeyPatch) -> Harness:
    from libcloud.compute.drivers.digitalocean import DigitalOcean_v2_NodeDriver

    cloud = fake(monkeypatch, DigitalOceanApi, DigitalOcean_v2_NodeDriver.connectionCls)
    quota = {"id": "unprocessable_entity", "message": "creating this/these droplet(s) will exceed your droplet limit"}
    make = maker(
        "digitalocean",
        {"key": "secret-do-token"},
        size="512mb",
        image="ubuntu-14-04-x64",
        location="nyc1",
        extra_create_args=[ExtraArgument("ex_create_attr", {"tags": ["team:blue"], "ipv6": True})],
    )
    return Harness(
        "digitalocean", cloud, make, "droplets", "droplets/4242", "4242", (422, json.dumps(quota)), ("10.124.0.2",)
    )


@pytest.fixture
def openstack(monkeypatch: pytest.MonkeyPatch) -> Harness:
    from libcloud.compute.drivers.openstack import OpenStack_2_NodeDriver as Driver

    cloud = fake(
        monkeypatch,
        OpenStackApi,
        Driver.connectionCls,
        Driver.image_connectionCls,
        Driver.network_connectionCls,
        Driver.volumev2_connectionCls,
        Driver.volumev3_connectionCls,
        Driver.reservation_connectionCls,
    )
    quota = {
        "forbidden": {
            "message": "Quota exceeded for instances: Requested 1, but already used 10 of 10 instances",
            "code": 403,
        }
    }
    make = maker(
        "openstack",
        {"key": "user_name", "secret": "secret-os-key"},
        size="1GB slice",
        image="f24a3c1b-d52a-4116-91da-25b3eee8f55e",
        location="nova",
        driver_options={
            "api_version": "2.0",
            "ex_force_auth_url": "https://auth.api.example.com",
            "ex_force_auth_version": "2.0",
        },
        extra_create_args=[ExtraArgument("ex_metadata", {"team": "blue"}), ExtraArgument("ex_keyname", "kube-node")],
    )
    server = OpenStackApi.SERVER_ID
    return Harness(
        "openstack", cloud, make, "servers", f"servers/{server}", server, (403, json.dumps(quota)), ("10.0.0.12",)
    )


@pytest.fixture(params=["ec2", "gce", "digitalocean", "openstack"])
def cloud(request: pytest.FixtureRequest) -> Harness:
    """Each of the four providers in turn."""
    harness: Harness = request.getfixturevalue(request.param)
    return harness
