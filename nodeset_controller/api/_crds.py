"""The CustomResourceDefinitions of NodeClass and NodeSet, shipped as YAML inside this package."""

from __future__ import annotations

from importlib import resources
from typing import Any, cast

import yaml

_CRD_FILES = ("nodeclasses.yaml", "nodesets.yaml")


def crd_manifests() -> list[dict[str, Any]]:
    """Return the CRD manifests as dicts, NodeClass first, ready to be created on an API server."""
    return [cast(dict[str, Any], yaml.safe_load(_read(name))) for name in _CRD_FILES]


def crd_yaml() -> str:
    """Return the CRD manifests as one multi-document YAML stream (what ``kube-node crds`` prints)."""
    return "---\n".join(_read(name) for name in _CRD_FILES)


def _read(name: str) -> str:
    return resources.files(__package__).joinpath("crds", name).read_text(encoding="utf-8")
