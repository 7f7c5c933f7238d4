"""The cache of pods bound to Nodes, indexed by Node: what drain, the pending-pod autoscaler, the NodeSet
controller and the simulated kubelets read about pods (one watch per process, shared by all of them)."""

from __future__ import annotations

from ._client import PODS, KubeClient
from ._informer import DEFAULT_WATCH_IDLE_TIMEOUT, Informer
from ._records import PodRecord


def bound_pods_informer(client: KubeClient, *, read_timeout: float = DEFAULT_WATCH_IDLE_TIMEOUT) -> Informer[PodRecord]:
    """A cache of the pods bound to a node, indexed by node name (index ``node``)."""
    return Informer(
        client,
        PODS,
        PodRecord.from_json,
        field_selector="spec.nodeName!=",
        indexers={"node": lambda p: (p.node,)},
        name="bound-pods",
        read_timeout=read_timeout,
    )
