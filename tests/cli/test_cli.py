"""The kube-node command: crds, --help, and the dev environment's up and down."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
import yaml

from kube_node.controlplane import Binaries, pid_alive
from nodeset_controller.api import crd_manifests
from tests.conftest import eventually


def kube_node(*args: str, env: dict[str, str] | None = None, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "kube_node", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
        check=False,
    )


def test_crds_prints_both_manifests() -> None:
    result = kube_node("crds")
    assert result.returncode == 0, result.stderr
    assert list(yaml.safe_load_all(result.stdout)) == crd_manifests()


def test_help_lists_the_subcommands() -> None:
    result = kube_node("--help")
    assert result.returncode == 0
    for command in ("crds", "dev"):
        assert command in result.stdout
    dev_help = kube_node("dev", "--help").stdout
    for command in ("up", "down", "serve"):
        assert command in dev_help


def test_run_help_says_where_the_cluster_identity_comes_from() -> None:
    text = " ".join(kube_node("run", "--help").stdout.split())
    assert "--cluster-name" in text
    assert "default: the uid of the kube-system namespace, read at start-up" in text
    assert "kube-node does not start if it can read neither" in text


def test_unknown_subcommand_is_a_usage_error() -> None:
    result = kube_node("frobnicate")
    assert result.returncode == 2
    assert "invalid choice: 'frobnicate'" in result.stderr


@pytest.mark.controlplane
def test_dev_up_serves_the_samples_and_dev_down_stops_everything(binaries: Binaries, tmp_path: Path) -> None:
    state_dir = tmp_path / "dev"
    env = {**os.environ, "KUBE_NODE_BIN_PATH": os.pathsep.join(binaries.path_dirs)}
    up = kube_node("dev", "up", "--state-dir", str(state_dir), env=env)
    try:
        assert up.returncode == 0, up.stderr
        assert f"source {state_dir / 'env.sh'}" in up.stdout
        state = json.loads((state_dir / "state.json").read_text())
        kubectl_env = {**os.environ, "KUBECONFIG": state["kubeconfig"]}
        got = subprocess.run(
            [str(binaries.kubectl), "get", "nodesets", "demo", "-o", "json"],
            capture_output=True,
            text=True,
            env=kubectl_env,
            check=True,
        )
        assert json.loads(got.stdout)["spec"]["nodeClassName"] == "simulated-4cpu"
        assert f"{state['status']}/metrics" in up.stdout

        def demo_metrics() -> bool:
            with urllib.request.urlopen(state["status"] + "/metrics", timeout=5) as response:
                return 'kube_node_nodeset_desired_replicas{nodeset="demo"}' in response.read().decode()

        eventually(demo_metrics, what="the demo NodeSet on /metrics")
        # A second `up` finds the running environment instead of starting another.
        again = kube_node("dev", "up", "--state-dir", str(state_dir), env=env)
        assert again.returncode == 0
        assert json.loads((state_dir / "state.json").read_text())["pid"] == state["pid"]
        component_pids = [
            int(p)
            for p in subprocess.run(
                ["pgrep", "-f", str(state_dir / "controlplane")], capture_output=True, text=True, check=False
            ).stdout.split()
        ]
        assert len(component_pids) == 4  # etcd, kube-apiserver, kube-scheduler, kube-controller-manager
    finally:
        down = kube_node("dev", "down", "--state-dir", str(state_dir), env=env)
    assert down.returncode == 0, down.stderr
    assert "stopped" in down.stdout
    assert not pid_alive(state["pid"])
    eventually(lambda: not [pid for pid in component_pids if pid_alive(pid)], timeout=15, what="components gone")
    assert kube_node("dev", "down", "--state-dir", str(state_dir), env=env).stdout.strip() == (
        "kube-node dev environment is not running"
    )
