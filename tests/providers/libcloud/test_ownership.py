"""Which Node owns a libcloud machine, when the provider cut the tags that name the Node or the cluster.

Linode keeps tags to 50 characters, DigitalOcean to 255, GCE labels to 63: a tag ``kube-node-node:<name>``
of a long Node name reads back cut short. The orphan sweep must then find the Node by the machine's full
name (which :func:`machine_name` derives from the Node's name and uid), never by the cut name, or it
destroys live machines; and a cut cluster tag cannot prove the machine is this cluster's at all.
"""

from __future__ import annotations

import pytest
from libcloud.compute.base import Node

from nodeset_controller.api import NodeClass
from nodeset_controller.controllers import NodeController, NodeControllerSettings
from nodeset_controller.kube import KubeClient, NodeRecord
from nodeset_controller.providers import LibcloudProvider, Machine, MachineProvider, MachineSpec, ProviderRegistry
from nodeset_controller.providers import machine_name as name_of_machine

from .._fakes import FakeInformer, FakeRecorder, FakeSecrets, TaggingDriver, node_record, nodeclass

CLUSTER = "prod"
UID = "7e1d5c3a-0000-4000-8000-000000000000"
OTHER_UID = "9f2b4e6c-0000-4000-8000-000000000000"
#: A NodeSet name of 32 characters, a dash and five random ones: Linode's 50-character tag cuts it.
NODESET_NODE = "web-frontend-production-europe-w-7k2p9"
#: The longest Node name there is (253 characters), with dots: DigitalOcean and GCE labels cut it too.
LONGEST_NODE = ".".join(f"{part}-" + "x" * (62 - len(part)) for part in ("alpha", "bravo", "charlie")) + "." + "d" * 61
assert len(LONGEST_NODE) == 253

#: Every tag dialect the adapter has, and a driver it has none for; "gce-labels" is a GCE instance whose
#: metadata lost our exact tags, so that only the (sanitised, cut) labels are left.
DIALECTS = ["ec2", "gce", "gce-labels", "openstack", "digitalocean", "linode", "equinixmetal", "vultr"]
READS_TAGS = {"ec2", "gce", "gce-labels", "openstack", "digitalocean", "linode"}


def _spec(node: str, uid: str = UID, cluster: str = CLUSTER) -> MachineSpec:
    return MachineSpec(
        name=name_of_machine(node, uid),
        node_name=node,
        node_uid=uid,
        nodeclass="small",
        cluster=cluster,
        provider_id=f"kube-node://small/{node}",
    )


def _driver(dialect: str) -> TaggingDriver:
    driver = TaggingDriver(dialect.removesuffix("-labels"))
    if dialect == "gce-labels":
        original = driver.extra

        def labels_only(name: str, kwargs: dict[str, object]) -> dict[str, object]:
            extra = original(name, kwargs)
            extra["metadata"] = {"items": []}
            return extra

        driver.extra = labels_only  # type: ignore[method-assign]
    return driver


def _provider(dialect: str, driver: TaggingDriver, cluster: str = CLUSTER) -> LibcloudProvider:
    return LibcloudProvider(nodeclass(dialect.removesuffix("-labels")), {}, cluster, driver_factory=lambda: driver)


def _names_node(machine: Machine, node: str) -> bool:
    """Whether what the machine says about its Node points at ``node`` and at no other name: the exact name,
    or (a cut tag) the start of it with the flag that says the machine name must decide."""
    if machine.node_name_truncated:
        return machine.node_name is not None and node.startswith(machine.node_name) and machine.node_name != node
    return machine.node_name == node


@pytest.mark.parametrize("node", [NODESET_NODE, LONGEST_NODE], ids=["nodeset-node", "longest-node"])
@pytest.mark.parametrize("dialect", DIALECTS)
def test_a_listed_machine_identifies_its_node_exactly_however_long_the_name(dialect: str, node: str) -> None:
    driver = _driver(dialect)
    spec = _spec(node)
    _provider(dialect, driver).create(spec)

    fresh = _provider(dialect, driver)  # another process: only what the cloud shows
    [listed] = fresh.list()
    got = fresh.get(spec.name)

    assert got is not None and got.name == listed.name == spec.name
    for machine in (listed, got):
        if dialect in READS_TAGS:
            assert _names_node(machine, node), machine
            assert machine.cluster == CLUSTER
        else:  # no tags to read: ownership unknown, so never collected
            assert machine.cluster is None


