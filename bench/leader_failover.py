"""Benchmark: how fast leadership moves between `kube-node run` replicas, with the default timings
(lease 15 s, renew deadline 10 s, retry 2 s), each replica its own process with 500 Nodes in its caches.

    .venv/bin/python bench/leader_failover.py [--nodes 500]

Prints: a replica's start to /readyz (caches synced, warm standby); a SIGKILLed leader to the standby leading
(bounded by the lease duration plus a retry); a SIGTERMed leader to the standby leading (the Lease is
emptied, so about one retry); and the SIGTERMed process's own exit time.
"""

from __future__ import annotations

import argparse
import signal
import time
from pathlib import Path
from typing import Any

from _harness import control_plane, create_nodes

from kube_node.controlplane import ControlPlane
from tests.operations._process import KubeNodeProcess


def _replica(plane: ControlPlane, scratch: Path, name: str) -> tuple[KubeNodeProcess, float]:
    """A `kube-node run` with leader election on (the same process the operations tests run), and when it
    was started."""
    started = time.monotonic()
    flags = ("--log-level=WARNING", "--grpc-address=", "--leader-election-namespace=default")
    return KubeNodeProcess(plane, scratch, name, *flags), started


def _until(check: Any, timeout: float = 120.0, step: float = 0.05) -> float:
    start = time.monotonic()
    while not check():
        if time.monotonic() - start > timeout:
            raise TimeoutError(f"not within {timeout:.0f} s")
        time.sleep(step)
    return time.monotonic() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nodes", type=int, default=500)
    args = parser.parse_args()

    with control_plane() as (plane, client, scratch):
        create_nodes(client, [f"n-{i:05d}" for i in range(args.nodes)], {"kube-node.io/nodeclass": "none"}, 16)
        started = [_replica(plane, scratch, name) for name in ("a", "b")]
        replicas = [replica for replica, _ in started]
        try:
            for replica in replicas:
                _until(replica.ready)
            ready = max(time.monotonic() - at for _, at in started)
            print(f"start to /readyz of both (warm, {args.nodes} Nodes cached): at most {ready:.2f} s")
            _until(lambda: any(r.leading() for r in replicas))
            leader = next(r for r in replicas if r.leading())
            standby = next(r for r in replicas if r is not leader)

            leader.process.send_signal(signal.SIGKILL)
            killed = time.monotonic()
            _until(standby.leading)
            print(f"leader SIGKILLed -> standby leads: {time.monotonic() - killed:.2f} s (lease 15 s + retry 2 s)")

            third, _ = _replica(plane, scratch, "c")
            replicas.append(third)
            _until(third.ready)
            standby.process.send_signal(signal.SIGTERM)
            terminated = time.monotonic()
            took: dict[str, float] = {}
            while len(took) < 2 and time.monotonic() - terminated < 60:
                if "exit" not in took and standby.process.poll() is not None:
                    took["exit"] = time.monotonic() - terminated
                if "lead" not in took and third.leading():
                    took["lead"] = time.monotonic() - terminated
                time.sleep(0.02)
            print(f"leader SIGTERMed -> it exits (code {standby.process.returncode}): {took['exit']:.2f} s")
            print(f"leader SIGTERMed -> standby leads: {took['lead']:.2f} s (retry 2 s)")
        finally:
            for replica in replicas:
                replica.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
