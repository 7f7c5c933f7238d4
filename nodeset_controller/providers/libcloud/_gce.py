"""GCE: labels (``ex_labels``; values sanitised to GCE's ``[a-z0-9_-]{0,63}``, ``.`` becoming ``_``) for people
and the console, and the exact values again as instance metadata (``ex_metadata``, next to ``user-data``); read
back from the metadata, falling back to the labels (cut at 63 characters: see the package's docstring).

The driver caches its OAuth2 token in a file, by default under ``~``, and says nothing when it cannot write there
(a read-only root filesystem): every driver would then fetch a token of its own. kube-node points the cache at a
directory of its own under the temporary directory (``TMPDIR``; the chart mounts one at ``/tmp``), readable by
this user only, unless driverOptions set ``credential_file``.

Without a credentials Secret, the driver authenticates as the machine or pod it runs in: libcloud's internal
authentication (``auth_type="GCE"``) takes its tokens from the metadata server, which on GKE with workload
identity answers for the Google service account the Kubernetes ServiceAccount is bound to."""

from __future__ import annotations

import hashlib
import re
import tempfile
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .._machine import TAG_CLUSTER, ErrorClass, MachineSpec, ProviderError
from ._dialect import OUR_TAGS, Dialect, Keyless, string_dict
from ._errors import conflict

#: libcloud's GoogleAuthType.GCE: tokens from the metadata server
METADATA_AUTH = "GCE"


class GceDialect(Dialect):
    """GCE: labels are sanitised, so the exact tags also go into instance metadata, next to user-data."""

    reads_tags = True
    image_hint = "not in this project nor in GCE's public image projects (by name or family prefix)"
    _LABEL = re.compile(r"[^a-z0-9_-]")
    _MAX = 63  #: characters in a label value

    def list_kwargs(self, cluster: str) -> dict[str, Any]:
        return {"ex_zone": "all"}

    def keyless(self, options: Mapping[str, Any], timeout: float) -> Keyless | None:
        auth_type = options.get("auth_type", METADATA_AUTH)
        if auth_type != METADATA_AUTH:
            raise ProviderError(
                f"gce: driverOptions auth_type {auth_type!r} needs a credentials Secret; without one, the "
                f"metadata server's credentials are used (auth_type {METADATA_AUTH!r})",
                error_class=ErrorClass.INVALID_CONFIGURATION,
                code="INVALID_DRIVER_OPTIONS",
            )
        # The user id names the metadata server's service account: "default", the one the instance (or, through
        # workload identity, the pod's ServiceAccount) runs as. There is no key, but libcloud's connection takes
        # its arguments by position and needs one, so it is empty.
        return Keyless(
            source="the GCE metadata server (the instance's service account, or GKE workload identity's)",
            args=("default", ""),
            kwargs={"auth_type": METADATA_AUTH},
        )

    def driver_defaults(self, key: str | None, given: Mapping[str, Any]) -> dict[str, Any]:
        # One file per account, project and kind of authentication (the name is a digest: key may be anything),
        # shared by the drivers of every thread, so that they share one token.
        seed = f"{key}\0{given.get('project', '')}\0{given.get('auth_type', '')}"
        digest = hashlib.sha256(seed.encode()).hexdigest()[:16]
        return {"credential_file": str(token_cache_dir() / f"token-{digest}.json")}

    def _label(self, value: str) -> str:
        return self._LABEL.sub("-", value.lower().replace(".", "_"))[: self._MAX]

    def _exact(self, node: Any) -> dict[str, str]:
        metadata = node.extra.get("metadata") or {}
        items = (metadata.get("items") or []) if isinstance(metadata, dict) else []
        return {str(i["key"]): str(i["value"]) for i in items if isinstance(i, dict) and i.get("key") in OUR_TAGS}

    def read_tags(self, node: Any) -> dict[str, str]:
        tags = self._exact(node)
        labels = string_dict(node.extra.get("labels"))
        for key in OUR_TAGS:
            if key not in tags and key in labels:
                tags[key] = labels[key].replace("_", ".")
        return tags

    def owns(self, node: Any, cluster: str) -> bool:
        exact = self._exact(node).get(TAG_CLUSTER)
        if exact is not None:
            return exact == cluster
        return string_dict(node.extra.get("labels")).get(TAG_CLUSTER) == self._label(cluster)

    def cut_tags(self, node: Any) -> frozenset[str]:
        exact = self._exact(node)
        labels = string_dict(node.extra.get("labels"))
        return frozenset(key for key in OUR_TAGS if key not in exact and len(labels.get(key, "")) >= self._MAX)

    def add_user_data(
        self, kwargs: dict[str, Any], extra: dict[str, Any], user_data: str, driver: Any, provider: str
    ) -> None:
        metadata = _gce_metadata(extra.pop("ex_metadata", None))
        if user_data:
            if "user-data" in metadata:
                raise conflict(provider, "ex_metadata['user-data']", "userData")
            metadata["user-data"] = user_data
        kwargs["ex_metadata"] = metadata

    def add_tags(self, kwargs: dict[str, Any], extra: dict[str, Any], spec: MachineSpec) -> None:
        kwargs["ex_metadata"] = {**kwargs.get("ex_metadata", {}), **spec.tags}
        theirs = string_dict(extra.pop("ex_labels", None) or {})
        kwargs["ex_labels"] = {**theirs, **{key: self._label(value) for key, value in spec.tags.items()}}

    def find_image(self, driver: Any, wanted: str) -> Any | None:
        # Searches this project and the public image projects, by name, family prefix or URL.
        return driver.ex_get_image(wanted)


def _gce_metadata(value: Any) -> dict[str, str]:
    """The user's ex_metadata, in any of the forms libcloud's GCE driver accepts, as a flat dict."""
    if not value:
        return {}
    if isinstance(value, dict) and set(value) == {"items"}:
        value = value["items"]
    if isinstance(value, dict) and set(value) == {"key", "value"}:
        value = [value]
    if isinstance(value, list):
        flat: dict[str, str] = {}
        for item in value:
            if isinstance(item, dict) and set(item) == {"key", "value"}:
                flat[str(item["key"])] = str(item["value"])
            elif isinstance(item, dict) and len(item) == 1:
                flat.update(string_dict(item))
            else:
                raise ProviderError(
                    "gce: extraCreateArgs ex_metadata has an item that is neither {key, value} nor {name: value}",
                    error_class=ErrorClass.INVALID_CONFIGURATION,
                    code="INVALID_CREATE_ARGUMENT",
                )
        return flat
    if isinstance(value, dict):
        return string_dict(value)
    raise ProviderError(
        "gce: extraCreateArgs ex_metadata must be an object or a list",
        error_class=ErrorClass.INVALID_CONFIGURATION,
        code="INVALID_CREATE_ARGUMENT",
    )


_CACHE_DIRS: dict[str, Path] = {}
_CACHE_LOCK = threading.Lock()


def token_cache_dir() -> Path:
    """This process's directory for GCE's token cache: made once (mode 0700) in the temporary directory."""
    base = tempfile.gettempdir()
    with _CACHE_LOCK:
        if base not in _CACHE_DIRS:
            _CACHE_DIRS[base] = Path(tempfile.mkdtemp(prefix="kube-node-gce-auth-", dir=base))
        return _CACHE_DIRS[base]
