"""DigitalOcean: tags, a list of ``key:value`` strings (:class:`TagListDialect`) in ``ex_create_attr["tags"]``,
since its create_node has no ``ex_tags``; a tag is cut to 255 characters and reads back cut."""

from __future__ import annotations

from typing import Any

from .._machine import MachineSpec
from ._dialect import OUR_TAGS, TagListDialect


class DigitalOceanDialect(TagListDialect):
    """DigitalOcean: create_node has no ex_tags; tags travel in ex_create_attr."""

    user_data_kwarg = "ex_user_data"

    def add_tags(self, kwargs: dict[str, Any], extra: dict[str, Any], spec: MachineSpec) -> None:
        attrs = dict(extra.pop("ex_create_attr", None) or {})
        theirs = [str(t) for t in attrs.get("tags") or [] if str(t).partition(":")[0] not in OUR_TAGS]
        kwargs["ex_create_attr"] = {**attrs, "tags": theirs + self._tags(spec)}
