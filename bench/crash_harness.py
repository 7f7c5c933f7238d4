"""Benchmark and soak: the crash-anywhere scenario (tests/operations/_crash.py) for N rounds with random seeds.

    .venv/bin/python bench/crash_harness.py [--rounds 5] [--seed N]

Each round: two NodeSets (one Manual, one ClusterAutoscaler) go 0 -> 40 -> 5 -> 0 (the second down through the
provider's DeleteNodes), hand-made Nodes come and go, and `kube-node run` is SIGKILLed 23 times at seeded
moments (timers and failpoints) and restarted; after each step everything is checked. Prints each round's
seed (replay it with KUBE_NODE_CRASH_SEED=<seed> in tests/operations/test_crash_anywhere.py, or --seed here)
and, over all rounds: kills, kills per failpoint, time from the last kill of a step to everything in line
(p50, max), leaked and double machines, other problems, and the API server's write count per round.
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from collections import Counter

from _harness import api_writes, control_plane

from tests.conftest import wipe
from tests.operations._crash import CrashReport, CrashRun


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seed", type=int, default=None, help="the first round's seed (default: random)")
    args = parser.parse_args()

    reports: list[CrashReport] = []
    writes: list[float] = []
    seconds: list[float] = []
    with control_plane() as (plane, client, scratch):
        for number in range(args.rounds):
            seed = args.seed if args.seed is not None and number == 0 else random.randrange(1, 2**31)
            workdir = scratch / f"round-{number}"
            workdir.mkdir()
            wipe(client)
            before = sum(api_writes(client).values())
            started = time.monotonic()
            report = CrashRun(plane, client, workdir, seed, say=lambda _: None).run()
            seconds.append(time.monotonic() - started)
            writes.append(sum(api_writes(client).values()) - before)
            reports.append(report)
            print(f"round {number + 1}: {report.summary()}; {seconds[-1]:.0f} s, {writes[-1]:.0f} API writes")
            for problem in report.problems:
                print(f"  PROBLEM {problem}")
            if report.problems:
                print("  kills: " + "; ".join(str(k) for k in report.kills))

    kills = [k for r in reports for k in r.kills]
    causes = Counter(k.cause for k in kills)
    converge = [p.converge_seconds for r in reports for p in r.phases]
    finite = sorted(c for c in converge if c != float("inf"))
    leaked = sum(len(p.leaked) for r in reports for p in r.phases)
    doubles = sum(len(p.doubles) for r in reports for p in r.phases)
    other = sum(len(r.problems) for r in reports) - leaked - doubles
    print(f"rounds: {len(reports)} (seeds {', '.join(str(r.seed) for r in reports)})")
    print(f"kills: {len(kills)} ({len(kills) / len(reports):.1f} per round)")
    print("kills per cause: " + ", ".join(f"{cause} {count}" for cause, count in sorted(causes.items())))
    if finite:
        print(
            f"last kill -> everything in line: p50 {statistics.median(finite):.1f} s, max {max(finite):.1f} s "
            f"({len(finite)} of {len(converge)} steps converged)"
        )
    print(f"leaked machines: {leaked}; double machines: {doubles}; other problems: {other}")
    print(f"API writes per round: median {statistics.median(writes):.0f}")
    print(f"time per round: median {statistics.median(seconds):.0f} s")
    return 1 if leaked or doubles or other else 0


if __name__ == "__main__":
    raise SystemExit(main())
