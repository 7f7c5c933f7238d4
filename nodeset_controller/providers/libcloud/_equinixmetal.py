"""Equinix Metal: sent as device tags, but the driver does not expose tags on the nodes it returns, so its
machines are recognised by name alone."""

from __future__ import annotations

from typing import Any

from .._machine import MachineSpec
from ._dialect import Dialect


class EquinixMetalDialect(Dialect):
    """Equinix Metal: tags are sent but never shown back, so machines are recognised by name."""

    user_data_kwarg = "cloud_init"

    def add_tags(self, kwargs: dict[str, Any], extra: dict[str, Any], spec: MachineSpec) -> None:
        # create_node passes unknown keywords into the request body; the nodes it returns omit tags.
        kwargs["tags"] = [f"{key}:{value}" for key, value in spec.tags.items()]
