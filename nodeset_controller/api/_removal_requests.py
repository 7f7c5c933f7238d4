"""The NodeSet annotation that names Nodes whose removal was asked for (``kube-node.io/delete-requested-nodes``):
a comma-separated list of Node names, written together with the matching decrease of ``spec.replicas``."""

from __future__ import annotations

from collections.abc import Iterable

from ._names import ANNOTATION_DELETE_REQUESTED_NODES
from ._types import NodeSet


def parse_names(value: str) -> set[str]:
    """The names in a comma-separated list."""
    return {name for name in value.split(",") if name}


def format_names(names: Iterable[str]) -> str:
    """The annotation's value for ``names`` (sorted, so that equal sets are equal text)."""
    return ",".join(sorted(names))


def requested_nodes(nodeset: NodeSet) -> set[str]:
    """The Nodes whose removal was requested on ``nodeset``."""
    return parse_names(nodeset.metadata.annotations.get(ANNOTATION_DELETE_REQUESTED_NODES, ""))
