"""The Equinix Metal dialect: tags are sent as device tags but never shown back, so machines are recognised by
the shape of their names alone, and their ownership is not proven (``cluster=None``); user data goes to
``cloud_init``."""

from __future__ import annotations

from libcloud.compute.base import Node

from nodeset_controller.providers import TAG_CLUSTER, TAG_NODE, TAG_NODECLASS, LibcloudProvider, MachineSpec

from .._fakes import TaggingDriver, nodeclass

SPEC = MachineSpec(
    name="web-1-0a1b2c3d",
    node_name="web-1.example.com",
    node_uid="0a1b2c3d-0000-4000-8000-000000000000",
    nodeclass="small",
    cluster="Prod.EU",
    provider_id="kube-node://small/web-1.example.com",
    user_data="#cloud-config\n",
)


def _provider(driver: TaggingDriver) -> LibcloudProvider:
    return LibcloudProvider(nodeclass("equinixmetal"), {}, "Prod.EU", driver_factory=lambda: driver)


def test_equinixmetal_create_sends_exact_tags_and_user_data_as_cloud_init() -> None:
    driver = TaggingDriver("equinixmetal")

    machine = _provider(driver).create(SPEC)

    [sent] = driver.created
    assert sent["tags"] == [f"{TAG_CLUSTER}:Prod.EU", f"{TAG_NODE}:web-1.example.com", f"{TAG_NODECLASS}:small"]
    assert sent["cloud_init"] == SPEC.user_data
    assert machine.cluster == "Prod.EU"  # what create sent is exact


def test_equinixmetal_machines_are_ours_by_name_shape_with_ownership_unproven() -> None:
    driver = TaggingDriver("equinixmetal")
    _provider(driver).create(SPEC)
    driver.machines.append(Node("id-db", "db-primary", "running", [], [], driver, extra={}))  # not a machine name

    listed = _provider(driver).list()  # another process: only what the cloud shows

    assert [m.name for m in listed] == [SPEC.name]
    assert listed[0].cluster is None and listed[0].node_name is None
