"""Hand-written hostile HTTP servers for the hostile-server tests: raw sockets on loopback, bounded in time.

Not the project's emulator: each server runs a *script*, a function that gets the parsed request and
writes whatever bytes it likes to the socket (a body that trickles, a chunked body that never ends, a gzip
bomb, a lie about pagination...). Every server thread is a daemon; :meth:`HostileServer.stop` (the context
manager's exit) closes the listening socket and every open connection, so a script stuck in a wait loop or
a hanging read ends within one :data:`TICK`.

A script returns ``True`` to keep the connection for the next request (keep-alive), anything else to close it.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import socket
import threading
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

#: How often a waiting script checks whether its server stopped (seconds).
TICK = 0.05
#: Longest a script ever waits on its own (a hanging answer), whatever the test does.
MAX_HANG = 30.0


@dataclass
class Request:
    """One request as the server read it."""

    method: str
    target: str  # the request target: a path, or an absolute URL when sent to a proxy
    headers: dict[str, str]  # lower-cased names
    body: bytes = b""

    @property
    def path(self) -> str:
        return self.target.split("?", 1)[0]

    @property
    def query(self) -> dict[str, str]:
        query = self.target.split("?", 1)[1] if "?" in self.target else ""
        return dict(part.split("=", 1) for part in query.split("&") if "=" in part)


Script = Callable[["HostileServer", Request, socket.socket], Any]


@dataclass
class HostileServer:
    """A loopback server that answers every request with ``script``; use it as a context manager."""

    script: Script
    requests: list[Request] = field(default_factory=list)
    stopped: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(TICK)
        self.port = self._listener.getsockname()[1]
        self._connections: list[socket.socket] = []
        self._lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def connections(self) -> int:
        """How many connections clients opened to it so far."""
        return len(self._connections)

    @property
    def base_url(self) -> str:
        return f"{self.url}/api/public/v1"

    def __enter__(self) -> HostileServer:
        threading.Thread(target=self._accept, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        self.stopped.set()
        self._listener.close()
        with self._lock:
            for conn in self._connections:
                with contextlib.suppress(OSError):
                    conn.shutdown(socket.SHUT_RDWR)
                conn.close()

    def wait(self, seconds: float) -> bool:
        """Sleep ``seconds`` unless the server stops first; True while it runs."""
        return not self.stopped.wait(seconds)

    def _accept(self) -> None:
        while not self.stopped.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with self._lock:
                self._connections.append(conn)
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        conn.settimeout(MAX_HANG)
        reader = conn.makefile("rb")
        try:
            while not self.stopped.is_set():
                request = _read_request(reader)
                if request is None:
                    return
                self.requests.append(request)
                if self.script(self, request, conn) is not True:
                    return
        except OSError:
            return
        finally:
            reader.close()
            conn.close()


def _read_request(reader: Any) -> Request | None:
    line = reader.readline(65536)
    if not line.strip():
        return None
    method, target, _ = line.decode("latin-1").split(" ", 2)
    headers: dict[str, str] = {}
    while (header := reader.readline(65536)) not in (b"\r\n", b"\n", b""):
        name, _, value = header.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    body = reader.read(int(headers.get("content-length") or 0))
    return Request(method, target, headers, body)


# -- answers -------------------------------------------------------------------------------------------------


def raw_answer(status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> bytes:
    """A complete HTTP/1.1 answer: status line, headers (Content-Length added unless chunked), body."""
    lines = [f"HTTP/1.1 {status} Hostile"]
    all_headers = {"Content-Type": "application/json", **(headers or {})}
    if "Transfer-Encoding" not in all_headers and "Content-Length" not in all_headers:
        all_headers["Content-Length"] = str(len(body))
    lines += [f"{name}: {value}" for name, value in all_headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def envelope(data: Any, request_id: str = "req_hostile", **extra: Any) -> bytes:
    return json.dumps({"success": True, "data": data, "meta": {"request_id": request_id}, **extra}).encode()


def answer(status: int = 200, body: bytes = b"", headers: dict[str, str] | None = None) -> Script:
    """A script that sends the same complete answer to every request, keeping the connection."""

    def script(server: HostileServer, request: Request, conn: socket.socket) -> bool:
        conn.sendall(raw_answer(status, body, headers))
        return True

    return script


def by_path(scripts: dict[str, Script], default: Script | None = None) -> Script:
    """Dispatch on the request path's end (``/conversations/c1``): the first key the path ends with."""

    def script(server: HostileServer, request: Request, conn: socket.socket) -> Any:
        for suffix, chosen in scripts.items():
            if request.path.endswith(suffix):
                return chosen(server, request, conn)
        return (default or answer(404, b"{}"))(server, request, conn)

    return script


def hang(server: HostileServer, request: Request, conn: socket.socket) -> None:
    """Read the request, never answer (until the server stops or :data:`MAX_HANG`)."""
    deadline = time.monotonic() + MAX_HANG
    while time.monotonic() < deadline and server.wait(TICK):
        pass


def trickle(interval: float, length: int = 1_000_000) -> Script:
    """Announce ``length`` bytes, then send one byte every ``interval`` seconds: each read is quick, the
    body takes for ever."""

    def script(server: HostileServer, request: Request, conn: socket.socket) -> None:
        conn.sendall(raw_answer(200, b"", {"Content-Length": str(length)}))
        conn.sendall(b'{"success": true, "data": "')
        while server.wait(interval):
            conn.sendall(b"x")

    return script


def endless_chunks(interval: float) -> Script:
    """A chunked body whose chunks keep coming, one every ``interval`` seconds, and never end."""

    def script(server: HostileServer, request: Request, conn: socket.socket) -> None:
        conn.sendall(raw_answer(200, b"", {"Transfer-Encoding": "chunked"}))
        conn.sendall(b"1b\r\n" + b'{"success": true, "data": "' + b"\r\n")
        while server.wait(interval):
            conn.sendall(b"4\r\nxxxx\r\n")

    return script


def bomb(inflated: int, encoding: str = "gzip") -> bytes:
    """A small ``gzip`` (or raw ``deflate``) body that inflates to about ``inflated`` bytes (a JSON string of
    zeros that never closes), built in milliseconds: after a full flush the compressed form of each 1 MiB
    block of zeros is the same bytes, so they are repeated. The gzip trailer's CRC is not computed (the
    client must stop long before it)."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    block = b"0" * (1 << 20)
    prefix = compressor.compress(b'{"success": true, "data": "') + compressor.flush(zlib.Z_FULL_FLUSH)
    compressor.compress(block)
    compressor.flush(zlib.Z_FULL_FLUSH)
    repeated = compressor.compress(block) + compressor.flush(zlib.Z_FULL_FLUSH)
    stream = prefix + repeated * (inflated // len(block)) + compressor.flush()
    if encoding == "deflate":
        return stream
    header = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\xff"
    return header + stream + b"\x00" * 8


def gzipped(body: bytes) -> bytes:
    return gzip.compress(body)
