"""OpenStack: server metadata (``ex_metadata``); read from ``node.extra["metadata"]``; exact values."""

from __future__ import annotations

from typing import Any

from .._machine import MachineSpec
from ._dialect import Dialect, string_dict


class OpenStackDialect(Dialect):
    """OpenStack (nova): server metadata holds exact tags; the location is an availability zone name."""

    reads_tags = True
    location_kwarg = "ex_availability_zone"  # its create_node takes no location; zones are plain names
    user_data_kwarg = "ex_userdata"

    def read_tags(self, node: Any) -> dict[str, str]:
        return string_dict(node.extra.get("metadata"))

    def add_tags(self, kwargs: dict[str, Any], extra: dict[str, Any], spec: MachineSpec) -> None:
        kwargs["ex_metadata"] = {**string_dict(extra.pop("ex_metadata", None) or {}), **spec.tags}
