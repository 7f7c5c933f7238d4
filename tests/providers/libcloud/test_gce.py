"""The GCE dialect, through libcloud's real GCE driver against its offline fake (see _clouds.py)."""

from __future__ import annotations

import json

import pytest

from nodeset_controller.providers import (
    TAG_CLUSTER,
    TAG_NODE,
    TAG_NODECLASS,
    ErrorClass,
    MachineState,
    QuotaExceededError,
)

from ._clouds import CLUSTER, MACHINE, OUR_TAGS, SPEC, Harness


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
