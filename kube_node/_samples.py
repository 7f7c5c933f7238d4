"""The sample NodeClass and NodeSet that ``kube-node dev up`` applies."""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from nodeset_controller.kube import NODECLASSES, NODESETS, ApiError, KubeClient

SAMPLE_FILES = ("nodeclass-simulator.yaml", "nodeset-sample.yaml", "nodeset-autoscaled.yaml")
#: Where the sample manifests are on disk (node-sample.yaml is there for people to create by hand).
SAMPLES_DIR = Path(__file__).resolve().parent / "samples"


def sample_manifests() -> list[dict[str, Any]]:
    """The sample objects, NodeClass first."""
    docs: list[dict[str, Any]] = []
    for name in SAMPLE_FILES:
        text = resources.files(__package__).joinpath("samples", name).read_text(encoding="utf-8")
        docs.extend(doc for doc in yaml.safe_load_all(text) if doc)
    return docs


def apply_samples(client: KubeClient) -> list[str]:
    """Create the samples that do not exist yet (existing ones are left as the user changed them)."""
    created: list[str] = []
    for doc in sample_manifests():
        resource = NODECLASSES if doc["kind"] == "NodeClass" else NODESETS
        try:
            client.create(resource, doc)
            created.append(f"{doc['kind']}/{doc['metadata']['name']}")
        except ApiError as error:
            if not error.already_exists:
                raise
    return created
