"""Streaming file transfer: multipart bodies of known length, and download targets that never hold half a
file.

Uploads: :class:`MultipartBody` is an iterable of ``[preamble, 1 MiB file chunks..., epilogue]`` with a
``len()``, so ``requests`` sends it with a ``Content-Length`` (not chunked) in constant memory. Iterating it
again re-reads the source from its start: that is how a retried upload rebuilds its body.

Downloads: :func:`download_target` gives a binary file to write into; for a path it is a temporary file next
to the destination, renamed over it only when the caller finished and verified the bytes.

Imports no Airflow.
"""

from __future__ import annotations

import contextlib
import mimetypes
import os
import tempfile
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import IO, Any

from airflow_provider_nairi.exceptions import NairiChecksumError, NairiConfigurationError

CHUNK_SIZE = 1 << 20


@contextlib.contextmanager
def open_source(source: Any) -> Iterator[IO[bytes]]:
    """Open an upload source for reading from its start.

    A ``str`` / ``os.PathLike`` is opened (and closed); an object with ``read`` is used as is from its current
    position (the caller keeps it open); an object with ``open`` (``ObjectStoragePath``) is opened ``"rb"``.
    """
    if isinstance(source, str):
        with open(source, "rb") as file:
            yield file
    elif hasattr(source, "read"):
        yield source
    elif hasattr(source, "open"):  # pathlib.Path; ObjectStoragePath (also os.PathLike on Airflow 2)
        with source.open("rb") as file:
            yield file
    elif isinstance(source, os.PathLike):
        with open(source, "rb") as file:
            yield file
    else:
        raise NairiConfigurationError(
            f"Cannot upload a {type(source).__name__}: give a path, a binary file object or an "
            "ObjectStoragePath.",
            code="invalid_source",
        )


def source_name(source: Any) -> str:
    """The file name sent in the multipart part: the path's or file object's base name, else ``upload``."""
    raw = getattr(source, "name", None) if not isinstance(source, (str, os.PathLike)) else source
    name = os.path.basename(os.fspath(raw)) if isinstance(raw, (str, os.PathLike)) else ""
    return name or "upload"


class MultipartBody:
    """A ``multipart/form-data`` body: text ``fields`` then the source as part ``file``; length known up
    front.

    A file object is read from the position it had when the body was built (and sought back there on every
    iteration), so it must be seekable.
    """

    def __init__(self, source: Any, fields: Mapping[str, str], filename: str | None = None) -> None:
        self.source = source
        self.boundary = f"nairi-{uuid.uuid4().hex}"
        filename = (filename or source_name(source)).replace('"', "%22").replace("\r", "").replace("\n", "")
        head = b"".join(
            f'--{self.boundary}\r\nContent-Disposition: form-data; name="{_quote(k)}"\r\n\r\n{v}\r\n'.encode()
            for k, v in fields.items()
        )
        self.preamble = (
            head
            + (
                f"--{self.boundary}\r\n"
                f'Content-Disposition: form-data; name="file"; filename="{filename}"\r\n'
                f"Content-Type: {mimetypes.guess_type(filename)[0] or 'application/octet-stream'}\r\n\r\n"
            ).encode()
        )
        self.epilogue = f"\r\n--{self.boundary}--\r\n".encode()
        with open_source(source) as file:
            if not file.seekable():
                raise NairiConfigurationError(
                    "The upload source is not seekable: its size must be known and a retry must re-read it.",
                    code="invalid_source",
                )
            self._start = file.tell()
            self.file_size = file.seek(0, os.SEEK_END) - self._start
            file.seek(self._start)

    @property
    def content_type(self) -> str:
        return f"multipart/form-data; boundary={self.boundary}"

    def __len__(self) -> int:
        return len(self.preamble) + self.file_size + len(self.epilogue)

    def __iter__(self) -> Iterator[bytes]:
        yield self.preamble
        with open_source(self.source) as file:
            file.seek(self._start)
            left = self.file_size
            while left > 0:
                chunk = file.read(min(CHUNK_SIZE, left))
                if not chunk:
                    raise NairiConfigurationError(
                        "The upload source shrank while it was being sent.", code="invalid_source"
                    )
                left -= len(chunk)
                yield chunk
        yield self.epilogue


def _quote(name: str) -> str:
    return name.replace('"', "%22")


@contextlib.contextmanager
def download_target(destination: Any) -> Iterator[IO[bytes]]:
    """A binary file to write a download into.

    A path: a temporary file in the destination's directory, renamed over the destination when the block ends
    without error, removed otherwise (the destination never holds a partial file). A file object: itself.
    """
    if not isinstance(destination, (str, os.PathLike)):
        yield destination
        return
    target = Path(destination)
    handle, temp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent)
    try:
        with os.fdopen(handle, "wb") as file:
            yield file
        os.replace(temp_name, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp_name)
        raise


def etag_sha256(etag: str | None) -> str | None:
    """The sha256 an ``ETag`` announces (quotes and a weak ``W/`` prefix removed), lower-case."""
    if not etag:
        return None
    value = etag.strip().removeprefix("W/").strip('"').lower()
    return value or None


def verify_sha256(digest: Any, announced: list[str | None], *, method: str, path: str) -> None:
    """Raise NairiChecksumError when ``digest`` (a hashlib object) differs from any announced sha256."""
    actual = digest.hexdigest()
    for expected in announced:
        if expected and expected.lower() != actual:
            raise NairiChecksumError(
                f"downloaded bytes have sha256 {actual}, expected {expected.lower()}.",
                code="checksum_mismatch",
                method=method,
                path=path,
            )
