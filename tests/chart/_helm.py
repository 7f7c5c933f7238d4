"""The real helm, pointed at the session's control plane, with its caches in a scratch directory."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import yaml

from kube_node.controlplane import Binaries, ControlPlane

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "kube-node"


class Helm:
    """``helm`` with KUBECONFIG set to the test control plane's admin kubeconfig."""

    def __init__(self, binaries: Binaries, control_plane: ControlPlane, home: Path) -> None:
        self.path = binaries.helm
        self.env = {
            **os.environ,
            "KUBECONFIG": str(control_plane.kubeconfig),
            "HELM_CACHE_HOME": str(home / "cache"),
            "HELM_CONFIG_HOME": str(home / "config"),
            "HELM_DATA_HOME": str(home / "data"),
        }

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [str(self.path), *args], capture_output=True, text=True, env=self.env, timeout=120, check=False
        )
        if check and result.returncode != 0:
            raise AssertionError(f"helm {' '.join(args)} failed ({result.returncode}):\n{result.stderr}")
        return result

    def template(self, *args: str, namespace: str = "kube-node-system") -> list[dict[str, Any]]:
        """The chart rendered with ``args`` (--set ...), as a list of objects."""
        out = self.run("template", "kn", str(CHART), "--namespace", namespace, *args).stdout
        return [doc for doc in yaml.safe_load_all(out) if doc]
