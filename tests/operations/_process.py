"""``kube-node run`` as a real process, with its status port: what an operator's probes and Prometheus see."""

from __future__ import annotations

import http.client
import os
import signal
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import IO, Any

from prometheus_client.parser import text_string_to_metric_families

from kube_node.controlplane import ControlPlane

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    """A loopback port nobody listens on now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class KubeNodeProcess:
    """One ``python -m kube_node run`` against the test control plane, its log kept under ``workdir``."""

    def __init__(
        self,
        control_plane: ControlPlane,
        workdir: Path,
        name: str,
        *flags: str,
        kubeconfig: Path | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        self.name = name
        self.flags = flags
        self.status_port = free_port()
        self.log_path = workdir / f"{name}.log"
        self._log: IO[Any] = self.log_path.open("w")
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "kube_node",
                "run",
                "--kubeconfig",
                str(kubeconfig or control_plane.kubeconfig),
                f"--status-address=127.0.0.1:{self.status_port}",
                *flags,
            ],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            cwd=REPO,
            env={**os.environ, **env} if env else None,
        )

    def flag(self, name: str) -> str:
        """The value this process was given for ``--name=value``."""
        return next(f.split("=", 1)[1] for f in self.flags if f.startswith(f"--{name}="))

    def get(self, path: str) -> tuple[int, str]:
        """GET ``path`` on the status port: (HTTP status, body); (0, reason) when nothing answers."""
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.status_port}{path}", timeout=5) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as error:
            return error.code, error.read().decode()
        except (OSError, http.client.HTTPException) as error:  # nothing listens, or it died mid-answer
            return 0, str(error)

    def metrics(self) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        """Every sample on /metrics, keyed by (sample name, sorted labels); parsed by prometheus_client."""
        status, body = self.get("/metrics")
        assert status == 200, body
        return {
            (sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(body)
            for sample in family.samples
        }

    def ready(self) -> bool:
        """Whether /readyz answers 200."""
        return self.get("/readyz")[0] == 200

    def leading(self) -> bool:
        """Whether its metrics say it holds the leader Lease."""
        status, _ = self.get("/metrics")
        return status == 200 and sample(self.metrics(), "kube_node_leader") == 1

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def terminate(self, timeout: float = 30) -> int:
        """SIGTERM, and the exit status."""
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout)

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
        self._log.close()


def sample(metrics: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str) -> float:
    """One sample's value (0 when the series does not exist yet)."""
    return metrics.get((name, tuple(sorted(labels.items()))), 0.0)
