"""Installing kube-node's CRDs on an API server."""

from __future__ import annotations

import time
from typing import Any

from ..api import crd_manifests
from ._client import CRDS, ApiError, KubeClient


def install_crds(client: KubeClient, timeout: float = 30.0) -> list[str]:
    """Create or update the NodeClass and NodeSet CRDs and wait until both are Established.

    Returns the CRD names. An update keeps the server's resourceVersion, so a concurrent writer makes it
    fail with a Conflict rather than be overwritten.
    """
    names: list[str] = []
    for manifest in crd_manifests():
        name = manifest["metadata"]["name"]
        names.append(name)
        try:
            client.create(CRDS, manifest)
        except ApiError as error:
            if not error.already_exists:
                raise
            current = client.get(CRDS, name)
            manifest["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"]
            client.replace(CRDS, name, manifest)
    deadline = time.monotonic() + timeout
    for name in names:
        while not _established(client.get(CRDS, name)):
            if time.monotonic() > deadline:
                raise TimeoutError(f"CRD {name} was not Established within {timeout:.0f} s")
            time.sleep(0.1)
    return names


def _established(crd: dict[str, Any]) -> bool:
    conditions = (crd.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Established" and c.get("status") == "True" for c in conditions)
