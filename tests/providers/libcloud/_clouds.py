"""The libcloud adapter's fake clouds: libcloud's own offline fakes of EC2, GCE, DigitalOcean and OpenStack,
and the harness that wires a provider to one (the fixtures in conftest.py make one per test).

Each fake is a subclass of the MockHttp class libcloud's own driver tests use, answering from libcloud's
bundled fixtures, so every call goes through the real driver and its real request and response code; the
subclasses add only what a real cloud does and the fixtures cannot: they remember what was created (with
the tags it was given), show it in listings, forget it when destroyed, and answer a create with the
provider's real quota error when a test asks. Every test records the HTTP requests the driver sent and
asserts on them. Nothing touches the network.
"""

from __future__ import annotations

import importlib
import json
import pathlib
import sys
import types
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar
from urllib.parse import parse_qs, urlparse

import pytest

from nodeset_controller.api import NodeClass, NodeClassSpec, ObjectMeta
from nodeset_controller.providers import TAG_CLUSTER, TAG_NODE, TAG_NODECLASS, MachineSpec
from nodeset_controller.providers.libcloud import LibcloudProvider


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
    headers: dict[str, dict[str, str]] = field(default_factory=dict)  #: action -> the headers of its last request

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
        self.cloud.headers["RunInstances"] = dict(headers)
        if self.cloud.create_error:
            status, error = self.cloud.create_error
            return status, error, {}, _status(status)
        self.cloud.machines[self.INSTANCE_ID] = params
        return super()._RunInstances(method, url, body, headers)

    def _DescribeInstances(self, method: str, url: str, body: str, headers: dict[str, str]) -> Any:  # noqa: N802
        self.cloud.requests.append((method, "DescribeInstances", _query(url)))
        self.cloud.headers["DescribeInstances"] = dict(headers)
        _, xml, response_headers, reason = super()._DescribeInstances(method, url, body, headers)
        ours = "".join(self._reservation(instance_id, params) for instance_id, params in self.cloud.machines.items())
        return 200, xml.replace("</reservationSet>", ours + "</reservationSet>"), response_headers, reason

    #: the instance types this EC2 has beyond those libcloud's size table knows
    NEWER_TYPES: ClassVar[frozenset[str]] = frozenset({"m8i.large"})

    def _DescribeInstanceTypes(self, method: str, url: str, body: str, headers: dict[str, str]) -> Any:  # noqa: N802
        params = _query(url)
        self.cloud.requests.append((method, "DescribeInstanceTypes", params))
        wanted = params["InstanceType.1"]
        if wanted not in self.NEWER_TYPES:
            error = (
                "<Response><Errors><Error><Code>InvalidInstanceType</Code><Message>The following supplied instance "
                f"types do not exist: [{wanted}]</Message></Error></Errors><RequestID>r-2</RequestID></Response>"
            )
            return 400, error, {}, _status(400)
        answer = (
            '<DescribeInstanceTypesResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/"><requestId>r-3'
            f"</requestId><instanceTypeSet><item><instanceType>{wanted}</instanceType><vCpuInfo><defaultVCpus>2"
            "</defaultVCpus></vCpuInfo></item></instanceTypeSet></DescribeInstanceTypesResponse>"
        )
        return 200, answer, {}, _status(200)

    def _DescribeSubnets(self, method: str, url: str, body: str, headers: dict[str, str]) -> Any:  # noqa: N802
        self.cloud.requests.append((method, "DescribeSubnets", _query(url)))
        return super()._DescribeSubnets(method, url, body, headers)

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

    #: names given to the images of libcloud's glance fixture (all "hypernode"), by id
    image_names: ClassVar[dict[str, str]] = {}

    def _v2_1337_v2_images(self, method: str, url: str, body: str, headers: dict[str, str]) -> Any:
        status, text, response_headers, reason = super()._v2_1337_v2_images(method, url, body, headers)
        listing = json.loads(text)
        for image in listing["images"]:
            image["name"] = self.image_names.get(image["id"], image["name"])
        return status, json.dumps(listing), response_headers, reason

    #: the key pairs this project has (GET os-keypairs/<name>)
    key_pairs: ClassVar[frozenset[str]] = frozenset({"kube-node"})

    def _get_method_name(self, type: Any, use_param: Any, qs: Any, path: str) -> str:
        if path.startswith("/v2/1337/os-keypairs/"):
            return "_key_pair"
        return str(super()._get_method_name(type, use_param, qs, path))

    def _key_pair(self, method: str, url: str, body: str, headers: dict[str, str]) -> Any:
        assert method == "GET"
        name = urlparse(url).path.rsplit("/", 1)[1]
        self.cloud.requests.append((method, "os-keypairs", name))
        fixtures = openstack_tests.ComputeFileFixtures("openstack_v1_1")
        if name not in self.key_pairs:
            return 404, fixtures.load("_os_keypairs_not_found.json"), JSON, _status(404)
        key_pair = json.loads(fixtures.load("_os_keypairs_get_one.json"))
        key_pair["keypair"]["name"] = name
        return 200, json.dumps(key_pair), JSON, _status(200)

    def _v3_auth_tokens(self, method: str, url: str, body: str, headers: dict[str, str]) -> Any:
        """Keystone v3 password auth (what the doc's example uses): always granted, the request recorded."""
        assert method == "POST"
        self.cloud.requests.append((method, "auth/tokens", json.loads(body)))
        # libcloud's v3 token, its catalog naming each service as keystone does, for this fake's project (1337).
        granted = json.loads(openstack_tests.ComputeFileFixtures("openstack").load("_v3__auth.json"))
        names = {"compute": "nova", "image": "glance", "network": "neutron", "volumev2": "cinderv2"}
        for service in granted["token"]["catalog"]:
            service.setdefault("name", names.get(service["type"], service["type"]))
        text = json.dumps(granted).replace("9c4693dce56b493b9b83197d900f7fba", "1337")
        return 201, text, {**JSON, "x-subject-token": "00000000000000000000000000000000"}, _status(201)

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


