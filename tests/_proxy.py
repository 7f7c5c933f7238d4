"""A loopback TCP proxy that can go silent: the network fault a read timeout exists for.

``FaultyProxy(upstream_port)`` listens on 127.0.0.1 and forwards every byte both ways (TLS passes through
untouched, so a kubeconfig pointed at it still verifies the API server's certificate, which is valid for
127.0.0.1). It can be told to

- ``pause()``: stop forwarding silently. Connections stay open, new ones are accepted, and nothing is dropped
  or sent: bytes wait in the sockets' buffers (or in the proxy, at most one chunk per direction) until
  ``resume()`` forwards them, in order. To the peers it looks like a network path that stopped delivering,
  with no FIN or RST to notice: only a timeout can tell.
- ``resume(revive=False)``: forward again, but only on connections opened since the pause; those open when it
  began stay silent for good (a NAT or load balancer that forgot their flows: the path works again, the old
  connections never will). A client that waits on one without a timeout waits forever.
- ``cut()``: close every open connection now (the peers see the connection end); new ones are accepted.
"""

from __future__ import annotations

import contextlib
import select
import socket
import threading
from collections.abc import Iterator

_CHUNK = 65536


class FaultyProxy:
    """Forwards 127.0.0.1:``port`` to 127.0.0.1:``upstream_port`` until told otherwise; threads and sockets."""

    def __init__(self, upstream_port: int, upstream_host: str = "127.0.0.1") -> None:
        self._upstream = (upstream_host, upstream_port)
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(128)
        self.port: int = self._listener.getsockname()[1]
        self._cond = threading.Condition()
        self._paused = False
        self._at_pause: set[socket.socket] = set()
        self._sending = 0  # pumps between "may I send?" and the end of their send
        self._closed = False
        self._connections: set[socket.socket] = set()
        self._half_closed: set[frozenset[int]] = set()
        self._frozen: set[socket.socket] = set()  # silent until cut, whatever resume says
        self.accepted = 0  #: connections accepted so far
        self.forwarded = 0  #: bytes forwarded so far, both ways
        self._threads: list[threading.Thread] = []
        self._spawn(self._accept_loop, "proxy-accept")

    @property
    def url(self) -> str:
        """The proxy's https URL, to put in a kubeconfig in place of the API server's."""
        return f"https://127.0.0.1:{self.port}"

    @property
    def paused(self) -> bool:
        """Whether the proxy is silent."""
        with self._cond:
            return self._paused

    @property
    def open_connections(self) -> int:
        """Client connections open now."""
        with self._cond:
            return len(self._connections) // 2

    def pause(self) -> None:
        """Stop forwarding, silently; returns once no byte is being sent any more."""
        with self._cond:
            self._paused = True
            self._at_pause = set(self._connections)
            while self._sending:
                self._cond.wait()

    def resume(self, *, revive: bool = True) -> None:
        """Forward again, starting with what waited; with ``revive`` false, not on the connections that were
        open when the pause began (they stay silent until cut)."""
        with self._cond:
            self._paused = False
            if not revive:
                self._frozen |= self._at_pause & self._connections
            self._at_pause = set()
            self._cond.notify_all()

    def cut(self) -> int:
        """Close every open connection (both ends); returns how many client connections were cut."""
        with self._cond:
            sockets = list(self._connections)
            self._connections.clear()
            self._frozen.clear()
            self._cond.notify_all()
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                sock.close()
        return len(sockets) // 2

    @contextlib.contextmanager
    def silence(self) -> Iterator[None]:
        """``pause()`` for the ``with`` block, then ``resume()``."""
        self.pause()
        try:
            yield
        finally:
            self.resume()

    def close(self) -> None:
        """Stop listening and cut everything."""
        with self._cond:
            self._closed = True
            self._paused = False
            self._cond.notify_all()
        with contextlib.suppress(OSError):
            self._listener.close()
        self.cut()
        for thread in self._threads:
            thread.join(2)

    def __enter__(self) -> FaultyProxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- internals ---------------------------------------------------------------------------------------

    def _spawn(self, target: object, name: str, *args: object) -> None:
        assert callable(target)
        thread = threading.Thread(target=target, args=args, name=name, daemon=True)
        thread.start()
        self._threads = [t for t in self._threads if t.is_alive()] + [thread]

    def _accept_loop(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return  # closed
            try:
                server = socket.create_connection(self._upstream, timeout=5)
            except OSError:
                client.close()  # the upstream is down: the client sees its connection end, as it would
                continue
            server.settimeout(None)
            for sock in (client, server):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self._cond:
                if self._closed:
                    client.close()
                    server.close()
                    return
                self._connections |= {client, server}
                self.accepted += 1
            self._spawn(self._pump, "proxy-up", client, server)
            self._spawn(self._pump, "proxy-down", server, client)

    def _silent(self, src: socket.socket) -> bool:
        """Whether ``src``'s bytes must wait (called with the lock held)."""
        live = not self._closed and src in self._connections
        return live and (self._paused or src in self._frozen)

    def _wait_unpaused(self, src: socket.socket) -> bool:
        """Block while paused; False once the connection is cut or the proxy closed."""
        with self._cond:
            while self._silent(src):
                self._cond.wait(0.5)
            return not self._closed and src in self._connections

    def _begin_send(self, src: socket.socket, dst: socket.socket) -> bool:
        """Block while paused, then count this pump as sending (``pause`` waits for it to finish)."""
        with self._cond:
            while self._silent(src):
                self._cond.wait(0.5)
            if self._closed or src not in self._connections or dst not in self._connections:
                return False
            self._sending += 1
            return True

    def _end_send(self) -> None:
        with self._cond:
            self._sending -= 1
            self._cond.notify_all()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        clean = False
        try:
            while self._wait_unpaused(src):
                # Read nothing while paused: what the peer sends waits in the kernel's buffers, dropped by nobody.
                try:
                    readable, _, _ = select.select([src], [], [], 0.2)
                    data = src.recv(_CHUNK) if readable else None
                except (OSError, ValueError):
                    return
                if data is None:
                    continue
                # A chunk read just as a pause began waits here for the resume: never dropped, never sent early.
                if not self._begin_send(src, dst):
                    return
                try:
                    if not data:
                        dst.shutdown(socket.SHUT_WR)  # pass the half-close on, as TCP would
                        clean = True
                        return
                    dst.sendall(data)
                    with self._cond:
                        self.forwarded += len(data)
                except OSError:
                    return
                finally:
                    self._end_send()
        finally:
            self._ended(src, dst, clean)

    def _ended(self, src: socket.socket, dst: socket.socket, clean: bool) -> None:
        """One direction ended: after a half-close, wait for the other; after an error (or both), close both."""
        pair = frozenset((id(src), id(dst)))
        with self._cond:
            if clean and pair not in self._half_closed:
                self._half_closed.add(pair)
                return
            self._half_closed.discard(pair)
            self._connections -= {src, dst}
            self._frozen -= {src, dst}
        for sock in (src, dst):
            with contextlib.suppress(OSError):
                sock.close()
