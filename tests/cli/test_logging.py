"""Logs: JSON lines with the record's fields, for log pipelines."""

from __future__ import annotations

import json
import logging
import sys

from kube_node._logging import JsonFormatter


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
