"""The status port: Prometheus metrics on /metrics, liveness on /healthz, readiness on /readyz."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

log = logging.getLogger(__name__)

#: A probe: whether it passes, and one line per thing it checked.
Probe = Callable[[], tuple[bool, list[str]]]


class StatusServer:
    """HTTP on ``address`` (host:port; port 0 picks one) for Prometheus and the kubelet's probes."""

    def __init__(self, address: str, *, healthy: Probe, ready: Probe) -> None:
        host, _, port = address.rpartition(":")
        probes = {"/healthz": healthy, "/livez": healthy, "/readyz": ready}

        class Handler(BaseHTTPRequestHandler):
            server_version = "kube-node"

            def do_GET(self) -> None:
                path = self.path.split("?", 1)[0]
                if path == "/metrics":
                    self._reply(200, generate_latest(REGISTRY), CONTENT_TYPE_LATEST)
                    return
                probe = probes.get(path)
                if probe is None:
                    self._reply(404, b"not found: try /metrics, /healthz or /readyz\n", "text/plain")
                    return
                ok, checks = probe()
                body = "".join(f"{line}\n" for line in checks) + ("ok\n" if ok else "failed\n")
                self._reply(200 if ok else 503, body.encode(), "text/plain; charset=utf-8")

            def _reply(self, status: int, body: bytes, content_type: str) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                log.debug("status port: " + format, *args)

        self._server = ThreadingHTTPServer((host.strip("[]") or "0.0.0.0", int(port)), Handler)
        self._server.daemon_threads = True
        self.port: int = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, name="status-server", daemon=True)

    def start(self) -> None:
        """Serve in the background."""
        self._thread.start()
        log.info("metrics and health on port %d (/metrics, /healthz, /readyz)", self.port)

    def stop(self) -> None:
        """Stop serving."""
        self._server.shutdown()
        self._server.server_close()
