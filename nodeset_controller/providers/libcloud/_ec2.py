"""EC2: EC2 tags, through ``ex_metadata``; read from ``node.extra["tags"]``; exact values. ``list_nodes`` is also
filtered on the cluster tag server-side. The machine name is the ``Name`` tag, and the machine name doubles as the
RunInstances ClientToken, so EC2 itself refuses to make a second machine of that name."""

from __future__ import annotations

from typing import Any

from .._machine import TAG_CLUSTER, ErrorClass, MachineSpec, MachineState, ProviderError
from ._dialect import Dialect, pick, string_dict

# libcloud's EC2 driver maps only four instance states and reports the rest as UNKNOWN; its raw state
# is in extra["status"], and a stopped instance must not look Pending forever.
_RAW_STATES: dict[str, MachineState] = {
    "stopping": MachineState.TERMINATING,
    "shutting-down": MachineState.TERMINATING,
    "stopped": MachineState.FAILED,
}


class Ec2Dialect(Dialect):
    """EC2: tags are exact and filterable server-side; images are looked up by id, or by name among trusted
    owners only."""

    reads_tags = True
    user_data_kwarg = "ex_userdata"
    image_hint = "give an AMI id, or the name of an AMI owned by this account or by Amazon"

    def list_kwargs(self, cluster: str) -> dict[str, Any]:
        return {"ex_filters": {f"tag:{TAG_CLUSTER}": cluster}}

    def read_tags(self, node: Any) -> dict[str, str]:
        return string_dict(node.extra.get("tags"))

    def add_tags(self, kwargs: dict[str, Any], extra: dict[str, Any], spec: MachineSpec) -> None:
        theirs = string_dict(extra.pop("ex_metadata", None) or {})
        if "Name" in theirs:
            raise ProviderError(
                "ec2: extraCreateArgs ex_metadata sets the Name tag, which kube-node owns: it is the machine name",
                error_class=ErrorClass.INVALID_CONFIGURATION,
                code="INVALID_CREATE_ARGUMENT",
            )
        kwargs["ex_metadata"] = {**theirs, **spec.tags}
        # EC2's own idempotency key: a retried RunInstances with the same token returns the first instance.
        extra.setdefault("ex_clienttoken", spec.name)

    def find_image(self, driver: Any, wanted: str) -> Any | None:
        if wanted.startswith("ami-"):
            images = driver.list_images(ex_image_ids=[wanted])
        else:
            # By name only among our own and Amazon's images: anyone can publish an AMI with any name.
            images = driver.list_images(ex_owner="self", ex_filters={"name": wanted}) or driver.list_images(
                ex_owner="amazon", ex_filters={"name": wanted}
            )
        return pick(images, wanted, provider="ec2", what="image")

    def state(self, node: Any) -> MachineState:
        if str(node.state) == "unknown":
            raw = _RAW_STATES.get(str(node.extra.get("status", "")))
            if raw is not None:
                return raw
        return super().state(node)
