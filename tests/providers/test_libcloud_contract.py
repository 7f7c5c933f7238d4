"""The libcloud adapter against libcloud's own offline fakes of EC2, GCE, DigitalOcean and OpenStack.

Each fake is a subclass of the MockHttp class libcloud's own driver tests use, answering from libcloud's
bundled fixtures, so every call goes through the real driver and its real request and response code; the
subclasses add only what a real cloud does and the fixtures cannot: they remember what was created (with
the tags it was given), show it in listings, forget it when destroyed, and answer a create with the
provider's real quota error when a test asks. Every test records the HTTP requests the driver sent and
asserts on them. Nothing touches the network.
"""

from __future__ import annotations

import base64
import importlib
import json
import pathlib
import socket
import sys
import threading
import types
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest
from libcloud.common.exceptions import BaseHTTPError, RateLimitReachedError
from libcloud.common.types import InvalidCredsError, LibcloudError, ServiceUnavailableError

from nodeset_controller.api import ExtraArgument, NodeClass, NodeClassSpec, ObjectMeta
from nodeset_controller.providers import (
    TAG_CLUSTER,
    TAG_NODE,
    TAG_NODECLASS,
    ErrorClass,
    MachineSpec,
    MachineState,
    ProviderError,
    QuotaExceededError,
)
from nodeset_controller.providers.libcloud import LibcloudProvider, classify_error


def _libcloud_test_module(name: str) -> types.ModuleType:
    """Import one of libcloud's driver test modules (for its MockHttp class and fixtures).

    They import their dummy credentials from libcloud/test/secrets.py, which the wheel ships only as
    secrets.py-dist, to be copied in place; we load the dist file under that name instead of writing into
    site-packages. Importing test_gce also replaces GCEZone._now for libcloud's own tests; we put it back.
    """
    if "libcloud.test.secrets" not in sys.modules:
        import libcloud.test

        try:
            importlib.import_module("libcloud.test.secrets")
        except ImportError:
            dist = pathlib.Path(libcloud.test.__file__).with_name("secrets.py-dist")
            secrets = types.ModuleType("libcloud.test.secrets")
            exec(compile(dist.read_text(), str(dist), "exec"), secrets.__dict__)
            sys.modules["libcloud.test.secrets"] = secrets
    from libcloud.compute.drivers.gce import GCEZone

    now = GCEZone.__dict__["_now"]
    try:
        return importlib.import_module(f"libcloud.test.compute.{name}")
    finally:
        GCEZone._now = now


ec2_tests = _libcloud_test_module("test_ec2")
gce_tests = _libcloud_test_module("test_gce")
do_tests = _libcloud_test_module("test_digitalocean_v2")
openstack_tests = _libcloud_test_module("test_openstack")
google_tests = importlib.import_module("libcloud.test.common.test_google")

CLUSTER = "Prod.EU"  # upper case and a dot: GCE labels and DigitalOcean tags must sanitise it
MACHINE = "web-1-0a1b2c3d"
SPEC = MachineSpec(
    name=MACHINE,
    node_name="web-1.example.com",
    node_uid="0a1b2c3d-0000-4000-8000-000000000000",
    nodeclass="small",
    cluster=CLUSTER,
    provider_id="kube-node://small/web-1.example.com",
    user_data="#cloud-config\nruncmd: [join]\n",
)
OUR_TAGS = {TAG_CLUSTER: CLUSTER, TAG_NODE: "web-1.example.com", TAG_NODECLASS: "small"}
JSON = {"content-type": "application/json; charset=UTF-8"}


# -- the fake clouds -------------------------------------------------------------------------------------


