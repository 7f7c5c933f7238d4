"""The cluster identity ``kube-node run`` tags machines with: the kube-system namespace's uid unless
--cluster-name says otherwise, and no start at all when it can be neither read nor given.

Two clusters in one cloud account that shared a default name would each collect the other's machines as
orphans; a uid is unique per cluster."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import yaml

from kube_node.controlplane import ControlPlane
from nodeset_controller.kube import NAMESPACES, NODECLASSES, NODES, KubeClient, Resource
from tests.conftest import Kubectl, eventually, managed_node, simulator_nodeclass
from tests.operations._process import REPO, KubeNodeProcess

pytestmark = pytest.mark.controlplane

SERVICE_ACCOUNTS = Resource("", "v1", "serviceaccounts", namespaced=True)


def _clusters_of_machines(simulator: Path) -> list[str]:
    """The cluster tag of every machine in the simulated cloud account (its SQLite database)."""
    database = simulator / "machines.db"
    if not database.exists():
        return []
    with sqlite3.connect(f"file:{database}?mode=ro", uri=True) as db:
        try:
            return [row[0] for row in db.execute("SELECT cluster FROM machines")]
        except sqlite3.OperationalError:  # the table is not there yet
            return []


@pytest.mark.parametrize("explicit", [None, "prod-eu"], ids=["bare", "--cluster-name"])
def test_machines_are_tagged_with_the_kube_system_uid_unless_a_cluster_name_is_given(
    control_plane: ControlPlane, kube: KubeClient, tmp_path: Path, explicit: str | None
) -> None:
    uid = kube.get(NAMESPACES, "kube-system")["metadata"]["uid"]
    simulator = tmp_path / "simulator"
    flags = [
        f"--simulator-dir={simulator}",
        "--grpc-address=",
        f"--leader-election-lease-name=id-{uuid.uuid4().hex[:8]}",
    ]
    if explicit:
        flags.append(f"--cluster-name={explicit}")
    process = KubeNodeProcess(control_plane, tmp_path, "kube-node", *flags)
    try:
        kube.create(NODECLASSES, simulator_nodeclass())
        kube.create(NODES, managed_node("tagged"))
        clusters = eventually(lambda: _clusters_of_machines(simulator), timeout=30, what="the Node's machine")
    finally:
        process.close()
    assert clusters == [explicit or uid]
    expected = (
        f"cluster identity {explicit} (from --cluster-name"
        if explicit
        else f"cluster identity {uid} (the uid of namespace kube-system; no --cluster-name given)"
    )
    assert expected in process.log()


def test_without_a_cluster_name_or_the_right_to_read_kube_system_kube_node_does_not_start(
    control_plane: ControlPlane, kube: KubeClient, kubectl: Kubectl, tmp_path: Path
) -> None:
    account = f"nobody-{uuid.uuid4().hex[:6]}"
    kube.create(SERVICE_ACCOUNTS, {"metadata": {"name": account}}, namespace="default")
    token = kubectl.run("create", "token", account, "-n", "default", "--duration=1h").stdout.strip()
    config = control_plane.kubeconfig_dict()
    config["users"] = [{"name": account, "user": {"token": token}}]
    config["contexts"][0]["context"]["user"] = account
    kubeconfig = tmp_path / "nobody.kubeconfig"
    kubeconfig.write_text(yaml.safe_dump(config))
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "kube_node",
            "run",
            "--log-format=json",
            f"--kubeconfig={kubeconfig}",
            f"--simulator-dir={tmp_path / 'simulator'}",
            "--grpc-address=",
            "--status-address=",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=REPO,
    )
    assert result.returncode == 1, result.stderr
    last = json.loads(result.stderr.splitlines()[-1])
    assert last["level"] == "error"
    message = last["msg"]
    assert "cannot read namespace kube-system" in message
    assert "403 Forbidden" in message
    assert "--cluster-name" in message and "get on namespaces/kube-system" in message
    assert "campaigning" not in result.stderr  # it stopped before anything else
    assert not _clusters_of_machines(tmp_path / "simulator")
