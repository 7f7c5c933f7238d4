"""The ProviderRegistry on the real API server: one provider per NodeClass generation."""

from __future__ import annotations

from pathlib import Path

import pytest

from nodeset_controller.api import NodeClass
from nodeset_controller.kube import NODECLASSES, KubeClient
from nodeset_controller.providers import ProviderRegistry, SimulatorCloud
from tests.conftest import simulator_nodeclass

pytestmark = pytest.mark.controlplane


def test_a_nodeclass_keeps_its_provider_through_status_and_metadata_writes(kube: KubeClient, tmp_path: Path) -> None:
    """The provider (for libcloud: a driver built from the Secret) is made once per generation; status and
    finalizer writes, which the NodeClassController makes, must not make another."""
    registry = ProviderRegistry(kube, "kube-node", simulator=SimulatorCloud(tmp_path / "simulator"))
    created = kube.create(NODECLASSES, simulator_nodeclass())
    first = registry.provider_for(NodeClass.from_dict(created))

    status = kube.patch(NODECLASSES, "sim", {"status": {"observedGeneration": 1}}, subresource="status")
    labelled = kube.patch(NODECLASSES, "sim", {"metadata": {"labels": {"team": "blue"}}})
    assert len({created["metadata"]["resourceVersion"], status["metadata"]["resourceVersion"]}) == 2
    assert registry.provider_for(NodeClass.from_dict(status)) is first
    assert registry.provider_for(NodeClass.from_dict(labelled)) is first

    changed = kube.patch(NODECLASSES, "sim", {"spec": {"driverOptions": {"bootDelaySeconds": 1}}})
    assert registry.provider_for(NodeClass.from_dict(changed)) is not first
