"""Streaming ``multipart/form-data`` uploads: the file part goes to disk as it arrives, never into memory.

A boundary scan over ``request.stream()`` with ``bytes.find`` (C speed): the file's bytes are written and
hashed (sha256) chunk by chunk, small text fields are kept. Malformed bodies are a 400 ``bad_request``,
unknown fields a 422, a file over the limit a 413 (checked on ``Content-Length`` first, then while reading).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import hashlib
import uuid
from collections.abc import Collection
from dataclasses import dataclass, field
from email.message import Message
from pathlib import Path
from typing import Any

from starlette.requests import Request

from airflow_provider_nairi.emulator.protocol import ApiError, invalid

#: Largest text field and part header block accepted, in bytes.
MAX_FIELD = 64 * 1024
#: Multipart framing allowed on top of the file itself when checking ``Content-Length``.
FRAMING_ALLOWANCE = 64 * 1024


@dataclass
class Upload:
    """A received upload: its text fields and where its file now lives (a temporary name in ``files_dir``)."""

    fields: dict[str, str] = field(default_factory=dict)
    filename: str | None = None
    content_type: str | None = None
    path: Path | None = None
    size: int = 0
    sha256: str = ""

    def discard(self) -> None:
        if self.path is not None:
            self.path.unlink(missing_ok=True)


class FileSink:
    """Writes and hashes a file's bytes in two worker threads, 4 MiB at a time, while the next bytes arrive.

    ``write`` only collects pieces (read-only buffers it may keep: no copy); ``drain`` hands a full block to
    the threads (after the previous block is done, so order is kept and at most two blocks are in memory);
    ``finish`` flushes and returns the sha256.
    """

    BLOCK = 4 * 1024 * 1024
    _pool = concurrent.futures.ThreadPoolExecutor(max_workers=2, thread_name_prefix="nairi-emulator-upload")

    def __init__(self, path: Path) -> None:
        self.file = path.open("wb")
        self.hasher = hashlib.sha256()
        self.pending: list[bytes | memoryview] = []
        self.pending_size = 0
        self.running: list[concurrent.futures.Future[Any]] = []

    def write(self, data: bytes | memoryview) -> None:
        self.pending.append(data)
        self.pending_size += len(data)

    def _hash(self, block: list[bytes | memoryview]) -> None:
        for piece in block:
            self.hasher.update(piece)

    async def drain(self, *, force: bool = False) -> None:
        if self.pending_size < self.BLOCK and not (force and self.pending):
            return
        await self.wait()
        block, self.pending, self.pending_size = self.pending, [], 0
        self.running = [self._pool.submit(self.file.writelines, block), self._pool.submit(self._hash, block)]

    async def wait(self) -> None:
        running, self.running = self.running, []
        if running:
            await asyncio.gather(*(asyncio.wrap_future(f) for f in running))

    async def finish(self) -> str:
        await self.drain(force=True)
        await self.wait()
        self.file.close()
        return self.hasher.hexdigest()

    async def abort(self) -> None:
        with contextlib.suppress(Exception):
            await self.wait()
        self.file.close()


def bad(message: str) -> ApiError:
    return ApiError(400, "bad_request", f"Malformed multipart body: {message}")


def part_headers(raw: bytes) -> Message:
    message = Message()
    for line in raw.decode("utf-8", "replace").split("\r\n"):
        name, sep, value = line.partition(":")
        if not sep:
            raise bad("a part header line has no ':'")
        message[name.strip()] = value.strip()
    return message


class _Parser:
    """State machine of one multipart body; feed it chunks, then call :meth:`finish`."""

    def __init__(self, boundary: bytes, files_dir: Path, limit: int, allowed: Collection[str]) -> None:
        self.opener = b"--" + boundary
        self.delimiter = b"\r\n--" + boundary
        self.files_dir = files_dir
        self.limit = limit
        self.allowed = allowed
        self.buffer = bytearray()
        self.state = "preamble"
        self.upload = Upload()
        self.sink: FileSink | None = None
        self.finished_sink: FileSink | None = None
        self.field_name = ""
        self.field_value = bytearray()

    def feed(self, chunk: bytes) -> None:
        keep = len(self.delimiter) - 1
        if self.state == "body" and self.sink is not None and len(chunk) > keep:
            # Fast path inside a file: no delimiter in the carried tail + chunk, so the chunk itself goes to
            # the sink as a view (bytes are immutable: no copy) and only its last few bytes are carried over.
            joint = bytes(self.buffer) + chunk[:keep]
            if self.delimiter not in joint and chunk.find(self.delimiter) < 0:
                self._to_file(joint[: len(self.buffer)])
                self._to_file(memoryview(chunk)[: len(chunk) - keep])
                self.buffer = bytearray(chunk[len(chunk) - keep :])
                return
        self.buffer += chunk
        while self._step():
            pass

    def _to_file(self, data: bytes | memoryview) -> None:
        assert self.sink is not None
        self.upload.size += len(data)
        if self.upload.size > self.limit:
            raise ApiError(413, "payload_too_large", f"Uploads are limited to {self.limit} bytes.")
        self.sink.write(data)

    def _step(self) -> bool:
        buffer = self.buffer
        if self.state == "preamble":
            index = buffer.find(self.opener)
            if index < 0:
                if len(buffer) > MAX_FIELD:
                    raise bad("no opening boundary")
                return False
            del buffer[: index + len(self.opener)]
            self.state = "after_boundary"
            return True
        if self.state == "after_boundary":
            if len(buffer) < 2:
                return False
            if buffer[:2] == b"--":
                self.state = "done"
                buffer.clear()
                return False
            if buffer[:2] != b"\r\n":
                raise bad("a boundary is not followed by CRLF")
            del buffer[:2]
            self.state = "headers"
            return True
        if self.state == "headers":
            index = buffer.find(b"\r\n\r\n")
            if index < 0:
                if len(buffer) > MAX_FIELD:
                    raise bad("part headers too long")
                return False
            self._open_part(part_headers(bytes(buffer[:index])) if index else Message())
            del buffer[: index + 4]
            self.state = "body"
            return True
        if self.state == "body":
            index = buffer.find(self.delimiter)
            if index >= 0:
                self._emit(index)
                del buffer[: len(self.delimiter)]
                self._close_part()
                self.state = "after_boundary"
                return True
            keep = len(self.delimiter) - 1
            if len(buffer) > keep:
                self._emit(len(buffer) - keep)
            return False
        buffer.clear()  # epilogue after the closing boundary: ignored
        return False

    def _open_part(self, headers: Message) -> None:
        if headers.get_content_disposition() != "form-data" or not headers.get_param(
            "name", header="content-disposition"
        ):
            raise bad("every part needs 'Content-Disposition: form-data; name=...'")
        name = str(headers.get_param("name", header="content-disposition"))
        if name != "file" and name not in self.allowed:
            raise invalid(name, "unknown field")
        if name == "file":
            if self.upload.path is not None:
                raise invalid("file", "send exactly one file")
            self.upload.filename = headers.get_filename()
            self.upload.content_type = headers.get("content-type")
            self.upload.path = self.files_dir / f"upload-{uuid.uuid4().hex}.part"
            self.sink = FileSink(self.upload.path)
        elif name in self.upload.fields:
            raise invalid(name, "given twice")
        self.field_name = name
        self.field_value.clear()

    def _emit(self, end: int) -> None:
        if self.sink is not None:
            self._to_file(bytes(self.buffer[:end]))
        else:
            if len(self.field_value) + end > MAX_FIELD:
                raise invalid(self.field_name, f"longer than {MAX_FIELD} bytes")
            self.field_value += self.buffer[:end]
        del self.buffer[:end]

    def _close_part(self) -> None:
        if self.sink is not None:
            self.finished_sink = self.sink
            self.sink = None
        else:
            try:
                self.upload.fields[self.field_name] = self.field_value.decode()
            except UnicodeDecodeError:
                raise invalid(self.field_name, "must be UTF-8 text") from None

    async def drain(self) -> None:
        if self.sink is not None:
            await self.sink.drain()
        elif self.finished_sink is not None:
            self.upload.sha256 = await self.finished_sink.finish()
            self.finished_sink = None

    async def abort(self) -> None:
        for sink in (self.sink, self.finished_sink):
            if sink is not None:
                await sink.abort()
        self.sink = self.finished_sink = None
        self.upload.discard()


async def receive_upload(request: Request, files_dir: Path, limit: int, allowed: Collection[str]) -> Upload:
    """Read a multipart body with one ``file`` part and the text fields in ``allowed``.

    The caller owns the result: it renames ``upload.path`` into place or calls ``upload.discard()``.
    """
    content_type = request.headers.get("content-type", "")
    header = Message()
    header["content-type"] = content_type
    boundary = header.get_param("boundary")
    if header.get_content_type() != "multipart/form-data" or not isinstance(boundary, str) or not boundary:
        raise bad("send multipart/form-data with a boundary")
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit + FRAMING_ALLOWANCE:
        raise ApiError(413, "payload_too_large", f"Uploads are limited to {limit} bytes.")
    parser = _Parser(boundary.encode("latin-1"), files_dir, limit, allowed)
    try:
        async for chunk in request.stream():
            parser.feed(chunk)
            await parser.drain()
        if parser.state != "done":
            raise bad("the body ends before the closing boundary")
        if parser.upload.path is None:
            raise invalid("file", "a file part is required")
    except BaseException:
        await parser.abort()
        raise
    return parser.upload