def _controller(
    kube: KubeClient, dialect: str, driver: TaggingDriver, nodes: dict[str, NodeRecord], cluster: str = CLUSTER
) -> NodeController:
    def factory(nc: NodeClass, credentials: dict[str, str], cluster: str) -> MachineProvider:
        return LibcloudProvider(nc, credentials, cluster, driver_factory=lambda: driver)

    registry = ProviderRegistry(FakeSecrets({}), cluster, libcloud_factory=factory)  # type: ignore[arg-type]
    return NodeController(
        kube,  # the sweep reads a Node live before it destroys a machine as an orphan
        FakeInformer(nodes),  # type: ignore[arg-type]
        FakeInformer({"small": nodeclass(dialect.removesuffix("-labels"))}),  # type: ignore[arg-type]
        registry,
        FakeRecorder(),  # type: ignore[arg-type]
        settings=NodeControllerSettings(cluster=cluster, orphan_grace=0.0),
    )


@pytest.mark.parametrize("node", [NODESET_NODE, LONGEST_NODE], ids=["nodeset-node", "longest-node"])
@pytest.mark.parametrize("dialect", DIALECTS)
@pytest.mark.controlplane
def test_the_sweep_keeps_the_machine_of_a_node_with_a_long_name_and_destroys_its_predecessors(
    kube: KubeClient, dialect: str, node: str
) -> None:
    driver = _driver(dialect)
    provider = _provider(dialect, driver)
    live = provider.create(_spec(node))
    # The machine of an earlier Node of the same name (deleted, recreated with a new uid): an orphan.
    predecessor = provider.create(_spec(node, OTHER_UID))
    controller = _controller(kube, dialect, driver, {node: node_record(node, UID, "small", machine_id=live.id)})

    destroyed = controller.sweep()

    assert live.name not in driver.destroyed
    if dialect in READS_TAGS:
        assert driver.destroyed == [predecessor.name]
        assert destroyed == 1
    else:
        assert driver.destroyed == []  # ownership cannot be proven without tags


@pytest.mark.parametrize("dialect", ["linode", "gce-labels"])
@pytest.mark.controlplane
def test_a_cut_cluster_tag_does_not_make_another_clusters_machine_ours(kube: KubeClient, dialect: str) -> None:
    # Two clusters whose names agree for longer than the tag (Linode) or label (GCE) keeps.
    common = "eu-west-1-production-kubernetes-" + "a" * 40
    ours, theirs = f"{common}-blue", f"{common}-green"
    driver = _driver(dialect)
    their_machine = _provider(dialect, driver, cluster=theirs).create(_spec("web-1", cluster=theirs))

    listed = _provider(dialect, driver, cluster=ours).list()
    _controller(kube, dialect, driver, {}, cluster=ours).sweep()  # no Node of ours owns it

    assert all(machine.cluster is None for machine in listed if machine.name == their_machine.name)
    assert driver.destroyed == []


@pytest.mark.controlplane
@pytest.mark.parametrize("dialect", ["digitalocean", "openstack", "linode", "gce"])
@pytest.mark.parametrize("recorded", [True, False], ids=["recorded", "not-recorded-yet"])
def test_the_sweep_destroys_a_second_machine_of_a_node_and_keeps_the_recorded_one(
    kube: KubeClient, dialect: str, recorded: bool
) -> None:
    # A cloud without idempotent creates made two machines under one name (a create that timed out in the
    # client but completed, then a retry).
    driver = _driver(dialect)
    live = _provider(dialect, driver).create(_spec(NODESET_NODE))
    twin = Node("id-twin", live.name, "running", [], [], driver, extra=driver.machines[0].extra)
    driver.machines.append(twin)
    record = node_record(NODESET_NODE, UID, "small", machine_id=live.id if recorded else None)
    controller = _controller(kube, dialect, driver, {NODESET_NODE: record})

    destroyed = controller.sweep()

    if recorded:
        assert [m.id for m in driver.machines] == [live.id]
        assert destroyed == 1
        reasons = [reason for _, reason, _ in controller._recorder.events]  # type: ignore[attr-defined]
        assert reasons == ["DuplicateMachineDestroyed"]
    else:  # which of the two the Node will keep is not known yet: both stay
        assert sorted(m.id for m in driver.machines) == sorted([live.id, "id-twin"])
        assert destroyed == 0
