"""Linode: tags, a list of ``key:value`` strings (:class:`TagListDialect`) in ``ex_tags``; a tag is cut to 50
characters, where a Node name of more than 35 characters no longer fits, and reads back cut."""

from __future__ import annotations

from typing import Any

from .._machine import MachineSpec
from ._dialect import OUR_TAGS, TagListDialect


class LinodeDialect(TagListDialect):
    """Linode (API v4): tags are at most 50 characters."""

    user_data_kwarg = "ex_userdata"
    _MAX = 50

    def add_tags(self, kwargs: dict[str, Any], extra: dict[str, Any], spec: MachineSpec) -> None:
        theirs = [str(t) for t in extra.pop("ex_tags", None) or [] if str(t).partition(":")[0] not in OUR_TAGS]
        kwargs["ex_tags"] = theirs + self._tags(spec)
