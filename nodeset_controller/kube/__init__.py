"""Kubernetes access, one module each:

- ``_client``: a thin JSON client for the API, and where the built-in kinds live (``NODES``, ``PODS``, ...);
- ``_resources``: where kube-node's own kinds live (``NODECLASSES``, ``NODESETS``);
- ``_informer``: a watch-fed cache of slim records, with indexes, and observations of one's own writes in it;
- ``_nodeset_size``: the one writer of a NodeSet's size (replicas, named removals): one retry policy on
  conflicts, one error when they persist, read-your-write through the NodeSet cache;
- ``_pods``: the cache of pods bound to Nodes that drain, the controllers and the simulated kubelets share;
- ``_records``: the slim records the caches hold (Nodes, pods), NodeClass and NodeSet parsing;
- ``_membership``: which Nodes belong to a NodeSet (its ownerReference, not the label alone);
- ``_workqueue``: a rate-limited work queue of object keys, and the workers that drain it;
- ``_events``: recording Events on objects, in the background;
- ``_leader``: leader election on a Lease;
- ``_fence``: the write fence: no change is sent unless this process leads at that moment;
- ``_install``: installing kube-node's CRDs.
"""

from ._client import (
    APPLY_PATCH,
    CRDS,
    DEFAULT_REQUEST_TIMEOUT,
    EVENTS,
    JSON,
    JSON_PATCH,
    LEASES,
    MERGE_PATCH,
    NAMESPACES,
    NODES,
    PODS,
    SECRETS,
    STRATEGIC_MERGE_PATCH,
    ApiError,
    KubeClient,
    Resource,
)
from ._events import EventRecorder, EventType, ObjectReference
from ._fence import NotLeaderError, WriteFence
from ._informer import (
    DEFAULT_WATCH_IDLE_TIMEOUT,
    Informer,
    Observation,
    object_key,
    wait_for_sync,
    watch_timeout_for,
)
from ._install import install_crds
from ._leader import LeaderElectionSettings, LeaderElector, LeaderState
from ._membership import is_foreign, is_member, labelled, nodeset_members
from ._nodeset_size import (
    CONFLICT_ATTEMPTS,
    NodeSetConflictError,
    NodeSetScaler,
    RemovalOfGoneNodesError,
    Resized,
)
from ._pods import bound_pods_informer
from ._records import (
    NodeRecord,
    PodRecord,
    effective_requests,
    nodeclass_from_json,
    nodeset_from_json,
)
from ._resources import NODECLASSES, NODESETS
from ._workqueue import Reconcile, Result, WorkQueue, run_workers

__all__ = [
    "APPLY_PATCH",
    "CONFLICT_ATTEMPTS",
    "CRDS",
    "DEFAULT_REQUEST_TIMEOUT",
    "DEFAULT_WATCH_IDLE_TIMEOUT",
    "EVENTS",
    "JSON",
    "JSON_PATCH",
    "LEASES",
    "MERGE_PATCH",
    "NAMESPACES",
    "NODECLASSES",
    "NODES",
    "NODESETS",
    "PODS",
    "SECRETS",
    "STRATEGIC_MERGE_PATCH",
    "ApiError",
    "EventRecorder",
    "EventType",
    "Informer",
    "KubeClient",
    "LeaderElectionSettings",
    "LeaderElector",
    "LeaderState",
    "NodeRecord",
    "NodeSetConflictError",
    "NodeSetScaler",
    "NotLeaderError",
    "ObjectReference",
    "Observation",
    "PodRecord",
    "Reconcile",
    "RemovalOfGoneNodesError",
    "Resized",
    "Resource",
    "Result",
    "WorkQueue",
    "WriteFence",
    "bound_pods_informer",
    "effective_requests",
    "install_crds",
    "is_foreign",
    "is_member",
    "labelled",
    "nodeclass_from_json",
    "nodeset_from_json",
    "nodeset_members",
    "object_key",
    "run_workers",
    "wait_for_sync",
    "watch_timeout_for",
]
