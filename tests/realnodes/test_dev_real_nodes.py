"""`kube-node dev up --real-nodes`: the demo NodeSet's machines are real kubelets on this host, and `dev down`
takes them away with the control plane."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from kube_node._dev import local_machines_dir
from kube_node.controlplane import pid_alive
from nodeset_controller.kube import NODES, KubeClient
from nodeset_controller.providers import LocalMachines
from tests.conftest import eventually

from .conftest import RealHost

pytestmark = [pytest.mark.controlplane, pytest.mark.realnodes]


def kube_node(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "kube_node", *args], capture_output=True, text=True, env=env, timeout=600, check=False
    )


def test_dev_up_with_real_nodes_brings_the_demo_nodeset_up_on_real_kubelets_and_dev_down_removes_them(
    real_host: RealHost, tmp_path: Path
) -> None:
    state_dir = tmp_path / "dev"
    env = dict(os.environ)  # `dev up` finds (and builds, once) the pinned binaries and the kubelet itself
    up = kube_node("dev", "up", "--real-nodes", "--state-dir", str(state_dir), env=env)
    machines = LocalMachines(local_machines_dir(state_dir))
    try:
        assert up.returncode == 0, up.stderr + up.stdout
        assert "the demo NodeSet's real kubelets" in up.stdout
        state = json.loads((state_dir / "state.json").read_text())
        assert state["real_nodes"] is True
        kube = KubeClient.from_kubeconfig(state["kubeconfig"])

        def ready_real_nodes() -> list[str]:
            nodes = kube.list(NODES, labelSelector="kube-node.io/nodeset=demo")["items"]
            ready = [
                n["metadata"]["name"]
                for n in nodes
                if any(c["type"] == "Ready" and c["status"] == "True" for c in n["status"].get("conditions") or [])
                and n["status"].get("nodeInfo", {}).get("kubeletVersion") == "v1.36.3"  # a real kubelet's report
            ]
            return ready if len(ready) == 2 else []

        names = eventually(ready_real_nodes, timeout=120, what="the demo NodeSet's two real kubelets Ready")
        assert len(machines.machines()) == 2, names
    finally:
        down = kube_node("dev", "down", "--state-dir", str(state_dir), env=env)
    assert down.returncode == 0, down.stderr
    assert not pid_alive(state["pid"])
    assert machines.machines() == [], "dev down destroys every local machine"
