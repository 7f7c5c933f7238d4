"""The base dialect, which every driver kube-node has no dialect for gets: user data goes to the first
create_node keyword it knows that the driver names (never into a ``**kwargs`` catch-all), and no tags."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from libcloud.compute.base import Node, NodeImage, NodeSize

from nodeset_controller.api import ExtraArgument
from nodeset_controller.providers import ErrorClass, LibcloudProvider, MachineSpec, ProviderError

from .._fakes import nodeclass

SPEC = MachineSpec(
    name="web-1-0a1b2c3d",
    node_name="web-1.example.com",
    node_uid="0a1b2c3d-0000-4000-8000-000000000000",
    nodeclass="small",
    cluster="prod",
    provider_id="kube-node://small/web-1.example.com",
    user_data="#cloud-config\n",
)


class _Driver:
    """A driver kube-node has no dialect for; subclasses give create_node the signature under test."""

    def __init__(self) -> None:
        self.created: list[dict[str, Any]] = []

    def list_nodes(self, **kwargs: Any) -> list[Node]:
        return []

    def list_sizes(self, location: Any = None) -> list[NodeSize]:
        return [NodeSize("small", "small", 2048, 20, 0, 0.01, self)]

    def list_images(self, **kwargs: Any) -> list[NodeImage]:
        return [NodeImage("ami-1", "ami-1", self)]

    def _made(self, name: str, kwargs: dict[str, Any]) -> Node:
        self.created.append(kwargs)
        return Node(f"id-{name}", name, "pending", [], [], self)


class _TwoKeywords(_Driver):
    def create_node(self, name: str, size: Any, image: Any, user_data: str = "", ex_userdata: str = "") -> Node:
        return self._made(name, {"user_data": user_data, "ex_userdata": ex_userdata})


class _CatchAll(_Driver):
    def create_node(self, name: str, size: Any, image: Any, **kwargs: Any) -> Node:
        return self._made(name, kwargs)


def _provider(driver: _Driver, **spec: Any) -> LibcloudProvider:
    return LibcloudProvider(nodeclass("vultr", **spec), {}, "prod", driver_factory=lambda: driver)


def test_user_data_goes_to_the_first_known_keyword_the_driver_names() -> None:
    driver = _TwoKeywords()

    _provider(driver).create(SPEC)

    assert driver.created == [{"user_data": "", "ex_userdata": SPEC.user_data}]  # ex_userdata comes first


def test_a_driver_that_names_no_user_data_keyword_is_refused_before_anything_is_made() -> None:
    driver = _CatchAll()

    with pytest.raises(ProviderError) as raised:
        _provider(driver).create(SPEC)

    assert raised.value.code == "USER_DATA_UNSUPPORTED"
    assert raised.value.error_class is ErrorClass.INVALID_CONFIGURATION
    assert driver.created == []


def test_without_user_data_such_a_driver_creates_and_is_sent_no_tags() -> None:
    driver = _CatchAll()

    machine = _provider(driver).create(dataclasses.replace(SPEC, user_data=""))

    assert driver.created == [{}]  # neither user data nor tags: the base dialect has no way to send them
    assert machine.cluster == "prod"


def test_extra_create_args_that_set_the_user_data_keyword_conflict() -> None:
    driver = _TwoKeywords()

    with pytest.raises(ProviderError) as raised:
        _provider(driver, extra_create_args=[ExtraArgument("ex_userdata", "x")]).create(SPEC)

    assert raised.value.code == "CONFLICTING_CREATE_ARGUMENT"
    assert driver.created == []


def test_the_crd_allows_exactly_the_non_ex_create_arguments_the_dialects_let_through() -> None:
    import re

    from nodeset_controller.api import crd_manifests
    from nodeset_controller.providers.libcloud._adapter import _DIALECTS

    crd = crd_manifests()[0]
    spec = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]
    pattern = spec["extraCreateArgs"]["items"]["properties"]["name"]["pattern"]
    match = re.fullmatch(r"\^\(ex_\[A-Za-z0-9_\]\+\|([a-z_|]+)\)\$", pattern)
    assert match is not None, pattern
    assert set(match.group(1).split("|")) == set().union(*(d.create_args for d in _DIALECTS.values()))
