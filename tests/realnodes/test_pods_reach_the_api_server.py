"""Pods on real local Nodes reach the API server at the `kubernetes` Service address, through the DNAT of the
machine's user-data, and nothing else of the Service range; destroying the machine removes the rule."""

from __future__ import annotations

import ipaddress
import subprocess
from pathlib import Path
from typing import Any

import pytest

from kube_node.controlplane._controlplane import SERVICE_CLUSTER_IP_RANGE
from nodeset_controller.controllers import Manager
from nodeset_controller.kube import NODECLASSES, NODESETS, KubeClient
from nodeset_controller.providers import BUSYBOX_IMAGE
from tests.conftest import eventually, nodeset_manifest

from .test_local_nodeset import PODS, local_nodeclass, ready
from .test_real_node_failures import machines_of, members

pytestmark = [pytest.mark.controlplane, pytest.mark.realnodes]


def probe(name: str, node: str, address: str) -> dict[str, Any]:
    """A pod that exits 0 if it can open a TCP connection to ``address`` port 443 within 3 s."""
    return {
        "metadata": {"name": name},
        "spec": {
            "nodeSelector": {"kubernetes.io/hostname": node},
            "restartPolicy": "Never",
            "automountServiceAccountToken": False,
            "containers": [
                {
                    "name": "probe",
                    "image": BUSYBOX_IMAGE,
                    "imagePullPolicy": "Never",
                    "command": ["sh", "-c", f"nc -w 3 {address} 443 < /dev/null"],
                }
            ],
        },
    }


def nat_rules() -> str:
    return subprocess.run(["iptables-save", "-t", "nat"], capture_output=True, text=True, check=False).stdout


def test_a_pod_reaches_the_api_server_by_its_service_address_and_nothing_else_of_the_range(
    kube: KubeClient, namespace: str, local_manager: Manager
) -> None:
    kube.create(NODECLASSES, local_nodeclass())
    kube.create(NODESETS, nodeset_manifest("api", 1, "local"))
    (node,) = eventually(
        lambda: len(m := members(kube, "api")) == 1 and ready(m[0]) and m, timeout=90, what="the real Node Ready"
    )
    name = node["metadata"]["name"]
    service = ipaddress.ip_network(SERVICE_CLUSTER_IP_RANGE)
    kubernetes, other = str(next(service.hosts())), str(list(service.hosts())[1])
    kube.create(PODS, probe("to-api-server", name, kubernetes), namespace)
    kube.create(PODS, probe("to-elsewhere", name, other), namespace)

    def phases() -> dict[str, str] | None:
        found = {p["metadata"]["name"]: p["status"].get("phase") for p in kube.list(PODS, namespace)["items"]}
        return found if all(v in ("Succeeded", "Failed") for v in found.values()) and len(found) == 2 else None

    finished = eventually(phases, timeout=60, what="both probes finished")
    machine = next(m for m in machines_of(local_manager).machines() if m.node_name == name)
    log = (Path(machine.directory) / "user-data.log").read_text(errors="replace")[-2000:]
    assert finished == {"to-api-server": "Succeeded", "to-elsewhere": "Failed"}, (
        f"{finished}\nnat rules:\n{nat_rules()}\nuser-data log:\n{log}"
    )
    assert "kube-node:local-" in nat_rules()

    kube.patch(NODESETS, "api", {"spec": {"replicas": 0}})
    eventually(lambda: not members(kube, "api"), timeout=90, what="the Node gone")
    assert "kube-node:local-" not in nat_rules(), "the machine's DNAT outlived it"
