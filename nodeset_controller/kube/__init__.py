"""Kubernetes access: a thin JSON client, resource locations and CRD installation."""

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
from ._informer import DEFAULT_WATCH_IDLE_TIMEOUT, Informer, object_key, wait_for_sync, watch_timeout_for
from ._install import install_crds
from ._leader import LeaderElectionSettings, LeaderElector, LeaderState
from ._membership import is_foreign, is_member, labelled, nodeset_members
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
    "NotLeaderError",
    "ObjectReference",
    "PodRecord",
    "Reconcile",
    "Resource",
    "Result",
    "WorkQueue",
    "WriteFence",
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