class Renaming:
    """A fake cloud that has the resources a doc example names: libcloud's fixtures, with their ids and names
    replaced by the example's. ``responses`` maps a fixture's string to the example's in every response body;
    ``paths`` maps the example's string to the fixture's in request paths, for the fakes whose handlers are
    found by path (GCE's). Mixed in before a fake's class."""

    responses: ClassVar[dict[str, str]] = {}
    paths: ClassVar[dict[str, str]] = {}

    def _get_request(self, method: str, url: str, body: Any = None, headers: Any = None) -> Any:
        parsed = urlparse(url)
        path = parsed.path
        for theirs, fixture in self.paths.items():
            path = path.replace(theirs, fixture)
        status, text, response_headers, reason = super()._get_request(  # type: ignore[misc]
            method, parsed._replace(path=path).geturl(), body, headers
        )
        if isinstance(text, str):
            for fixture, theirs in self.responses.items():
                text = text.replace(fixture, theirs)
        return status, text, response_headers, reason


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


def nodeclass_for(provider: str, **spec: Any) -> NodeClass:
    return NodeClass(
        metadata=ObjectMeta(name="small"),
        spec=NodeClassSpec(provider=provider, capacity={"cpu": "2", "memory": "8Gi"}, **spec),
    )


def maker(provider: str, credentials: dict[str, str], **defaults: Any) -> Callable[..., LibcloudProvider]:
    def make(cluster: str = CLUSTER, **changes: Any) -> LibcloudProvider:
        return LibcloudProvider(nodeclass_for(provider, **{**defaults, **changes}), credentials, cluster, timeout=7.5)

    return make


def fake(
    monkeypatch: pytest.MonkeyPatch, base: type, *connection_classes: Any, renames: dict[str, Any] | None = None
) -> FakeCloud:
    """A fresh fake for one test: a subclass of ``base`` with its own state, installed as the connection
    class of each of ``connection_classes`` the way libcloud's tests do, and put back after the test. With
    ``renames`` (the class attributes of :class:`Renaming`), it has the resources a doc example names."""
    cloud = FakeCloud()
    bases = (Renaming, base) if renames is not None else (base,)
    api = type(base.__name__, bases, {"cloud": cloud, "__test__": False, **(renames or {})})
    for connection_class in connection_classes:
        monkeypatch.setattr(connection_class, "conn_class", api)
    return cloud
