"""The work queue deduplicates, never hands one key to two workers, and backs off exponentially."""

from __future__ import annotations

import threading
import time

from nodeset_controller.kube import Result, WorkQueue, run_workers


def test_a_key_added_many_times_is_queued_once() -> None:
    queue = WorkQueue("t")
    for _ in range(5):
        queue.add("a")
    queue.add("b")
    assert len(queue) == 2
    assert queue.get(timeout=0) == "a"
    assert queue.get(timeout=0) == "b"
    assert queue.get(timeout=0.05) is None


def test_a_key_added_while_processing_is_handed_out_again_only_after_done() -> None:
    queue = WorkQueue("t")
    queue.add("a")
    assert queue.get(timeout=0) == "a"
    queue.add("a")
    assert queue.get(timeout=0.05) is None  # not to a second worker while the first holds it
    queue.done("a")
    assert queue.get(timeout=0) == "a"


def test_rate_limited_delays_double_and_forget_resets_them() -> None:
    queue = WorkQueue("t", base_delay=0.01, max_delay=0.08)
    delays = [queue.add_rate_limited("a") for _ in range(5)]
    assert delays == [0.01, 0.02, 0.04, 0.08, 0.08]
    queue.forget("a")
    assert queue.add_rate_limited("a") == 0.01


def test_add_after_keeps_one_wake_up_per_key_the_earliest() -> None:
    queue = WorkQueue("t")
    queue.add_after("a", 0.2)
    queue.add_after("a", 0.05)
    queue.add_after("a", 0.3)
    start = time.monotonic()
    assert queue.get(timeout=1) == "a"
    assert time.monotonic() - start < 0.15
    queue.done("a")
    assert queue.get(timeout=0.4) is None  # the later requests were folded into the earlier one


def test_workers_retry_failures_with_backoff_and_honour_requeue_after() -> None:
    queue = WorkQueue("t", base_delay=0.01)
    calls: list[tuple[str, float]] = []
    stop = threading.Event()

    def reconcile(key: str) -> Result | None:
        calls.append((key, time.monotonic()))
        if key == "flaky" and len([c for c in calls if c[0] == "flaky"]) < 3:
            raise RuntimeError("transient")
        if key == "timer" and len([c for c in calls if c[0] == "timer"]) < 2:
            return Result(requeue_after=0.05)
        return None

    run_workers(queue, reconcile, 2, stop)
    queue.add("flaky")
    queue.add("timer")
    deadline = time.monotonic() + 2
    while time.monotonic() < deadline and (
        len([c for c in calls if c[0] == "flaky"]) < 3 or len([c for c in calls if c[0] == "timer"]) < 2
    ):
        time.sleep(0.01)
    stop.set()
    assert len([c for c in calls if c[0] == "flaky"]) == 3
    assert queue.failures("flaky") == 0  # the success forgot the failures
    timer = [t for k, t in calls if k == "timer"]
    assert len(timer) == 2 and timer[1] - timer[0] >= 0.045
