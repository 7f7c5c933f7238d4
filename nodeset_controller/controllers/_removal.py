"""Asking a NodeSet to remove particular Nodes: the names and the lower replicas in one write.

The cluster-autoscaler's DeleteNodes must be atomic and idempotent: either the NodeSet will remove exactly
those Nodes, or nothing changed. Annotating the Nodes and then lowering replicas would be two writes, and a
crash between them would either lose the request or, on a retry, lower replicas twice. So the request lives
on the NodeSet itself: ``kube-node.io/delete-requested-nodes`` lists the names, and the same write lowers
``spec.replicas`` by the number of names it adds. Names already listed are not counted again, so a retry
changes nothing. The NodeSetController takes listed Nodes first on scale-down and prunes names of Nodes
that are gone.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from ..api import ANNOTATION_DELETE_REQUESTED_NODES, NodeSet, format_names, parse_names, requested_nodes
from ..kube import NODESETS, ApiError, KubeClient

_MAX_ATTEMPTS = 20


class RemovalConflictError(RuntimeError):
    """The NodeSet kept changing under the request; nothing was written."""


class RemovalOfGoneNodesError(RuntimeError):
    """Some Nodes to be named are no longer Nodes of the set; nothing was written."""

    def __init__(self, nodeset: str, names: list[str]) -> None:
        super().__init__(f"NodeSet {nodeset}: {', '.join(names)} no longer exist; nothing was recorded")
        self.names = names


def request_removal(
    client: KubeClient, nodeset: str, names: Iterable[str], present: Callable[[str], bool] = lambda _: True
) -> int:
    """Record the removal of ``names`` and lower replicas by the number newly recorded, in one write with the
    NodeSet's resourceVersion (retried on conflict). Returns how many names were new (0 for a repeat).

    ``present`` says whether a name is still a Node of the set, from the cache the NodeSetController prunes by;
    it is asked after each read of the NodeSet, about the names that read does not list. A name pruned because
    its Node went looks new again, and recording it would lower replicas a second time for the same Node, so
    a repeat that arrives after the prune raises RemovalOfGoneNodesError instead. Asked after the read, the
    answer cannot be older than the prune: the cache lost the Node before the prune was written."""
    wanted = set(names)
    for _ in range(_MAX_ATTEMPTS):
        current = client.get(NODESETS, nodeset)
        annotations = current["metadata"].get("annotations") or {}
        listed = parse_names(annotations.get(ANNOTATION_DELETE_REQUESTED_NODES, ""))
        new = wanted - listed
        if not new:
            return 0
        gone = sorted(name for name in new if not present(name))
        if gone:
            raise RemovalOfGoneNodesError(nodeset, gone)
        replicas = max(0, int(current["spec"].get("replicas", 0)) - len(new))
        patch = {
            "metadata": {
                "resourceVersion": current["metadata"]["resourceVersion"],
                "annotations": {ANNOTATION_DELETE_REQUESTED_NODES: format_names(listed | new)},
            },
            "spec": {"replicas": replicas},
        }
        try:
            client.patch(NODESETS, nodeset, patch)
            return len(new)
        except ApiError as error:
            if not error.conflict:
                raise
    raise RemovalConflictError(f"NodeSet {nodeset} kept changing; removal of {sorted(wanted)} not recorded")


def prune_requested(client: KubeClient, nodeset: NodeSet, present: set[str]) -> None:
    """Drop names of Nodes that are gone from the request list (with the NodeSet's resourceVersion)."""
    listed = requested_nodes(nodeset)
    keep = listed & present
    if keep == listed:
        return
    patch = {
        "metadata": {
            "resourceVersion": nodeset.metadata.resource_version,
            "annotations": {ANNOTATION_DELETE_REQUESTED_NODES: format_names(keep) or None},
        }
    }
    try:
        client.patch(NODESETS, nodeset.metadata.name, patch)
    except ApiError as error:
        if not (error.conflict or error.not_found):
            raise