@dataclass
class FakeCloud:
    """One test's cloud: the requests it got, the machines it holds, and how it should answer a create."""

    requests: list[tuple[str, str, Any]] = field(default_factory=list)  #: (method, action or path, params/body)
    machines: dict[str, dict[str, Any]] = field(default_factory=dict)  #: id -> what the create asked for
    destroyed: list[str] = field(default_factory=list)
    create_error: tuple[int, str] | None = None  #: (status, body) to answer the next create with

    def sent(self, action: str) -> list[Any]:
        """The params or bodies of the requests for ``action``."""
        return [body for _, name, body in self.requests if name == action]


def _query(url: str) -> dict[str, str]:
    return {key: values[0] for key, values in parse_qs(urlparse(url).query).items()}


def _status(code: int) -> str:
    from libcloud.utils.py3 import httplib

    return str(httplib.responses[code])


class Ec2Api(ec2_tests.EC2MockHttp):  # type: ignore[misc]
    """EC2: RunInstances, DescribeInstances and TerminateInstances on top of libcloud's fixtures."""

    __test__ = False  # a unittest.TestCase by inheritance; not ours to collect
    use_param = "Action"
    cloud: FakeCloud
    INSTANCE_ID = "i-2ba64342"  # run_instances.xml's

    def _RunInstances(self, method: str, url: str, body: str, headers: dict[str, str]) -> Any:  # noqa: N802
        params = _query(url)
        self.cloud.requests.append((method, "RunInstances", params))
        if self.cloud.create_error:
            status, error = self.cloud.create_error
            return status, error, {}, _status(status)
        self.cloud.machines[self.INSTANCE_ID] = params
        return super()._RunInstances(method, url, body, headers)

    def _DescribeInstances(self, method: str, url: str, body: str, headers: dict[str, str]) -> Any:  # noqa: N802
        self.cloud.requests.append((method, "DescribeInstances", _query(url)))
        _, xml, response_headers, reason = super()._DescribeInstances(method, url, body, headers)
        ours = "".join(self._reservation(instance_id, params) for instance_id, params in self.cloud.machines.items())
        return 200, xml.replace("</reservationSet>", ours + "</reservationSet>"), response_headers, reason

    def _TerminateInstances(self, method: str, url: str, body: str, headers: dict[str, str]) -> Any:  # noqa: N802
        params = _query(url)
        self.cloud.requests.append((method, "TerminateInstances", params))
        self.cloud.destroyed.append(params["InstanceId.1"])
        return super()._TerminateInstances(method, url, body, headers)

    def _reservation(self, instance_id: str, params: dict[str, str]) -> str:
        tags = "".join(
            f"<item><key>{params[key]}</key><value>{params[key.replace('.Key', '.Value')]}</value></item>"
            for key in sorted(params)
            if key.startswith("TagSpecification.1.Tag.") and key.endswith(".Key")
        )
        state = "terminated" if instance_id in self.cloud.destroyed else "running"
        return f"""<item><reservationId>r-47a5402e</reservationId><ownerId>AIDADH4IGTRXXKCD</ownerId>
            <groupSet/><instancesSet><item>
              <instanceId>{instance_id}</instanceId><imageId>{params["ImageId"]}</imageId>
              <instanceState><code>16</code><name>{state}</name></instanceState>
              <privateIpAddress>10.0.0.12</privateIpAddress><ipAddress>203.0.113.12</ipAddress>
              <instanceType>{params["InstanceType"]}</instanceType><launchTime>2024-05-01T10:00:00.000Z</launchTime>
              <placement><availabilityZone>{params.get("Placement.AvailabilityZone", "")}</availabilityZone></placement>
              <tagSet>{tags}</tagSet>
            </item></instancesSet></item>"""


