"""The real cluster-autoscaler scales a ClusterAutoscaler-mode NodeSet of real local kubelets from 0 for a
pending real pod, and back to 0 once the pod is gone."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kube_node.controlplane import ControlPlane
from nodeset_controller.api import LABEL_NODESET
from nodeset_controller.controllers import Manager
from nodeset_controller.kube import NODECLASSES, NODES, NODESETS, KubeClient, Resource
from nodeset_controller.providers import BUSYBOX_IMAGE, LocalMachines
from tests.conftest import Provider, eventually, nodeset_manifest, serving_grpc
from tests.e2e.test_cluster_autoscaler import Autoscaler

from .test_local_nodeset import PODS, local_nodeclass

pytestmark = [pytest.mark.controlplane, pytest.mark.realnodes]

DEPLOYMENTS = Resource("apps", "v1", "deployments", namespaced=True)


@pytest.fixture
def local_provider(local_manager: Manager, tmp_path: Path) -> Iterator[Provider]:
    """The gRPC server over the local machines' Manager, as the provider fixture serves the simulator's."""
    with serving_grpc(local_manager, tmp_path / "tls") as serving:
        yield serving


def workload(replicas: int) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "real-load"},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": "real-load"}},
            "template": {
                "metadata": {"labels": {"app": "real-load"}},
                "spec": {
                    "nodeSelector": {LABEL_NODESET: "ca"},
                    "automountServiceAccountToken": False,
                    "terminationGracePeriodSeconds": 1,
                    "containers": [
                        {
                            "name": "busybox",
                            "image": BUSYBOX_IMAGE,
                            "imagePullPolicy": "Never",
                            "command": ["sleep", "3600"],
                            "resources": {"requests": {"cpu": "500m", "memory": "64Mi"}},
                        }
                    ],
                },
            },
        },
    }


def test_the_cluster_autoscaler_grows_a_nodeset_of_real_kubelets_from_zero_and_shrinks_it_back(
    kube: KubeClient,
    control_plane: ControlPlane,
    namespace: str,
    local_manager: Manager,
    local_provider: Provider,
    autoscaler_binary: Path,
    tmp_path: Path,
) -> None:
    kube.create(NODECLASSES, local_nodeclass())
    kube.create(
        NODESETS,
        nodeset_manifest("ca", 0, "local", minReplicas=0, maxReplicas=2, autoscaling={"mode": "ClusterAutoscaler"}),
    )
    autoscaler = Autoscaler(autoscaler_binary, control_plane, local_provider, tmp_path, "real-nodes")
    assert local_manager.settings.local_machines_dir is not None
    machines = LocalMachines(local_manager.settings.local_machines_dir)
    try:
        kube.create(DEPLOYMENTS, workload(1), namespace)

        def running() -> dict[str, Any] | None:
            pods = [p for p in kube.list(PODS, namespace)["items"] if p["status"].get("phase") == "Running"]
            return pods[0] if pods else None

        pod = eventually(running, timeout=150, what=f"the pending pod Running on a real Node\n{autoscaler.tail()}")
        (node,) = kube.list(NODES, labelSelector=f"{LABEL_NODESET}=ca")["items"]
        assert pod["spec"]["nodeName"] == node["metadata"]["name"]
        assert node["status"]["nodeInfo"]["kubeletVersion"] == "v1.36.3", "a real kubelet runs it"
        assert [m.node_name for m in machines.machines()] == [node["metadata"]["name"]]

        kube.patch(DEPLOYMENTS, "real-load", {"spec": {"replicas": 0}}, namespace)
        eventually(
            lambda: (
                kube.get(NODESETS, "ca")["spec"]["replicas"] == 0
                and not kube.list(NODES, labelSelector=f"{LABEL_NODESET}=ca")["items"]
            ),
            timeout=150,
            what=f"the empty real Node scaled away\n{autoscaler.tail()}",
        )
        eventually(lambda: not machines.machines(), timeout=30, what="its machine destroyed")
    finally:
        autoscaler.stop()
