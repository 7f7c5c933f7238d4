"""The cluster-autoscaler's externalgrpc CloudProvider, serving NodeSets as node groups."""

from ._cloud_provider import (
    DEFAULT_MAX_SIZE,
    CloudProviderService,
    DurationError,
    RpcError,
    parse_go_duration,
)
from ._server import SERVICE_NAME, ProviderServer, TLSConfigError, TLSFiles
from ._template import template_node

__all__ = [
    "DEFAULT_MAX_SIZE",
    "SERVICE_NAME",
    "CloudProviderService",
    "DurationError",
    "ProviderServer",
    "RpcError",
    "TLSConfigError",
    "TLSFiles",
    "parse_go_duration",
    "template_node",
]
