"""Hand-written hostile servers for the download tests: raw HTTP/1.1 over a loopback socket, bounded in time.

:class:`ArtifactServer` plays the few endpoints a download needs (``GET /v1/artifacts``, ``GET
/v1/artifacts/{id}``, ``GET /v1/artifacts/{id}/content``) with whatever metadata a test gives it (names with
``..``, NUL, 600 bytes...), and answers each content request with the next answer of a script: exact status
lines, headers and bodies, including ones no real server library would send (a 206 for the wrong range, a
``Content-Length`` longer than the body, a body longer than announced with no length at all). Every
connection is closed after one answer, so a body without ``Content-Length`` ends where the server says.
"""

from __future__ import annotations

import hashlib
import json
import socket
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote, urlsplit

API_KEY = "nr_hostile_download_key_0123456789"
#: No socket wait in these servers lasts longer than this (seconds).
SOCKET_TIMEOUT = 5.0


@dataclass
class Request:
    method: str
    path: str  # as sent (percent-encoded), without the query string
    query: str
    headers: dict[str, str]  # lower-case names

    @property
    def range(self) -> str | None:
        return self.headers.get("range")

    def range_start(self) -> int:
        """The first byte a ``Range: bytes=N-`` asks for (0 without a Range)."""
        return int(self.range.removeprefix("bytes=").removesuffix("-")) if self.range else 0


def answer(
    status: int, headers: dict[str, str] | None = None, body: bytes = b"", *, length: bool = True
) -> bytes:
    """Raw bytes of one HTTP/1.1 answer; ``length=False`` leaves out ``Content-Length`` (the body then ends
    when the connection closes). A ``Content-Length`` in ``headers`` wins over the real one."""
    reason = {200: "OK", 206: "Partial Content", 404: "Not Found"}.get(status, "Whatever")
    fields = {"Connection": "close", **(headers or {})}
    if length and "Content-Length" not in fields:
        fields["Content-Length"] = str(len(body))
    head = f"HTTP/1.1 {status} {reason}\r\n" + "".join(f"{k}: {v}\r\n" for k, v in fields.items())
    return head.encode("latin-1") + b"\r\n" + body


def envelope(data: Any, **extra: Any) -> bytes:
    body = json.dumps(
        {"success": True, "data": data, **extra, "meta": {"request_id": "req_hostile"}}
    ).encode()
    return answer(200, {"Content-Type": "application/json", "X-Request-Id": "req_hostile"}, body)


def whole(content: bytes, *, etag: bool = False, length: bool = True) -> bytes:
    """A well-formed 200 with the whole file."""
    headers = {"Content-Type": "application/octet-stream"}
    if etag:
        headers["ETag"] = f'"{hashlib.sha256(content).hexdigest()}"'
    return answer(200, headers, content, length=length)


def cut(content: bytes, after: int) -> bytes:
    """A 200 announcing the whole file (``Content-Length``) whose connection breaks after ``after`` bytes."""
    return answer(200, {"Content-Length": str(len(content))}, content[:after], length=False)


def rest(content: bytes, start: int, *, claimed: str | None = None) -> bytes:
    """A 206 with the bytes from ``start`` on, and ``claimed`` as its Content-Range (default: the true one;
    ``""`` leaves the header out)."""
    true_range = f"bytes {start}-{len(content) - 1}/{len(content)}"
    content_range = true_range if claimed is None else claimed
    headers = {"Content-Range": content_range} if content_range else {}
    return answer(206, headers, content[start:])


#: What a content request gets: raw answer bytes, or a function of the request that returns them.
Script = Sequence[bytes | Callable[[Request], bytes]]


@dataclass
class ArtifactServer:
    """A loopback API with ``artifacts`` (metadata dicts) and, per artifact id, a script of content answers
    (a bare ``bytes`` value: a well-formed 200 with those bytes, for every request). The last answer of a
    script repeats. ``requests`` records every request, in order."""

    artifacts: list[dict[str, Any]]
    contents: dict[str, bytes | Script] = field(default_factory=dict)
    #: What ``GET /artifacts/{id}`` answers as ``data`` for these ids, instead of the listed artifact.
    lookups: dict[str, Any] = field(default_factory=dict)
    requests: list[Request] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._served: dict[str, int] = {}
        self._socket = socket.create_server(("127.0.0.1", 0))
        self._socket.settimeout(0.1)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._socket.getsockname()[1]}/v1"

    def connection_json(self, **extra: Any) -> str:
        """An Airflow connection to this server: few, fast client retries unless ``extra`` says otherwise."""
        settings = {"max_retries": 3, "retry_max_wait": 0.01, "read_timeout": SOCKET_TIMEOUT, **extra}
        return json.dumps(
            {"conn_type": "nairi", "host": self.base_url, "password": API_KEY, "extra": settings}
        )

    def content_requests(self, artifact_id: str) -> list[str | None]:
        """The ``Range`` header of each content request for ``artifact_id`` (``None``: no Range)."""
        suffix = f"/artifacts/{artifact_id}/content"
        return [r.range for r in self.requests if unquote(r.path).endswith(suffix)]

    def close(self) -> None:
        self._stop.set()
        self._thread.join(SOCKET_TIMEOUT)
        self._socket.close()

    def __enter__(self) -> ArtifactServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- serving --------------------------------------------------------------------------------------------

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._socket.accept()
            except TimeoutError:
                continue
            with conn:
                conn.settimeout(SOCKET_TIMEOUT)
                try:
                    request = _read_request(conn)
                    if request is not None:
                        self.requests.append(request)
                        conn.sendall(self._answer(request))
                except OSError:
                    pass  # the client went away: its problem, not the server's

    def _answer(self, request: Request) -> bytes:
        parts = request.path.removeprefix("/v1/").split("/")
        if parts == ["artifacts"]:
            return envelope(
                self.artifacts, pagination={"limit": 200, "offset": 0, "total": None, "has_more": False}
            )
        artifact_id = unquote(parts[1]) if len(parts) > 1 else ""
        if len(parts) == 2:
            if artifact_id in self.lookups:
                return envelope(self.lookups[artifact_id])
            found = [a for a in self.artifacts if a.get("id") == artifact_id]
            return envelope(found[0]) if found else answer(404, {}, b"")
        script = self.contents.get(artifact_id, b"")
        if isinstance(script, bytes):
            return whole(script)
        index = self._served.get(artifact_id, 0)
        self._served[artifact_id] = index + 1
        step = script[min(index, len(script) - 1)]
        return step(request) if callable(step) else step


def _read_request(conn: socket.socket) -> Request | None:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            return None
        data += chunk
    head = data.partition(b"\r\n\r\n")[0].decode("latin-1").split("\r\n")
    method, target, _ = head[0].split(" ", 2)
    url = urlsplit(target)
    headers = {
        k.strip().lower(): v.strip() for k, v in (line.split(":", 1) for line in head[1:] if ":" in line)
    }
    return Request(method, url.path, url.query, headers)


def artifact(
    artifact_id: str, name: Any, content: bytes, *, sha256: bool = True, **fields: Any
) -> dict[str, Any]:
    """Artifact metadata as the API returns it (``sha256=False`` leaves the checksum out)."""
    return {
        "id": artifact_id,
        "name": name,
        "content_type": "application/octet-stream",
        "size_bytes": len(content),
        "sha256": hashlib.sha256(content).hexdigest() if sha256 else None,
        "conversation_id": "conv_1",
        "created_by": "agent",
        **fields,
    }


def all_files(root: Any) -> Iterable[str]:
    """Every file under ``root`` (a ``pathlib.Path``), relative to it, sorted."""
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())
