"""Child processes that never outlive their parent, with their output kept in a log file."""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import logging
import os
import signal
import socket
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

log = logging.getLogger(__name__)

_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    """Ask Linux to SIGKILL this process when its parent dies, however the parent dies."""
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


class Process:
    """A named child process whose stdout and stderr go to ``<logdir>/<name>.log``.

    With ``tied`` (the default) the child is killed by the kernel if this process dies, even by SIGKILL,
    so a crashed test run cannot leave a control plane behind.
    """

    def __init__(
        self, name: str, args: Sequence[str], logdir: Path, *, env: dict[str, str] | None = None, tied: bool = True
    ) -> None:
        self.name = name
        self.args = list(args)
        self.log_path = logdir / f"{name}.log"
        self._log = self.log_path.open("ab")
        log.debug("starting %s: %s", name, " ".join(self.args))
        self.popen = subprocess.Popen(
            self.args,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=env,
            # preexec_fn is safe here: it only calls prctl(2), which takes no lock the fork could have copied held.
            start_new_session=True,
            preexec_fn=_die_with_parent if tied else None,  # noqa: PLW1509
        )

    @property
    def pid(self) -> int:
        """The child's process id."""
        return self.popen.pid

    def alive(self) -> bool:
        """Whether the child is still running."""
        return self.popen.poll() is None

    def log_tail(self, lines: int = 30) -> str:
        """The last lines the child printed, for error messages."""
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self, timeout: float = 5.0) -> None:
        """SIGTERM the child, SIGKILL it if it is still there after ``timeout`` seconds, and reap it."""
        if self.alive():
            with contextlib.suppress(ProcessLookupError):
                self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                log.warning("%s did not stop within %.0f s of SIGTERM; killing it", self.name, timeout)
                with contextlib.suppress(ProcessLookupError):
                    self.popen.kill()
                self.popen.wait()
        self._log.close()

    def kill(self) -> None:
        """SIGKILL the child (a crash: no graceful shutdown) and reap it."""
        if self.alive():
            with contextlib.suppress(ProcessLookupError):
                self.popen.kill()
            self.popen.wait()
        self._log.close()


def stop_all(processes: Sequence[Process], timeout: float = 5.0) -> None:
    """Stop ``processes`` in order, each fully before the next (so etcd, listed last, goes last)."""
    for process in processes:
        process.stop(timeout)


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(what: str, check: object, timeout: float, watched: Sequence[Process] = ()) -> None:
    """Poll ``check()`` until it is true; fail early if a watched process exits, with its log's tail."""
    assert callable(check)
    deadline = time.monotonic() + timeout
    while True:
        for process in watched:
            if not process.alive():
                raise ControlPlaneError(
                    f"{process.name} exited with code {process.popen.returncode} while waiting for {what}; "
                    f"last lines of {process.log_path}:\n{process.log_tail()}"
                )
        if check():
            return
        if time.monotonic() > deadline:
            tails = "\n".join(f"--- {p.name} ({p.log_path}):\n{p.log_tail(15)}" for p in watched)
            raise ControlPlaneError(f"timed out after {timeout:.0f} s waiting for {what}\n{tails}")
        time.sleep(0.1)


def pid_alive(pid: int) -> bool:
    """Whether a process with this id exists and is not a zombie."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"


class ControlPlaneError(RuntimeError):
    """The control plane could not be started, or a component of it died."""
