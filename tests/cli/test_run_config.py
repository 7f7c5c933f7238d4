"""``kube-node run`` settings: flags, KUBE_NODE_* environment variables and a YAML --config file."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from kube_node._run import RunOptions
from kube_node.cli import parse, run_options


def _config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "kube-node.yaml"
    path.write_text(text)
    return path


def test_a_config_file_sets_any_flag_by_its_name(tmp_path: Path) -> None:
    config = _config(
        tmp_path,
        "cluster-name: prod\n"
        "workers: 4\n"
        "leader-elect: false\n"
        "grpc-insecure: true\n"
        "status-address: 127.0.0.1:9090\n"
        "leader-election-lease-duration: 30\n"
        "autoscaler-expander: price\n",
    )
    options = run_options(parse(["run", "--config", str(config)]))
    assert options.cluster == "prod"
    assert options.workers == 4
    assert options.leader_election.enabled is False
    assert options.leader_election.lease_duration == 30.0
    assert options.grpc_tls is None
    assert options.status_address == "127.0.0.1:9090"
    assert options.pending_pod_autoscaler.expander == "price"


def test_the_command_line_beats_the_config_file_which_beats_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KUBE_NODE_WORKERS", "2")
    monkeypatch.setenv("KUBE_NODE_CLUSTER_NAME", "from-env")
    monkeypatch.setenv("KUBE_NODE_SWEEP_INTERVAL", "7")
    config = _config(tmp_path, "workers: 4\ncluster-name: from-file\ngrpc-insecure: true\n")
    options = run_options(parse(["run", "--config", str(config), "--workers", "8"]))
    assert options.workers == 8
    assert options.cluster == "from-file"
    assert options.sweep_interval == 7.0


def test_the_environment_names_the_config_file_and_switches_booleans(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KUBE_NODE_CONFIG", str(_config(tmp_path, "workers: 3\n")))
    monkeypatch.setenv("KUBE_NODE_LEADER_ELECT", "false")
    monkeypatch.setenv("KUBE_NODE_GRPC_INSECURE", "true")
    options = run_options(parse(["run"]))
    assert options.workers == 3
    assert options.leader_election.enabled is False
    assert options.grpc_tls is None


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("wrokers: 4\n", "unknown setting 'wrokers'"),
        ("workers: many\n", "argument --workers: invalid int value: 'many'"),
        ("leader-elect: sometimes\n", "leader-elect must be true or false"),
        ("autoscaler-expander: cheapest\n", "argument --autoscaler-expander: invalid choice: 'cheapest'"),
        ("- workers\n", "expected a mapping of flag names to values"),
        ("workers: [1, 2]\n", "workers must be a single value"),
    ],
)
def test_a_bad_config_file_is_a_usage_error_that_names_the_setting(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, message: str
) -> None:
    with pytest.raises(SystemExit) as exited:
        parse(["run", "--config", str(_config(tmp_path, text))])
    assert exited.value.code == 2
    assert message in capsys.readouterr().err


def test_run_without_tls_material_or_insecure_is_refused_with_the_way_out() -> None:
    with pytest.raises(SystemExit, match="--grpc-insecure"):
        run_options(parse(["run"]))


def test_a_bare_run_uses_the_options_own_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [n for n in os.environ if n.startswith("KUBE_NODE_")]:
        monkeypatch.delenv(name)
    # --grpc-insecure only because a bare run is refused without TLS material (above).
    options = run_options(parse(["run", "--grpc-insecure"]))
    assert options == RunOptions()
    # No shared default name: the cluster's identity is read at start-up (tests/cli/test_cluster_identity.py).
    assert options.cluster is None


def test_an_empty_cluster_name_is_no_cluster_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KUBE_NODE_CLUSTER_NAME", "")
    assert run_options(parse(["run", "--grpc-insecure"])).cluster is None
    config = _config(tmp_path, "cluster-name:\n")
    assert run_options(parse(["run", "--grpc-insecure", "--config", str(config)])).cluster is None
    monkeypatch.setenv("KUBE_NODE_CLUSTER_NAME", "from-env")
    assert run_options(parse(["run", "--grpc-insecure"])).cluster == "from-env"
