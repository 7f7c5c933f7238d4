"""Run only as a child pytest session by test_lifecycle.py (its name keeps the outer session from collecting it).

It starts the session control plane, records the component pids in $KUBE_NODE_PIDS_FILE, and then either fails
on purpose (teardown must still stop everything) or waits to be killed (the kernel must stop everything).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from kube_node.controlplane import ControlPlane


def test_record_pids_then_fail_or_hang(control_plane: ControlPlane) -> None:
    control_plane.start_scheduler()
    Path(os.environ["KUBE_NODE_PIDS_FILE"]).write_text(" ".join(map(str, control_plane.pids)))
    if os.environ.get("KUBE_NODE_CHILD_MODE") == "hang":
        time.sleep(600)
    raise AssertionError("failing on purpose: teardown must still stop the control plane")