class GceApi(gce_tests.GCEMockHttp):  # type: ignore[misc]
    """GCE: instance insert (an operation, then the instance), aggregated list and delete."""

    __test__ = False
    cloud: FakeCloud

    def _zones_us_central1_a_instances(self, method: str, url: str, body: str, headers: dict[str, str]) -> Any:
        if method == "POST":
            self.cloud.requests.append((method, "insert", json.loads(body)))
        return super()._zones_us_central1_a_instances(method, url, body, headers)

    def _zones_us_central1_a_operations_operation_zones_us_central1_a_instances_post(
        self, method: str, url: str, body: str, headers: dict[str, str]
    ) -> Any:
        status, operation, response_headers, reason = (
            super()._zones_us_central1_a_operations_operation_zones_us_central1_a_instances_post(
                method, url, body, headers
            )
        )
        if self.cloud.create_error:  # GCE reports a refused insert in the finished operation
            done = json.loads(operation)
            done.update(json.loads(self.cloud.create_error[1]))
            return 200, json.dumps(done), response_headers, reason
        insert = self.cloud.sent("insert")[-1]
        self.cloud.machines[insert["name"]] = insert
        return status, operation, response_headers, reason

    def _zones_us_central1_a_instances_web_1_0a1b2c3d(
        self, method: str, url: str, body: str, headers: dict[str, str]
    ) -> Any:
        if method == "DELETE":
            self.cloud.requests.append((method, "delete", MACHINE))
            self.cloud.destroyed.append(self._instance(self.cloud.machines.pop(MACHINE))["id"])
            return super()._zones_us_central1_a_instances_node_name(method, url, body, headers)
        if MACHINE not in self.cloud.machines:
            return 404, json.dumps({"error": {"code": 404, "message": "not found"}}), JSON, _status(404)
        return 200, json.dumps(self._instance(self.cloud.machines[MACHINE])), JSON, _status(200)

    def _aggregated_instances(self, method: str, url: str, body: str, headers: dict[str, str]) -> Any:
        self.cloud.requests.append((method, "aggregated/instances", _query(url)))
        _, listing, response_headers, reason = super()._aggregated_instances(method, url, body, headers)
        items = json.loads(listing)
        zone = items["items"]["zones/us-central1-a"]
        zone["instances"] = zone.get("instances", []) + [self._instance(i) for i in self.cloud.machines.values()]
        return 200, json.dumps(items), response_headers, reason

    def _instance(self, insert: dict[str, Any]) -> dict[str, Any]:
        """The instance GCE shows for an insert request: libcloud's node-name fixture, renamed and labelled."""
        instance = json.loads(self.fixtures.load("zones_us-central1-a_instances_node-name.json"))
        instance["name"] = insert["name"]
        instance["labels"] = insert.get("labels", {})
        instance["metadata"] = {**instance["metadata"], "items": insert["metadata"]["items"]}
        return instance


class DigitalOceanApi(do_tests.DigitalOceanComputeMockHttp):  # type: ignore[misc]
    """DigitalOcean: droplet create, list and delete; a droplet is libcloud's list fixture, renamed."""

    __test__ = False
    cloud: FakeCloud
    DROPLET_ID = 4242

    def _v2_droplets(self, method: str, url: str, body: str, headers: dict[str, str]) -> Any:
        listing = json.loads(self.fixtures.load("list_nodes.json"))
        if method == "POST":
            request = json.loads(body)
            self.cloud.requests.append((method, "droplets", request))
            if self.cloud.create_error:
                status, error = self.cloud.create_error
                return status, error, JSON, _status(status)
            self.cloud.machines[str(self.DROPLET_ID)] = request
            return 202, json.dumps({"droplet": self._droplet(listing, request), "links": {}}), JSON, _status(202)
        self.cloud.requests.append((method, "list droplets", None))
        listing["droplets"] += [self._droplet(listing, r) for r in self.cloud.machines.values()]
        return 200, json.dumps(listing), JSON, _status(200)

    def _v2_droplets_4242(self, method: str, url: str, body: str, headers: dict[str, str]) -> Any:
        assert method == "DELETE"
        self.cloud.requests.append((method, "droplets/4242", None))
        self.cloud.destroyed.append(str(self.DROPLET_ID))
        self.cloud.machines.pop(str(self.DROPLET_ID))
        return 204, "", {}, _status(204)

    def _droplet(self, listing: dict[str, Any], request: dict[str, Any]) -> dict[str, Any]:
        droplet = dict(listing["droplets"][0])
        droplet.update(id=self.DROPLET_ID, name=request["name"], tags=request.get("tags", []), status="active")
        return droplet


