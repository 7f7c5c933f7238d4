"""The ProviderRegistry builds a NodeClass's provider from its credentials Secret; a bad Secret fails that
NodeClass alone, by name, and never shows the credentials."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from nodeset_controller.api import NodeClass, SecretReference
from nodeset_controller.controllers import NodeController
from nodeset_controller.kube import NotLeaderError, WriteFence
from nodeset_controller.providers import (
    ErrorClass,
    MachineProvider,
    MachineSpec,
    MemoryCloud,
    MemoryProvider,
    ProviderError,
    ProviderRegistry,
)

from ._fakes import FakeInformer, FakeRecorder, FakeSecrets, nodeclass

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
    cloud = MemoryCloud()

    def factory(nc: NodeClass, credentials: dict[str, str], cluster: str) -> MachineProvider:
        assert nc.metadata.name == "good" and credentials == {"key": "access-id"}
        return MemoryProvider(cloud, cluster=cluster, nodeclass=nc.metadata.name)

    registry = ProviderRegistry(secrets, "prod", libcloud_factory=factory)  # type: ignore[arg-type]
    controller = NodeController(
        None,  # type: ignore[arg-type]  # the sweep writes nothing here
        FakeInformer({}),  # type: ignore[arg-type]
        FakeInformer({"broken": broken, "good": good}),  # type: ignore[arg-type]
        registry,
        FakeRecorder(),  # type: ignore[arg-type]
    )

    assert controller.sweep() == 0
    assert cloud.calls == [("list", "")]  # the good NodeClass was swept, after the broken one


def _memory_registry(client: FakeSecrets, built: list[MemoryProvider]) -> ProviderRegistry:
    cloud = MemoryCloud()

    def factory(nc: NodeClass, credentials: dict[str, str], cluster: str) -> MachineProvider:
        built.append(MemoryProvider(cloud, cluster=cluster, nodeclass=nc.metadata.name))
        return built[-1]

    return ProviderRegistry(client, "prod", libcloud_factory=factory)  # type: ignore[arg-type]


def test_one_provider_is_built_per_nodeclass_generation() -> None:
    built: list[MemoryProvider] = []
    registry = _memory_registry(FakeSecrets({}), built)
    small = nodeclass("ec2", "small")
    small.metadata.uid, small.metadata.generation = "uid-1", 1

    first = registry.provider_for(small)
    assert registry.provider_for(small) is first  # a status or metadata write leaves the generation
    small.metadata.generation = 2
    second = registry.provider_for(small)  # a spec change
    small.metadata.uid, small.metadata.generation = "uid-2", 1
    third = registry.provider_for(small)  # deleted and created again: a new uid, generation 1 again
    other = registry.provider_for(nodeclass("ec2", "large"))

    assert len({id(first), id(second), id(third), id(other)}) == 4
    assert len(built) == 4


def test_a_fenced_registrys_providers_start_no_create_or_destroy_while_the_fence_refuses() -> None:
    leading = [True]
    secrets = FakeSecrets({})
    secrets.fence = WriteFence(lambda: leading[0])  # type: ignore[assignment]
    built: list[MemoryProvider] = []
    provider = _memory_registry(secrets, built).provider_for(nodeclass("ec2"))
    spec = MachineSpec(name="m-1", node_name="n-1", node_uid="u-1", nodeclass="small", cluster="prod", provider_id="p")
    [memory] = built

    leading[0] = False
    with pytest.raises(NotLeaderError):
        provider.create(spec)
    assert memory.cloud.calls == []  # refused before it reached the cloud

    leading[0] = True
    provider.create(spec)
    leading[0] = False
    with pytest.raises(NotLeaderError):
        provider.destroy("m-1")
    assert [m.name for m in provider.list()] == ["m-1"]  # reads pass
    assert memory.cloud.calls == [("create", "m-1"), ("list", "")]
