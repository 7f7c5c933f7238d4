"""docs/operate.md lists every Event reason kube-node records, with its type: read from the code itself."""

from __future__ import annotations

import ast
import itertools
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SOURCES = ("nodeset_controller", "autoscaler_provider", "kube_node")


def recorded_reasons() -> dict[str, set[str]]:
    """Reason -> types, for every Event whose type and reason are literals at the call (``..., "Warning",
    "Reason", ...``), and for the NodeController's ``_record_problem(node, "Reason", ...)`` (Warnings)."""
    found: dict[str, set[str]] = {}
    for package in SOURCES:
        for path in (REPO / package).rglob("*.py"):
            if "_proto" in path.parts:
                continue
            for node in ast.walk(ast.parse(path.read_text())):
                if not isinstance(node, ast.Call):
                    continue
                args = node.args
                for first, second in itertools.pairwise(args):
                    if (
                        isinstance(first, ast.Constant)
                        and first.value in ("Normal", "Warning")
                        and isinstance(second, ast.Constant)
                        and isinstance(second.value, str)
                        and re.fullmatch(r"[A-Z][A-Za-z]+", second.value)
                    ):
                        found.setdefault(second.value, set()).add(first.value)
                name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
                if name == "_record_problem" and len(args) > 1 and isinstance(args[1], ast.Constant):
                    found.setdefault(str(args[1].value), set()).add("Warning")
    return found


def documented() -> dict[str, str]:
    text = (REPO / "docs" / "operate.md").read_text()
    section = text[text.index("## Events") : text.index("## Troubleshooting")]
    return dict(re.findall(r"^\| `([A-Za-z]+)` \| (Normal|Warning) \|", section, re.M))


def test_every_event_reason_is_documented_with_its_type() -> None:
    reasons = recorded_reasons()
    assert len(reasons) > 30, "the scan finds the Events"
    table = documented()
    missing = sorted(set(reasons) - set(table))
    assert not missing, f"Event reasons missing from docs/operate.md's Events table: {missing}"
    wrong = {r: (types, table[r]) for r, types in reasons.items() if table[r] not in types}
    assert not wrong, wrong
    stale = sorted(set(table) - set(reasons))
    assert not stale, f"documented Event reasons kube-node never records: {stale}"
