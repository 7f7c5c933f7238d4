"""Which Nodes belong to a NodeSet: the label alone is not enough.

A Node carrying ``kube-node.io/nodeset=<set>`` may not have been made by that set: a kubelet that
re-registers with its old labels after its Node was deleted (while the machine lived on), or one simply told
those labels. Counting such a Node would set off a scale-down at once, and could drain a legitimate Node in
its place. So a member must carry the controller ownerReference (with the set's uid) that the NodeSet wrote
when it created the Node; a Node with the label and no such reference is *foreign*: reported, never counted,
never drained by the set. A Node whose reference names another uid was made by an earlier NodeSet of the
same name, which is gone (names are unique), and is that set's leftover.
"""

from __future__ import annotations

from collections.abc import Iterable

from ..api import LABEL_NODESET, NodeSet
from ._informer import Informer
from ._records import NodeRecord


def is_member(node: NodeRecord, nodeset: NodeSet) -> bool:
    """Whether ``node`` was made by ``nodeset`` (its label and its controller ownerReference's uid)."""
    return (
        node.labels.get(LABEL_NODESET) == nodeset.metadata.name
        and bool(node.owner_uid)
        and node.owner_uid == nodeset.metadata.uid
    )


def is_foreign(node: NodeRecord) -> bool:
    """Whether ``node`` carries a NodeSet label but no NodeSet made it (no controller ownerReference)."""
    return bool(node.labels.get(LABEL_NODESET)) and not node.owner_uid


def nodeset_members(nodes: Informer[NodeRecord], nodeset: NodeSet) -> list[NodeRecord]:
    """The cached Nodes that belong to ``nodeset``."""
    return [n for n in nodes.by_index("nodeset", nodeset.metadata.name) if is_member(n, nodeset)]


def labelled(nodes: Informer[NodeRecord], name: str) -> list[NodeRecord]:
    """Every cached Node labelled with the NodeSet ``name``: members, foreign Nodes and leftovers."""
    return nodes.by_index("nodeset", name)


def names(nodes: Iterable[NodeRecord]) -> list[str]:
    """Sorted names, for messages."""
    return sorted(n.name for n in nodes)