class OpenStackApi(openstack_tests.OpenStack_2_0_MockHttp):  # type: ignore[misc]
    """OpenStack (nova API 2): server create, detail listing, get and delete."""

    __test__ = False
    cloud: FakeCloud
    SERVER_ID = "26f7fbee-8ce1-4c28-887a-bfe8e4bb10fe"  # _servers_create.json's
    _OURS = ("_v2_1337_servers", "_v2_1337_servers_detail", "_v2_1337_servers_26f7fbee_8ce1_4c28_887a_bfe8e4bb10fe")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for name in self._OURS:  # the base class binds its own handlers per instance; use ours
            self.__dict__.pop(name, None)

    def _v2_1337_servers(self, method: str, url: str, body: str, headers: dict[str, str]) -> Any:
        assert method == "POST"
        request = json.loads(body)["server"]
        self.cloud.requests.append((method, "servers", request))
        if self.cloud.create_error:
            status, error = self.cloud.create_error
            return status, error, JSON, _status(status)
        self.cloud.machines[self.SERVER_ID] = request
        return 202, self.fixtures.load("_servers_create.json"), JSON, _status(202)

    def _v2_1337_servers_detail(self, method: str, url: str, body: str, headers: dict[str, str]) -> Any:
        self.cloud.requests.append((method, "servers/detail", None))
        listing = json.loads(self.fixtures.load("_servers_detail.json"))
        listing["servers"] += [self._server(r) for r in self.cloud.machines.values()]
        return 200, json.dumps(listing), JSON, _status(200)

    def _v2_1337_servers_26f7fbee_8ce1_4c28_887a_bfe8e4bb10fe(
        self, method: str, url: str, body: str, headers: dict[str, str]
    ) -> Any:
        if method == "DELETE":
            self.cloud.requests.append((method, f"servers/{self.SERVER_ID}", None))
            self.cloud.destroyed.append(self.SERVER_ID)
            self.cloud.machines.pop(self.SERVER_ID)
            return 204, "", {}, _status(204)
        body = json.dumps({"server": self._server(self.cloud.machines[self.SERVER_ID])})
        return 200, body, JSON, _status(200)

    def _server(self, request: dict[str, Any]) -> dict[str, Any]:
        server = json.loads(self.fixtures.load("_servers_26f7fbee_8ce1_4c28_887a_bfe8e4bb10fe.json"))["server"]
        server.update(name=request["name"], metadata=request["metadata"], status="ACTIVE")
        server["addresses"] = {"private": [{"addr": "10.0.0.12", "version": 4}]}
        return server


# -- one harness per provider ------------------------------------------------------------------------------


@dataclass
class Harness:
    """A provider wired to a fake cloud, and what that cloud answers when the quota is exhausted."""

    name: str
    cloud: FakeCloud
    make: Callable[..., LibcloudProvider]  #: make(cluster=CLUSTER, **spec changes) -> a provider
    create_action: str  #: the request that creates a machine
    destroy_action: str
    machine_id: str
    quota_error: tuple[int, str]  #: the provider's real "out of quota" answer to a create
    private_ips: tuple[str, ...]  #: what the fake shows for a machine it created

    @property
    def provider(self) -> LibcloudProvider:
        return self.make()


def _nodeclass(provider: str, **spec: Any) -> NodeClass:
    return NodeClass(
        metadata=ObjectMeta(name="small"),
        spec=NodeClassSpec(provider=provider, capacity={"cpu": "2", "memory": "8Gi"}, **spec),
    )


def _maker(provider: str, credentials: dict[str, str], **defaults: Any) -> Callable[..., LibcloudProvider]:
    def make(cluster: str = CLUSTER, **changes: Any) -> LibcloudProvider:
        return LibcloudProvider(_nodeclass(provider, **{**defaults, **changes}), credentials, cluster, timeout=7.5)

    return make


