"""Logs: JSON lines with the record's fields, for log pipelines; Python warnings among them, once per cause."""

from __future__ import annotations

import json
import logging
import signal
import subprocess
import sys
import time
import uuid
import warnings
from pathlib import Path

import pytest
import yaml

from kube_node._logging import WARNINGS_LOGGER, JsonFormatter, log_warning
from kube_node.controlplane import ControlPlane
from nodeset_controller.kube import NODECLASSES, KubeClient
from tests.conftest import eventually, simulator_nodeclass
from tests.operations._process import REPO, free_port


def _record(**extra: object) -> logging.LogRecord:
    logger = logging.getLogger("kube-node.test")
    return logger.makeRecord(logger.name, logging.WARNING, __file__, 1, "Node %s: %s", ("a", "b"), None, extra=extra)


def test_a_json_line_has_the_message_and_the_records_fields() -> None:
    line = JsonFormatter().format(_record(object="Node/a", reason="MachineCreateFailed"))
    entry = json.loads(line)
    assert entry["msg"] == "Node a: b"
    assert entry["level"] == "warning"
    assert entry["logger"] == "kube-node.test"
    assert (entry["object"], entry["reason"]) == ("Node/a", "MachineCreateFailed")
    assert entry["ts"].endswith("+00:00")


def test_a_field_never_replaces_the_standard_keys_and_odd_values_still_serialise() -> None:
    entry = json.loads(JsonFormatter().format(_record(level="spoofed", when=object())))
    assert entry["level"] == "warning"
    assert entry["when"].startswith("<object object")


def test_an_exception_is_one_field_of_the_same_line() -> None:
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        logger = logging.getLogger("kube-node.test")
        record = logger.makeRecord(logger.name, logging.ERROR, __file__, 1, "failed", (), sys.exc_info())
    line = JsonFormatter().format(record)
    assert "\n" not in line
    assert "RuntimeError: boom" in json.loads(line)["exc"]


def test_each_cause_of_a_warning_is_logged_once() -> None:
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append  # type: ignore[method-assign]
    logger = logging.getLogger(WARNINGS_LOGGER)
    logger.addHandler(handler)
    same, other = f"same {uuid.uuid4()}", f"other {uuid.uuid4()}"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("always")
            warnings.showwarning = log_warning
            for _ in range(3):
                warnings.warn(same, UserWarning, stacklevel=1)
                warnings.warn(other, UserWarning, stacklevel=1)
                warnings.warn(same, DeprecationWarning, stacklevel=1)
    finally:
        logger.removeHandler(handler)
    assert sorted(r.getMessage() for r in records) == sorted(
        [
            f"DeprecationWarning: {same} (logged once)",
            f"UserWarning: {other} (logged once)",
            f"UserWarning: {same} (logged once)",
        ]
    )
    assert {r.category for r in records} == {"UserWarning", "DeprecationWarning"}  # type: ignore[attr-defined]
    assert all(r.source.startswith(__file__) for r in records)  # type: ignore[attr-defined]


@pytest.mark.controlplane
def test_warnings_are_json_lines_once_per_cause_with_a_kubeconfig_that_skips_tls_verification(
    control_plane: ControlPlane, kube: KubeClient, tmp_path: Path
) -> None:
    config = control_plane.kubeconfig_dict()
    cluster = config["clusters"][0]["cluster"]
    del cluster["certificate-authority-data"]
    cluster["insecure-skip-tls-verify"] = True  # urllib3 warns on every request (its filter says "always")
    kubeconfig = tmp_path / "insecure.kubeconfig"
    kubeconfig.write_text(yaml.safe_dump(config))
    port = free_port()
    stderr_path = tmp_path / "stderr"
    with stderr_path.open("w") as stderr:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "kube_node",
                "run",
                "--log-format=json",
                f"--kubeconfig={kubeconfig}",
                f"--simulator-dir={tmp_path / 'simulator'}",
                "--grpc-address=",
                f"--status-address=127.0.0.1:{port}",
                f"--leader-election-lease-name=warnings-{uuid.uuid4().hex[:8]}",
                "--leader-election-retry-period=0.5",
                "--sweep-interval=0.5",
            ],
            stdout=subprocess.DEVNULL,
            stderr=stderr,
            cwd=REPO,
        )
        try:
            kube.create(NODECLASSES, simulator_nodeclass())  # the sweep then lists its machines twice a second
            eventually(lambda: "kube-node is running" in stderr_path.read_text(), timeout=30, what="kube-node running")
            time.sleep(3)  # dozens of requests (informers, Lease renewals, sweeps), each one a warning from urllib3
            process.send_signal(signal.SIGTERM)
            assert process.wait(30) == 0
        finally:
            if process.poll() is None:
                process.kill()
                process.wait(10)
    lines = stderr_path.read_text().splitlines()
    entries = []
    for line in lines:
        try:
            entries.append(json.loads(line))
        except json.JSONDecodeError:
            raise AssertionError(f"not a JSON line: {line!r}\nstderr:\n" + "\n".join(lines[:40])) from None
    warned = [e for e in entries if "InsecureRequestWarning" in e["msg"]]
    assert len(warned) == 1, warned
    assert warned[0]["level"] == "warning"
    assert warned[0]["logger"] == "py.warnings"
    assert warned[0]["category"] == "InsecureRequestWarning"
    assert "Unverified HTTPS request" in warned[0]["msg"]
