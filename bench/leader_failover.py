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
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import IO, Any

from _harness import REPO, control_plane, create_nodes


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class Replica:
    """One `kube-node run` with leader election on, its status port on loopback."""

    def __init__(self, kubeconfig: Path, scratch: Path, name: str) -> None:
        self.name = name
        self.port = _free_port()
        self._log: IO[Any] = (scratch / f"{name}.log").open("w")
        self.started = time.monotonic()
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "kube_node",
                "--log-level=WARNING",
                "run",
                f"--kubeconfig={kubeconfig}",
                "--grpc-address=",
                f"--status-address=127.0.0.1:{self.port}",
                "--leader-election-namespace=default",
            ],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            cwd=REPO,
        )

    def _get(self, path: str) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=2) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as error:
            return error.code, ""
        except OSError:
            return 0, ""

    def ready(self) -> bool:
        return self._get("/readyz")[0] == 200

    def leading(self) -> bool:
        status, body = self._get("/metrics")
        return status == 200 and "\nkube_node_leader 1.0\n" in body

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
        self._log.close()


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
        replicas = [Replica(plane.kubeconfig, scratch, name) for name in ("a", "b")]
        try:
            for replica in replicas:
                _until(replica.ready)
            ready = max(time.monotonic() - r.started for r in replicas)
            print(f"start to /readyz of both (warm, {args.nodes} Nodes cached): at most {ready:.2f} s")
            _until(lambda: any(r.leading() for r in replicas))
            leader = next(r for r in replicas if r.leading())
            standby = next(r for r in replicas if r is not leader)

            leader.process.send_signal(signal.SIGKILL)
            killed = time.monotonic()
            _until(standby.leading)
            print(f"leader SIGKILLed -> standby leads: {time.monotonic() - killed:.2f} s (lease 15 s + retry 2 s)")

            third = Replica(plane.kubeconfig, scratch, "c")
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
