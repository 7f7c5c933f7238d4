"""The GCE dialect, through libcloud's real GCE driver against its offline fake (see _clouds.py)."""

from __future__ import annotations

import json
import stat
import tempfile
from pathlib import Path

import pytest
from libcloud.common.google import GoogleInstalledAppAuthConnection, GoogleOAuth2Credential

from nodeset_controller.providers import (
    TAG_CLUSTER,
    TAG_NODE,
    TAG_NODECLASS,
    ErrorClass,
    MachineState,
    QuotaExceededError,
)

from ._clouds import CLUSTER, MACHINE, OUR_TAGS, SPEC, Harness, google_tests

# libcloud's own token cache, before the gce fixture replaces it for the other tests
_READ_TOKEN = GoogleOAuth2Credential._get_token_from_file
_WRITE_TOKEN = GoogleOAuth2Credential._write_token_to_file


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


def test_the_token_cache_is_written_to_a_private_temporary_directory_not_under_home(
    gce: Harness, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("")
    monkeypatch.setenv("HOME", str(not_a_dir / "home"))  # unwritable, as on a read-only root filesystem (even root)
    (tmp_path / "tmp").mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    monkeypatch.setattr(GoogleOAuth2Credential, "_get_token_from_file", _READ_TOKEN)
    monkeypatch.setattr(GoogleOAuth2Credential, "_write_token_to_file", _WRITE_TOKEN)
    new_tokens: list[str] = []  # the installed-app flow would wait for a browser: a token, counted
    monkeypatch.setattr(
        GoogleInstalledAppAuthConnection,
        "get_new_token",
        lambda self: new_tokens.append(self.user_id) or dict(google_tests.STUB_TOKEN_FROM_FILE),
    )

    provider = gce.provider
    provider.create(SPEC)

    credential = provider._driver().connection.oauth2_credential
    cache = Path(credential.credential_file)
    assert cache.parent.parent == tmp_path / "tmp"
    assert json.loads(cache.read_text())["access_token"] == credential.token["access_token"]
    assert stat.S_IMODE(cache.stat().st_mode) == 0o600
    assert stat.S_IMODE(cache.parent.stat().st_mode) == 0o700
    # Another driver of the same account and project (another thread's) reads that token.
    other = gce.make()._driver().connection.oauth2_credential
    assert (other.credential_file, other.token, len(new_tokens)) == (str(cache), credential.token, 1)
    # driverOptions may still say where it goes.
    mine = tmp_path / "mine.json"
    options = {"project": "project_name", "auth_type": "IA", "credential_file": str(mine)}
    gce.make(driver_options=options).validate()
    assert mine.exists()
