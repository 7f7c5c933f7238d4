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


#: The NodeClass of real local machines, and the NodeSet that uses it with ``real_nodes``.
LOCAL_NODECLASS_FILE = "nodeclass-local.yaml"
REAL_NODES_NODESET = "demo"


def sample_manifests(*, real_nodes: bool = False) -> list[dict[str, Any]]:
    """The sample objects, NodeClasses first; with ``real_nodes`` also the local NodeClass, which the demo
    NodeSet then uses."""
    names = (LOCAL_NODECLASS_FILE, *SAMPLE_FILES) if real_nodes else SAMPLE_FILES
    docs: list[dict[str, Any]] = []
    for name in names:
        text = resources.files(__package__).joinpath("samples", name).read_text(encoding="utf-8")
        docs.extend(doc for doc in yaml.safe_load_all(text) if doc)
    if real_nodes:
        local = next(
            d["metadata"]["name"] for d in docs if d["kind"] == "NodeClass" and d["spec"]["provider"] == "local"
        )
        for doc in docs:
            if doc["kind"] == "NodeSet" and doc["metadata"]["name"] == REAL_NODES_NODESET:
                doc["spec"]["nodeClassName"] = local
                doc["spec"]["replicas"] = 2  # two real kubelets are plenty for one machine
    return docs


def apply_samples(client: KubeClient, *, real_nodes: bool = False) -> list[str]:
    """Create the samples that do not exist yet (existing ones are left as the user changed them)."""
    created: list[str] = []
    for doc in sample_manifests(real_nodes=real_nodes):
        resource = NODECLASSES if doc["kind"] == "NodeClass" else NODESETS
        try:
            client.create(resource, doc)
            created.append(f"{doc['kind']}/{doc['metadata']['name']}")
        except ApiError as error:
            if not error.already_exists:
                raise
    return created
