"""The NodeClass examples of docs/nodeclasses.md, read from the doc itself: the fenced ``yaml`` blocks under each
cloud's ``##`` heading, parsed into the Secret's data and the NodeClass. A changed example is a changed test
input."""

from __future__ import annotations

import pathlib
import re
from dataclasses import dataclass
from typing import Any

import yaml

from nodeset_controller.api import NodeClass

DOC = pathlib.Path(__file__).parents[3] / "docs" / "nodeclasses.md"
#: the heading of each cloud's section in the doc, by libcloud provider name
HEADINGS = {
    "ec2": "Amazon EC2",
    "gce": "Google Compute Engine",
    "digitalocean": "DigitalOcean",
    "openstack": "OpenStack",
}
_FENCE = re.compile(r"^```yaml\n(.*?)^```", re.MULTILINE | re.DOTALL)


@dataclass(frozen=True)
class Example:
    """One cloud's example: the NodeClass (as written, and as kube-node reads it) and its Secret's data."""

    heading: str
    manifest: dict[str, Any]
    nodeclass: NodeClass
    credentials: dict[str, str]


def section(heading: str) -> str:
    """The text under ``## heading``, up to the next ``##`` heading."""
    text = DOC.read_text()
    match = re.search(rf"^## {re.escape(heading)}\n(.*?)(?=^## |\Z)", text, re.MULTILINE | re.DOTALL)
    assert match is not None, f"docs/nodeclasses.md has no section {heading!r}"
    return match.group(1)


def example(provider: str) -> Example:
    """The example NodeClass of ``provider``'s section, and the data of the Secret it refers to."""
    heading = HEADINGS[provider]
    documents = [
        doc for block in _FENCE.findall(section(heading)) for doc in yaml.safe_load_all(block) if doc is not None
    ]
    [manifest] = [doc for doc in documents if doc.get("kind") == "NodeClass"]
    ref = manifest["spec"]["credentialsSecretRef"]
    [secret] = [
        doc
        for doc in documents
        if doc.get("kind") == "Secret"
        and (doc["metadata"]["name"], doc["metadata"]["namespace"]) == (ref["name"], ref["namespace"])
    ]
    assert manifest["spec"]["provider"] == provider, f"the {heading} example is not for {provider}"
    credentials = {key: str(value) for key, value in secret["stringData"].items()}
    return Example(heading, manifest, NodeClass.from_dict(manifest), credentials)
