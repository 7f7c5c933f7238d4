"""``kube-node run`` settings: flags, KUBE_NODE_* environment variables and a YAML --config file."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from kube_node._run import RunOptions
from kube_node._settings import BY_NAME, SETTINGS, Setting
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


def _sample(setting: Setting) -> tuple[str, object]:
    """A value other than the default, as text and as the setting holds it."""
    if setting.type is bool:
        return ("false", False) if setting.default else ("true", True)
    if setting.choices:
        choice = next(c for c in reversed(setting.choices) if c != setting.default)
        return choice, choice
    text = {int: "7", float: "2.5", Path: "/var/lib/somewhere", str: "some-name"}[setting.type]
    return text, setting.type(text)


@pytest.mark.parametrize("setting", [s for s in SETTINGS if s.in_file], ids=lambda s: s.name)
def test_every_setting_is_a_flag_a_variable_and_a_config_key_alike(
    setting: Setting, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in [n for n in os.environ if n.startswith("KUBE_NODE_")]:
        monkeypatch.delenv(name)
    text, value = _sample(setting)
    flag = [f"--{setting.name}" if value else f"--no-{setting.name}"] if setting.type is bool else [setting.flag, text]
    from_flag = parse(["run", *flag]).settings.values
    config = _config(tmp_path, f"{setting.name}: {text}\n")
    from_file = parse(["run", "--config", str(config)]).settings.values
    monkeypatch.setenv(setting.env, text)
    from_env = parse(["run"]).settings.values
    assert from_flag[setting.name] == from_file[setting.name] == from_env[setting.name] == value
    assert {n: v for n, v in from_flag.items() if n != setting.name} == {
        s.name: s.default for s in SETTINGS if s.name != setting.name
    }


@pytest.mark.parametrize(("old", "new"), [(a, s.name) for s in SETTINGS for a in s.aliases])
def test_a_deprecated_name_still_works_and_warns_naming_the_new_one(
    old: str, new: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    setting = BY_NAME[new]
    assert BY_NAME[old] is setting
    text, value = _sample(setting)
    old_env = "KUBE_NODE_" + old.upper().replace("-", "_")
    assert setting.field is not None
    for args, env, warning in (
        (
            ["--grpc-insecure", f"--{old}", text],
            {},
            f"the flag --{old} is deprecated and goes in the next release: use --{new}",
        ),
        (
            ["--grpc-insecure", "--config", str(_config(tmp_path, f"{old}: {text}\n"))],
            {},
            f"the key {old} of config file {tmp_path / 'kube-node.yaml'} is deprecated and goes in the next release: "
            f"use {new}",
        ),
        (
            ["--grpc-insecure"],
            {old_env: text},
            f"the environment variable {old_env} is deprecated and goes in the next release: use {setting.env}",
        ),
    ):
        for name, variable in env.items():
            monkeypatch.setenv(name, variable)
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="kube_node.cli"):
            options = run_options(parse(["run", *args]))
        for name in env:
            monkeypatch.delenv(name)
        held: object = options
        for part in setting.field.split("."):
            held = getattr(held, part)
        assert held == value
        assert [r.getMessage() for r in caplog.records] == [warning]


def test_the_kubeconfig_variable_is_named_like_every_other_and_its_old_name_still_works_with_a_warning(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    for name in [n for n in os.environ if n.startswith("KUBE_NODE_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("KUBE_NODE_KUBECONFIG", "/etc/new.kubeconfig")
    assert run_options(parse(["run", "--grpc-insecure"])).kubeconfig == "/etc/new.kubeconfig"
    monkeypatch.setenv("KUBE_NODE_KUBECONFIG_PATH", "/etc/old.kubeconfig")
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="kube_node.cli"):
        assert run_options(parse(["run", "--grpc-insecure"])).kubeconfig == "/etc/new.kubeconfig"  # the new one wins
    assert not caplog.records
    monkeypatch.delenv("KUBE_NODE_KUBECONFIG")
    with caplog.at_level(logging.WARNING, logger="kube_node.cli"):
        assert run_options(parse(["run", "--grpc-insecure"])).kubeconfig == "/etc/old.kubeconfig"
    assert [r.getMessage() for r in caplog.records] == [
        "the environment variable KUBE_NODE_KUBECONFIG_PATH is deprecated and goes in the next release: "
        "use KUBE_NODE_KUBECONFIG"
    ]


def test_a_new_name_beats_its_deprecated_one_at_the_same_level(tmp_path: Path) -> None:
    options = run_options(
        parse(["run", "--grpc-insecure", "--pending-pod-autoscaler-expander=price", "--autoscaler-expander=priority"])
    )
    assert options.pending_pod_autoscaler.expander == "price"
    # ... but not a higher one: the command line's deprecated name beats the file's new one.
    config = _config(tmp_path, "pending-pod-autoscaler-expander: price\n")
    options = run_options(parse(["run", "--grpc-insecure", "--config", str(config), "--autoscaler-expander=priority"]))
    assert options.pending_pod_autoscaler.expander == "priority"


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("KUBE_NODE_WORKERS", "many", "environment variable KUBE_NODE_WORKERS: invalid int value: 'many'"),
        ("KUBE_NODE_LEADER_ELECT", "sometimes", "environment variable KUBE_NODE_LEADER_ELECT: invalid bool value"),
        (
            "KUBE_NODE_PENDING_POD_AUTOSCALER_EXPANDER",
            "cheapest",
            "environment variable KUBE_NODE_PENDING_POD_AUTOSCALER_EXPANDER: invalid choice: 'cheapest'",
        ),
    ],
)
def test_a_bad_environment_variable_is_a_usage_error_that_names_it(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], variable: str, value: str, message: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(SystemExit) as exited:
        parse(["run"])
    assert exited.value.code == 2
    assert message in capsys.readouterr().err
    # The other commands read only the settings they have.
    assert parse(["crds"]).command == "crds"


def test_run_help_lists_every_setting_with_its_variable_but_not_the_deprecated_names(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "200")  # else argparse breaks the longest variable's name across lines
    with pytest.raises(SystemExit) as exited:
        parse(["run", "--help"])
    assert exited.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    for setting in SETTINGS:
        assert setting.flag in text
        assert f"env {setting.env})" in text
        for alias in setting.aliases:
            assert f"--{alias}" not in text
