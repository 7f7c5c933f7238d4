"""Where kube-node's own kinds live in the API."""

from __future__ import annotations

from ..api import GROUP, NODECLASS_PLURAL, NODESET_PLURAL, VERSION
from ._client import Resource

NODECLASSES = Resource(GROUP, VERSION, NODECLASS_PLURAL)
NODESETS = Resource(GROUP, VERSION, NODESET_PLURAL)