def _fake(monkeypatch: pytest.MonkeyPatch, base: type, *connection_classes: Any) -> FakeCloud:
    """A fresh fake for one test: a subclass of ``base`` with its own state, installed as the connection
    class of each of ``connection_classes`` the way libcloud's tests do, and put back after the test."""
    cloud = FakeCloud()
    api = type(base.__name__, (base,), {"cloud": cloud, "__test__": False})
    for connection_class in connection_classes:
        monkeypatch.setattr(connection_class, "conn_class", api)
    return cloud


@pytest.fixture
def ec2(monkeypatch: pytest.MonkeyPatch) -> Harness:
    from libcloud.compute.drivers.ec2 import EC2NodeDriver

    cloud = _fake(monkeypatch, Ec2Api, EC2NodeDriver.connectionCls)
    quota = """<?xml version="1.0" encoding="UTF-8"?>
<Response><Errors><Error><Code>InstanceLimitExceeded</Code><Message>You have requested more instances (21) than your
current instance limit of 20 allows for the specified instance type. Please visit
http://aws.amazon.com/contact-us/ec2-request to request an adjustment to this limit.</Message></Error></Errors>
<RequestID>5dabd361-d2e0-4f79-937d-4b2852a3b719</RequestID></Response>"""
    make = _maker(
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

    cloud = _fake(monkeypatch, GceApi, GCENodeDriver.connectionCls)
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
    make = _maker(
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

    cloud = _fake(monkeypatch, DigitalOceanApi, DigitalOcean_v2_NodeDriver.connectionCls)
    quota = {"id": "unprocessable_entity", "message": "creating this/these droplet(s) will exceed your droplet limit"}
    make = _maker(
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

    cloud = _fake(
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
    make = _maker(
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


# -- what each provider is sent ----------------------------------------------------------------------------


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


def test_gce_create_sends_machine_type_image_zone_user_data_labels_and_metadata(gce: Harness) -> None:
    machine = gce.provider.create(SPEC)

    [insert] = gce.cloud.sent("insert")
    assert insert["name"] == MACHINE
    assert insert["machineType"].endswith("/zones/us-central1-a/machineTypes/n1-standard-1")
    assert insert["disks"][0]["initializeParams"]["sourceImage"].endswith(
        "/projects/debian-cloud/global/images/debian-7-wheezy-v20131120"
    )
    metadata = {item["key"]: item["value"] for item in insert["metadata"]["items"]}
    assert metadata == {"team": "blue", "user-data": SPEC.user_data, **OUR_TAGS}  # exact values
    # Label values must be lowercase [a-z0-9_-]; a dot becomes "_" (Kubernetes names have no "_").
    assert insert["labels"] == {
        "team": "blue",
        TAG_CLUSTER: "prod_eu",
        TAG_NODE: "web-1_example_com",
        TAG_NODECLASS: "small",
    }

    assert machine.name == MACHINE
    assert machine.id == "4006034190819017667"
    assert machine.state is MachineState.RUNNING
    assert (machine.node_name, machine.nodeclass, machine.cluster) == ("web-1.example.com", "small", CLUSTER)
    assert machine.private_ips == ("10.240.72.75",)
    assert machine.public_ips == ("23.236.58.15",)


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


# -- errors, per provider --------------------------------------------------------------------------------------


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


def test_gce_zone_resource_pool_exhausted_is_a_stockout(gce: Harness) -> None:
    gce.cloud.create_error = (
        200,
        json.dumps(
            {
                "status": "DONE",
                "error": {
                    "errors": [
                        {
                            "code": "ZONE_RESOURCE_POOL_EXHAUSTED",
                            "message": "The zone 'projects/project_name/zones/us-central1-a' does not have enough "
                            "resources available to fulfill the request.  Try a different zone, or try again later.",
                        }
                    ]
                },
            }
        ),
    )

    with pytest.raises(QuotaExceededError) as raised:
        gce.provider.create(SPEC)

    assert raised.value.code == "STOCKOUT"
    assert raised.value.error_class is ErrorClass.OUT_OF_RESOURCES


def test_digitalocean_rejected_token_is_invalid_credentials(digitalocean: Harness) -> None:
    digitalocean.cloud.create_error = (401, DigitalOceanApi.fixtures.load("error.json"))

    with pytest.raises(ProviderError) as raised:
        digitalocean.provider.create(SPEC)

    assert raised.value.error_class is ErrorClass.INVALID_CONFIGURATION
    assert raised.value.code == "INVALID_CREDENTIALS"
    assert not raised.value.retryable
    assert "Unable to authenticate you" in str(raised.value)


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


def test_openstack_image_names_shared_by_several_images_are_refused(openstack: Harness) -> None:
    with pytest.raises(ProviderError) as raised:
        openstack.make(image="hypernode").create(SPEC)  # two images in the fixture are called hypernode

    assert raised.value.code == "IMAGE_AMBIGUOUS"
    assert openstack.cloud.sent("servers") == []


# -- drivers, timeouts, credentials ------------------------------------------------------------------------------


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
    provider = LibcloudProvider(_nodeclass("ec2"), {}, CLUSTER, driver_factory=Driver, listing_max_age=0.0)
    provider.list()
    provider.list()
    worker = threading.Thread(target=provider.list)
    worker.start()
    worker.join()

    assert len(built) == 2
    assert built[0] == threading.get_ident() != built[1]


def test_credentials_appear_in_no_log_record_and_no_error(ec2: Harness, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("DEBUG", logger="nodeset_controller.providers.libcloud")
    ec2.cloud.create_error = (
        400,
        "<Response><Errors><Error><Code>InvalidParameterValue</Code><Message>secret-ec2-key is not valid here"
        "</Message></Error></Errors><RequestID>r-1</RequestID></Response>",
    )
    provider = ec2.provider
    with pytest.raises(ProviderError) as raised:
        provider.create(SPEC)
    ec2.cloud.create_error = None
    provider.create(SPEC)

    assert "secret-ec2-key" not in str(raised.value)
    assert "***" in str(raised.value)
    assert "secret-ec2-key" not in repr(provider)
    logged = " ".join(r.getMessage() for r in caplog.records)
    assert f"created machine {MACHINE}" in logged
    assert "secret-ec2-key" not in logged and "access_id" not in logged


def test_an_unknown_provider_name_is_invalid_configuration() -> None:
    with pytest.raises(ProviderError) as raised:
        LibcloudProvider(_nodeclass("nosuchcloud"), {"key": "k"}, CLUSTER).list()

    assert raised.value.code == "UNKNOWN_PROVIDER"
    assert raised.value.error_class is ErrorClass.INVALID_CONFIGURATION


# -- classification and states ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("make", "error_class", "code"),
    [
        (lambda: RateLimitReachedError(headers={"retry-after": "3"}), ErrorClass.TRANSIENT, "RATE_LIMITED"),
        (
            lambda: BaseHTTPError(503, "RequestLimitExceeded: Request limit exceeded."),
            ErrorClass.TRANSIENT,
            "RATE_LIMITED",
        ),
        (ServiceUnavailableError, ErrorClass.TRANSIENT, "PROVIDER_UNAVAILABLE"),
        (lambda: BaseHTTPError(502, "Bad Gateway"), ErrorClass.TRANSIENT, "PROVIDER_UNAVAILABLE"),
        (lambda: TimeoutError("timed out"), ErrorClass.TRANSIENT, "TIMEOUT"),
        (lambda: LibcloudError("Job did not complete in 180 seconds"), ErrorClass.TRANSIENT, "TIMEOUT"),
        (lambda: ConnectionRefusedError(111, "Connection refused"), ErrorClass.TRANSIENT, "CONNECTION_FAILED"),
        (lambda: socket.gaierror(-2, "Name or service not known"), ErrorClass.TRANSIENT, "CONNECTION_FAILED"),
        (lambda: InvalidCredsError("AuthFailure: bad key"), ErrorClass.INVALID_CONFIGURATION, "INVALID_CREDENTIALS"),
        (lambda: BaseHTTPError(401, "Unauthorized"), ErrorClass.INVALID_CONFIGURATION, "INVALID_CREDENTIALS"),
        (
            lambda: BaseHTTPError(400, "VcpuLimitExceeded: You have requested more vCPU capacity"),
            ErrorClass.OUT_OF_RESOURCES,
            "QUOTA_EXCEEDED",
        ),
        (
            lambda: BaseHTTPError(422, "You have reached the maximum number of droplets (code: 422)"),
            ErrorClass.OUT_OF_RESOURCES,
            "QUOTA_EXCEEDED",
        ),
        (
            lambda: BaseHTTPError(400, "InvalidAMIID.NotFound: The image id '[ami-1]' does not exist"),
            ErrorClass.INVALID_CONFIGURATION,
            "IMAGE_NOT_FOUND",
        ),
        (
            lambda: BaseHTTPError(403, "You do not have access for the attempted action."),
            ErrorClass.INVALID_CONFIGURATION,
            "PERMISSION_DENIED",
        ),
        (lambda: ValueError("ex_security_group_ids needs ex_subnet"), ErrorClass.OTHER, "PROVIDER_ERROR"),
    ],
    ids=lambda value: value if isinstance(value, str) else "",
)
def test_classify_error(make: Callable[[], BaseException], error_class: ErrorClass, code: str) -> None:
    error = classify_error(make(), provider="ec2", action="create machine m-1")

    assert (error.error_class, error.code) == (error_class, code)
    assert str(error).startswith("ec2: create machine m-1 failed: ")


def test_classify_error_masks_the_credentials() -> None:
    error = classify_error(ValueError("token s3cr3t-token rejected"), provider="do", redact=["s3cr3t-token"])

    assert "s3cr3t-token" not in str(error)


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

    machine = LibcloudProvider(_nodeclass("ec2"), {}, CLUSTER, driver_factory=Driver).get(MACHINE)

    assert machine is not None
    assert machine.state is expected
    assert (machine.error is not None) == (expected is MachineState.FAILED)


def test_an_ec2_instance_stopped_on_its_own_is_failed_not_pending() -> None:
    from libcloud.compute.base import Node

    # libcloud's EC2 driver reports "stopped" as UNKNOWN; the raw state is in extra["status"].
    node = Node("i-1", MACHINE, "unknown", [], [], None, extra={"status": "stopped", "tags": {TAG_CLUSTER: CLUSTER}})
    provider = LibcloudProvider(
        _nodeclass("ec2"), {}, CLUSTER, driver_factory=lambda: types.SimpleNamespace(list_nodes=lambda **kwargs: [node])
    )

    machine = provider.get(MACHINE)

    assert machine is not None
    assert machine.state is MachineState.FAILED
    assert machine.error == "the provider reports the machine as stopped"


# -- validate: the NodeClass resolved, nothing made ------------------------------------------------------------


def test_validate_resolves_size_image_and_location_and_creates_nothing(cloud: Harness) -> None:
    provider = cloud.provider

    summary = provider.validate()

    assert summary.startswith("size ") and ", image " in summary
    assert cloud.cloud.sent(cloud.create_action) == [] and cloud.cloud.machines == {}
    assert provider.create(SPEC).id == cloud.machine_id  # and a create still works after it


def test_validate_on_ec2_names_what_it_resolved(ec2: Harness) -> None:
    assert ec2.provider.validate() == "size m5.large, image Test Image (ami-57ba933a), location eu-west-1a (0)"


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
