"""OpenStack: server metadata (``ex_metadata``); read from ``node.extra["metadata"]``; exact values."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .._machine import MachineSpec
from ._dialect import Dialect, listed, look_up, references, string_dict
from ._errors import is_not_found, not_found

#: The compute API kube-node asks for when driverOptions names none: libcloud's own default is still the old 1.1
#: driver (no networks from neutron, no glance v2 images).
API_VERSION = "2.0"


class OpenStackDialect(Dialect):
    """OpenStack (nova): server metadata holds exact tags; the location is an availability zone name."""

    reads_tags = True
    location_kwarg = "ex_availability_zone"  # its create_node takes no location; zones are plain names
    user_data_kwarg = "ex_userdata"
    create_args = frozenset({"networks"})  # nova's networks, documented by the driver without the ex_ prefix

    def driver_defaults(self, key: str | None, given: Mapping[str, Any]) -> dict[str, Any]:
        return {"api_version": API_VERSION}

    def read_tags(self, node: Any) -> dict[str, str]:
        return string_dict(node.extra.get("metadata"))

    def add_tags(self, kwargs: dict[str, Any], extra: dict[str, Any], spec: MachineSpec) -> None:
        kwargs["ex_metadata"] = {**string_dict(extra.pop("ex_metadata", None) or {}), **spec.tags}

    def resolve_args(self, driver: Any, extra: dict[str, Any], provider: str) -> dict[str, Any]:
        """``ex_security_groups`` and ``networks`` (ids or names, or ``{id: ...}``/``{name: ...}``) become the
        driver's security groups and networks; ``ex_keyname`` must name a key pair of the project."""
        resolved = dict(extra)
        if "ex_security_groups" in extra:
            named = references(extra["ex_security_groups"], provider=provider, argument="ex_security_groups")
            groups = listed(driver.ex_list_security_groups)
            hint = "no security group of this project has that id or name"
            resolved["ex_security_groups"] = look_up(groups, named, provider=provider, what="security group", hint=hint)
        if "networks" in extra:
            named = references(extra["networks"], provider=provider, argument="networks")
            networks = listed(driver.ex_list_networks)
            hint = "no network this project can use has that id or name"
            resolved["networks"] = look_up(networks, named, provider=provider, what="network", hint=hint)
        if "ex_keyname" in extra:
            [name] = references(extra["ex_keyname"], provider=provider, argument="ex_keyname")
            try:
                driver.get_key_pair(name)
            except Exception as error:
                if is_not_found(error) or type(error).__name__ == "KeyPairDoesNotExistError":
                    raise not_found(provider, "key pair", name, "no key pair of this user has that name") from None
                raise
            resolved["ex_keyname"] = name
        return resolved
