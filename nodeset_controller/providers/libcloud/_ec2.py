"""EC2: EC2 tags, through ``ex_metadata``; read from ``node.extra["tags"]``; exact values. ``list_nodes`` is also
filtered on the cluster tag server-side. The machine name is the ``Name`` tag, and the machine name doubles as the
RunInstances ClientToken, so EC2 itself refuses to make a second machine of that name.

Without a credentials Secret, the driver gets the pod's own session credentials (IRSA or EKS Pod Identity: see
``_aws_identity``) and the session token as its ``token``."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from .._machine import TAG_CLUSTER, ErrorClass, MachineSpec, MachineState, ProviderError
from . import _aws_identity
from ._dialect import Dialect, Keyless, invalid_argument, listed, look_up, pick, references, string_dict
from ._errors import is_not_found, not_found

# libcloud's EC2 driver maps only four instance states and reports the rest as UNKNOWN; its raw state
# is in extra["status"], and a stopped instance must not look Pending forever.
_RAW_STATES: dict[str, MachineState] = {
    "stopping": MachineState.TERMINATING,
    "shutting-down": MachineState.TERMINATING,
    "stopped": MachineState.FAILED,
}
#: an instance type's shape (family, generation and options, a dot, the size): m6i.large, u7i-12tb.224xlarge
_INSTANCE_TYPE = re.compile(r"^[a-z][a-z0-9-]*\.[a-z0-9-]+$")


class Ec2Dialect(Dialect):
    """EC2: tags are exact and filterable server-side; images are looked up by id, or by name among trusted
    owners only."""

    reads_tags = True
    user_data_kwarg = "ex_userdata"
    image_hint = "give an AMI id, or the name of an AMI owned by this account or by Amazon"

    def keyless(self, options: Mapping[str, Any], timeout: float) -> Keyless | None:
        region = options.get("region")
        source = _aws_identity.from_environment(str(region) if region else None)
        if source is None:
            raise ProviderError(
                "ec2: the NodeClass names no credentialsSecretRef and this process has no AWS identity: run it "
                "with IRSA (AWS_ROLE_ARN and AWS_WEB_IDENTITY_TOKEN_FILE: annotate its ServiceAccount "
                "eks.amazonaws.com/role-arn) or EKS Pod Identity (AWS_CONTAINER_CREDENTIALS_FULL_URI and "
                "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE), or give the NodeClass a credentials Secret",
                error_class=ErrorClass.INVALID_CONFIGURATION,
                code="NO_CLOUD_IDENTITY",
            )
        creds = source.credentials(timeout)
        return Keyless(
            source=source.describe,
            args=(creds.key, creds.secret),
            kwargs={"token": creds.token},
            secrets=(creds.key, creds.secret, creds.token),
        )

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

    def resolve_args(self, driver: Any, extra: dict[str, Any], provider: str) -> dict[str, Any]:
        """``ex_subnet`` (an id or Name tag) becomes the driver's subnet, ``ex_security_group_ids`` (ids, or
        names in the subnet's VPC) the groups' ids, and ``ex_keyname`` must name a key pair of the region."""
        resolved = dict(extra)
        subnet = None
        if "ex_subnet" in extra:
            [wanted] = references(extra["ex_subnet"], provider="ec2", argument="ex_subnet")
            if wanted.startswith("subnet-"):
                subnets = listed(lambda: driver.ex_list_subnets(subnet_ids=[wanted]))
            else:
                subnets = listed(lambda: driver.ex_list_subnets(filters={"tag:Name": wanted}))
            hint = "no subnet of this region has that id or Name tag"
            [subnet] = look_up(subnets, [wanted], provider="ec2", what="subnet", hint=hint)
            resolved["ex_subnet"] = subnet
        if "ex_security_group_ids" in extra:
            if subnet is None:
                raise invalid_argument(
                    "ec2",
                    "sets ex_security_group_ids without ex_subnet: EC2 takes security group ids only for an "
                    "instance in a VPC subnet (libcloud refuses them otherwise); set ex_subnet too",
                )
            named = references(extra["ex_security_group_ids"], provider="ec2", argument="ex_security_group_ids")
            ids = [one for one in named if one.startswith("sg-")]
            names = [one for one in named if not one.startswith("sg-")]
            groups = listed(lambda: driver.ex_get_security_groups(group_ids=ids)) if ids else []
            if names:
                vpc = {"vpc-id": subnet.extra["vpc_id"]} if subnet.extra.get("vpc_id") else {}
                groups += listed(lambda: driver.ex_get_security_groups(filters={"group-name": names, **vpc}))
            hint = "no security group of the subnet's VPC has that id or name"
            found = look_up(groups, named, provider="ec2", what="security group", hint=hint)
            resolved["ex_security_group_ids"] = [str(group.id) for group in found]
        if "ex_keyname" in extra:
            [name] = references(extra["ex_keyname"], provider="ec2", argument="ex_keyname")
            try:
                driver.get_key_pair(name)
            except Exception as error:
                if is_not_found(error) or type(error).__name__ == "KeyPairDoesNotExistError":
                    raise not_found("ec2", "key pair", name, "no key pair of this region has that name") from None
                raise
            resolved["ex_keyname"] = name
        return resolved

    def size_as_is(self, driver: Any, wanted: str) -> Any | None:
        """An instance type newer than libcloud's table of them: EC2 takes it by its name all the same, once
        EC2 says it has that type (DescribeInstanceTypes)."""
        if not _INSTANCE_TYPE.match(wanted):
            return None
        params = {"Action": "DescribeInstanceTypes", "InstanceType.1": wanted}
        try:
            answer = driver.connection.request(driver.path, params=params).object
        except Exception as error:
            if "InvalidInstanceType" in str(error):
                return None
            raise
        if wanted not in {str(element.text) for element in answer.iter() if element.tag.endswith("instanceType")}:
            return None
        from libcloud.compute.base import NodeSize  # noqa: PLC0415

        # What it offers is not known here (the NodeClass's capacity says it); 0 is libcloud's "unknown".
        return NodeSize(id=wanted, name=wanted, ram=0, disk=0, bandwidth=None, price=0.0, driver=driver, extra={})

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
