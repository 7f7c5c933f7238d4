"""Scaling a NodeSet of real kubelets down drains the victim through the Eviction API: its real pod is
evicted only while the PodDisruptionBudget allows it, and is rescheduled on the other Node."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from nodeset_controller.api import LABEL_NODESET
from nodeset_controller.controllers import Manager
from nodeset_controller.kube import NODECLASSES, NODESETS, KubeClient, Resource
from nodeset_controller.providers import BUSYBOX_IMAGE
from tests.conftest import eventually, nodeset_manifest

from .test_local_nodeset import PODS, local_nodeclass, ready
from .test_real_node_failures import members

pytestmark = [pytest.mark.controlplane, pytest.mark.realnodes]

DEPLOYMENTS = Resource("apps", "v1", "deployments", namespaced=True)
PDBS = Resource("policy", "v1", "poddisruptionbudgets", namespaced=True)


def web(replicas: int) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web"},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {
                    "nodeSelector": {LABEL_NODESET: "pdb"},
                    "automountServiceAccountToken": False,
                    "terminationGracePeriodSeconds": 1,
                    # one per Node while there are two
                    "topologySpreadConstraints": [
                        {
                            "maxSkew": 1,
                            "topologyKey": "kubernetes.io/hostname",
                            "whenUnsatisfiable": "DoNotSchedule",
                            "nodeTaintsPolicy": "Honor",  # a cordoned Node is no place to spread to
                            "labelSelector": {"matchLabels": {"app": "web"}},
                        }
                    ],
                    "containers": [
                        {
                            "name": "busybox",
                            "image": BUSYBOX_IMAGE,
                            "imagePullPolicy": "Never",
                            "command": ["sh", "-c", "trap 'exit 0' TERM; while true; do sleep 1; done"],
                            "resources": {"requests": {"cpu": "100m", "memory": "32Mi"}},
                        }
                    ],
                },
            },
        },
    }


def serving(kube: KubeClient, namespace: str) -> list[dict[str, Any]]:
    """The web pods Running and not being deleted."""
    return [
        p
        for p in kube.list(PODS, namespace, labelSelector="app=web")["items"]
        if p["status"].get("phase") == "Running" and not p["metadata"].get("deletionTimestamp")
    ]


def test_the_victims_real_pod_is_evicted_within_its_pdb_and_rescheduled_on_the_other_node(
    kube: KubeClient, namespace: str, local_manager: Manager
) -> None:
    kube.create(NODECLASSES, local_nodeclass())
    kube.create(NODESETS, nodeset_manifest("pdb", 2, "local", deletePolicy="Newest"))
    nodes = eventually(
        lambda: len(m := members(kube, "pdb")) == 2 and all(ready(n) for n in m) and m,
        timeout=90,
        what="two real Nodes Ready",
    )
    kube.create(
        PDBS,
        {"metadata": {"name": "web"}, "spec": {"minAvailable": 1, "selector": {"matchLabels": {"app": "web"}}}},
        namespace,
    )
    kube.create(DEPLOYMENTS, web(2), namespace)
    pods = eventually(lambda: len(p := serving(kube, namespace)) == 2 and p, timeout=60, what="a web pod per Node")
    assert {p["spec"]["nodeName"] for p in pods} == {n["metadata"]["name"] for n in nodes}

    # While the NodeSet shrinks, at least one web pod serves at every moment (what the PDB promises).
    fewest = [2]
    stop = threading.Event()

    def watch() -> None:
        while not stop.is_set():
            fewest[0] = min(fewest[0], len(serving(kube, namespace)))
            time.sleep(0.05)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        kube.patch(NODESETS, "pdb", {"spec": {"replicas": 1}})
        (survivor,) = eventually(lambda: len(m := members(kube, "pdb")) == 1 and m, timeout=120, what="one Node left")
        moved = eventually(
            lambda: (
                len(p := serving(kube, namespace)) == 2
                and all(x["spec"]["nodeName"] == survivor["metadata"]["name"] for x in p)
                and p
            ),
            timeout=60,
            what="both web pods Running on the survivor",
        )
    finally:
        stop.set()
        watcher.join()
    assert fewest[0] >= 1, "the drain took every web pod down at once, past the PodDisruptionBudget"
    assert len(moved) == 2
