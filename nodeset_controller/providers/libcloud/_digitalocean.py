"""DigitalOcean: tags, a list of ``key:value`` strings (:class:`TagListDialect`) in ``ex_create_attr["tags"]``,
since its create_node has no ``ex_tags``; a tag is cut to 255 characters and reads back cut.

The driver sends only the ``ex_create_attr`` keys on its list (``EX_CREATE_ATTRIBUTES``) and drops every other
without a word; kube-node sends the droplet attributes of DigitalOcean's API that the list lacks too, and refuses
any other key, so that nothing a NodeClass says is ignored."""

from __future__ import annotations

from typing import Any

from .._machine import MachineSpec
from ._dialect import OUR_TAGS, TagListDialect, invalid_argument
from ._errors import conflict

#: Droplet attributes of DigitalOcean's create request (POST /v2/droplets) that libcloud 3.9's list lacks.
MORE_CREATE_ATTRIBUTES = ("vpc_uuid", "monitoring", "volumes", "with_droplet_agent", "backup_policy")
#: What kube-node sends itself, from the NodeClass's fields.
_OURS = {"name": "the machine name", "size": "size", "image": "image", "region": "location", "user_data": "userData"}


class DigitalOceanDialect(TagListDialect):
    """DigitalOcean: create_node has no ex_tags; tags travel in ex_create_attr."""

    user_data_kwarg = "ex_user_data"

    def prepare_driver(self, driver: Any) -> None:
        known = list(getattr(driver, "EX_CREATE_ATTRIBUTES", []))
        driver.EX_CREATE_ATTRIBUTES = known + [key for key in MORE_CREATE_ATTRIBUTES if key not in known]

    def resolve_args(self, driver: Any, extra: dict[str, Any], provider: str) -> dict[str, Any]:
        attrs = extra.get("ex_create_attr")
        if attrs is None:
            return dict(extra)
        if not isinstance(attrs, dict):
            raise invalid_argument(provider, "ex_create_attr must be an object of droplet attributes")
        accepted = list(getattr(driver, "EX_CREATE_ATTRIBUTES", []))
        for key in attrs:
            if key in _OURS:
                raise conflict(provider, f"ex_create_attr['{key}']", _OURS[key])
            if key not in accepted:
                raise invalid_argument(
                    provider,
                    f"ex_create_attr has {key!r}, which the driver does not send (it would be ignored); it sends "
                    f"{', '.join(accepted)}",
                )
        return dict(extra)

    def add_tags(self, kwargs: dict[str, Any], extra: dict[str, Any], spec: MachineSpec) -> None:
        attrs = dict(extra.pop("ex_create_attr", None) or {})
        theirs = [str(t) for t in attrs.get("tags") or [] if str(t).partition(":")[0] not in OUR_TAGS]
        kwargs["ex_create_attr"] = {**attrs, "tags": theirs + self._tags(spec)}
