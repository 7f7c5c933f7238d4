"""Kubernetes access: a thin JSON client, resource locations and CRD installation."""

from ._client import (
    APPLY_PATCH,
    CRDS,
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
from ._install import install_crds
from ._resources import NODECLASSES, NODESETS

__all__ = [
    "APPLY_PATCH",
    "CRDS",
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
    "KubeClient",
    "Resource",
    "install_crds",
]
