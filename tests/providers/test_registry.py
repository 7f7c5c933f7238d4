"""The ProviderRegistry builds a NodeClass's provider from its credentials Secret; a bad Secret fails that
NodeClass alone, by name, and never shows the credentials."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from nodeset_controller.api import NodeClass, SecretReference
from nodeset_controller.controllers import NodeController
from nodeset_controller.providers import ErrorClass, LibcloudProvider, MachineProvider, ProviderError, ProviderRegistry

from ._fakes import FakeInformer, FakeRecorder, FakeSecrets, TaggingDriver, nodeclass

NOT_UTF8 = b"s3cr\xffet-\xfe-token"  # a credential that is not UTF-8: a wrong file put in the Secret, say


def _secret(**data: bytes) -> dict[str, Any]:
    return {"data": {key: base64.b64encode(value).decode() for key, value in data.items()}}


def _with_secret(provider: str, name: str, secret: str) -> NodeClass:
    return nodeclass(provider, name, credentials_secret_ref=SecretReference(name=secret, namespace="creds"))


def test_a_secret_value_that_is_not_utf8_is_invalid_configuration_naming_the_secret_and_key() -> None:
    secrets = FakeSecrets({("creds", "cloud"): _secret(key=b"access-id", secret=NOT_UTF8)})
    registry = ProviderRegistry(secrets, "prod", libcloud_factory=lambda nc, creds, cluster: pytest.fail("built"))  # type: ignore[arg-type]

    with pytest.raises(ProviderError) as raised:
        registry.provider_for(_with_secret("ec2", "broken", "cloud"))

    error = raised.value
    assert error.error_class is ErrorClass.INVALID_CONFIGURATION
    assert not error.retryable
    assert error.code == "INVALID_CREDENTIALS"
    message = str(error)
    assert "NodeClass broken" in message and "creds/cloud" in message and "'secret'" in message
    assert "UTF-8" in message
    # Neither the value nor any of its bytes (a decode error would quote them) is shown.
    assert "s3cr" not in message and "xff" not in message and "0xff" not in message
    assert error.__cause__ is None and error.__context__ is None  # nor does a traceback, or the error's context


def test_a_secret_value_that_is_not_base64_is_invalid_configuration_naming_the_secret_and_key() -> None:
    secrets = FakeSecrets({("creds", "cloud"): {"data": {"key": "not*base64!"}}})
    registry = ProviderRegistry(secrets, "prod", libcloud_factory=lambda nc, creds, cluster: pytest.fail("built"))  # type: ignore[arg-type]

    with pytest.raises(ProviderError) as raised:
        registry.provider_for(_with_secret("ec2", "broken", "cloud"))

    assert raised.value.error_class is ErrorClass.INVALID_CONFIGURATION
    assert "creds/cloud" in str(raised.value) and "'key'" in str(raised.value)
    assert "not*base64" not in str(raised.value)


def test_the_sweep_goes_on_to_the_other_nodeclasses_past_one_whose_secret_is_not_utf8() -> None:
    broken, good = _with_secret("ec2", "broken", "bad"), _with_secret("ec2", "good", "fine")
    secrets = FakeSecrets({("creds", "bad"): _secret(key=NOT_UTF8), ("creds", "fine"): _secret(key=b"access-id")})
    driver = TaggingDriver("ec2")

    def factory(nc: NodeClass, credentials: dict[str, str], cluster: str) -> MachineProvider:
        assert nc.metadata.name == "good" and credentials == {"key": "access-id"}
        return LibcloudProvider(nc, credentials, cluster, driver_factory=lambda: driver)

    registry = ProviderRegistry(secrets, "prod", libcloud_factory=factory)  # type: ignore[arg-type]
    controller = NodeController(
        None,  # type: ignore[arg-type]  # the sweep writes nothing here
        FakeInformer({}),  # type: ignore[arg-type]
        FakeInformer({"broken": broken, "good": good}),  # type: ignore[arg-type]
        registry,
        FakeRecorder(),  # type: ignore[arg-type]
    )

    assert controller.sweep() == 0
    assert driver.list_calls == 1  # the good NodeClass was swept, after the broken one
