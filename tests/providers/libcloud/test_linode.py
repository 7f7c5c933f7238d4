"""The Linode dialect: tags are a flat list of ``key:value`` strings in ``ex_tags``, sanitised to Linode's tag
charset and cut to its 50 characters; user data goes to ``ex_userdata``."""

from __future__ import annotations

from nodeset_controller.api import ExtraArgument
from nodeset_controller.providers import TAG_CLUSTER, TAG_NODE, TAG_NODECLASS, LibcloudProvider, MachineSpec

from .._fakes import TaggingDriver, nodeclass

SPEC = MachineSpec(
    name="web-1-0a1b2c3d",
    node_name="web-1.example.com",
    node_uid="0a1b2c3d-0000-4000-8000-000000000000",
    nodeclass="small",
    cluster="Prod.EU",
    provider_id="kube-node://small/web-1.example.com",
    user_data="#cloud-config\n",
)


def test_linode_create_sends_sanitised_tags_after_the_users_own_and_user_data_as_ex_userdata() -> None:
    driver = TaggingDriver("linode")
    # The user's tags stay; a tag that claims one of kube-node's keys is replaced by kube-node's own.
    extra = [ExtraArgument("ex_tags", ["team:blue", f"{TAG_CLUSTER}:someone-else"])]
    provider = LibcloudProvider(
        nodeclass("linode", extra_create_args=extra), {}, "Prod.EU", driver_factory=lambda: driver
    )

    provider.create(SPEC)

    [sent] = driver.created
    assert sent["ex_tags"] == [
        "team:blue",
        f"{TAG_CLUSTER}:Prod_EU",
        f"{TAG_NODE}:web-1_example_com",
        f"{TAG_NODECLASS}:small",
    ]
    assert sent["ex_userdata"] == SPEC.user_data


def test_a_linode_tag_is_cut_to_50_characters_and_read_back_as_cut() -> None:
    driver = TaggingDriver("linode")
    node = "web-frontend-production-europe-w-7k2p9"  # 15 + 38 characters: 3 too many
    spec = MachineSpec(
        name="web-frontend-production-europe-w-7k2p9-0a1b2c3d",
        node_name=node,
        node_uid=SPEC.node_uid,
        nodeclass="small",
        cluster="prod",
        provider_id=f"kube-node://small/{node}",
    )
    LibcloudProvider(nodeclass("linode"), {}, "prod", driver_factory=lambda: driver).create(spec)

    [sent] = driver.created
    assert f"{TAG_NODE}:{node}"[:50] in sent["ex_tags"]
    assert max(len(tag) for tag in sent["ex_tags"]) == 50
    [listed] = LibcloudProvider(nodeclass("linode"), {}, "prod", driver_factory=lambda: driver).list()
    assert listed.node_name == node[:35] and listed.node_name_truncated
    assert listed.cluster == "prod"  # the cluster tag was short enough to read back whole
