"""Streaming file transfer: multipart bodies of known length, and download targets that never hold half a
file.

Uploads: :class:`MultipartBody` is an iterable of ``[preamble, 1 MiB file chunks..., epilogue]`` with a
``len()``, so ``requests`` sends it with a ``Content-Length`` (not chunked) in constant memory. Iterating it
again re-reads the source from its start: that is how a retried upload rebuilds its body.

Downloads: :func:`download_target` gives a binary file to write into; for a path it is a temporary file next
to the destination, renamed over it only when the caller finished and verified the bytes.
:func:`body_position` checks where an answer's body sits in the file and how long the file is, so that a
resumed download is not stitched from the wrong bytes. :func:`file_names` turns names and ids the server
sent into distinct, safe file names (one path component each) and :func:`child_path` checks the result
before anything is written.

Imports no Airflow.
"""

from __future__ import annotations

import contextlib
import hashlib
import mimetypes
import os
import re
import tempfile
import unicodedata
import uuid
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import IO, Any, TypeVar

from airflow_provider_nairi.exceptions import (
    NairiChecksumError,
    NairiConfigurationError,
    NairiError,
    NairiServerError,
)

CHUNK_SIZE = 1 << 20

#: Longest file name, in bytes of UTF-8, that common file systems hold (``NAME_MAX`` of Linux and macOS).
NAME_MAX = 255
#: Start of the provider's own temporary names in a download folder; no downloaded file gets such a name.
TEMP_PREFIX = ".nairi-"
#: An extension longer than this (in bytes) is not kept apart when a name is cut to fit :data:`NAME_MAX`.
_MAX_EXTENSION = 32
#: Unicode categories replaced by ``_`` in a file name: control (NUL, newline, DEL...), format (the
#: right-to-left override that disguises ``gpj.exe`` as ``exe.jpg``...), lone surrogates (not UTF-8).
_UNSAFE_CATEGORIES = frozenset({"Cc", "Cf", "Cs"})
_CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+)")

PathT = TypeVar("PathT")


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


def _cut(text: str, size: int) -> str:
    """``text`` cut to at most ``size`` bytes of UTF-8, on a character boundary."""
    return text.encode()[: max(size, 0)].decode("utf-8", "ignore")


def _fit(stem: str, tail: str) -> str:
    """``stem + tail``, the stem cut so that the whole holds in :data:`NAME_MAX` bytes."""
    return _cut(stem, NAME_MAX - len(tail.encode())) + tail


def _split_extension(name: str) -> tuple[str, str]:
    stem, extension = os.path.splitext(name)
    return (stem, extension) if len(extension.encode()) <= _MAX_EXTENSION else (name, "")


def _component(value: object) -> str | None:
    """``value`` as one safe path component, or ``None`` when nothing usable is left.

    The text after the last ``/`` or ``\\``; control and format characters and lone surrogates become
    ``_``; cut to :data:`NAME_MAX` bytes keeping the extension. Unusable: not a string, empty, ``.``,
    ``..``, or starting with :data:`TEMP_PREFIX`.
    """
    if not isinstance(value, str):
        return None
    last = re.split(r"[/\\]", value)[-1]
    clean = "".join("_" if unicodedata.category(char) in _UNSAFE_CATEGORIES else char for char in last)
    if clean in ("", ".", "..") or clean.startswith(TEMP_PREFIX):
        return None
    return _fit(*_split_extension(clean))


def safe_file_name(name: object, fallback: object) -> str:
    """One safe path component for a file the server named ``name`` (see :func:`file_names`).

    ``name`` reduced to its last path part, unsafe characters replaced, cut to fit; when nothing usable is
    left, ``fallback`` (the artifact id) reduced the same way; when that fails too,
    ``artifact-<16 hex digits of the fallback's sha256>``.
    """
    return (
        _component(name)
        or _component(fallback)
        or f"artifact-{hashlib.sha256(repr(fallback).encode(errors='replace')).hexdigest()[:16]}"
    )


def _same_file(name: str) -> str:
    """The form under which two names are one file on macOS and Windows too (case, Unicode normalisation)."""
    return unicodedata.normalize("NFC", name).casefold()


def file_names(files: Sequence[tuple[object, object]]) -> list[str]:
    """Distinct safe file names for ``(name, id)`` pairs the server sent, in their order.

    Each name is reduced by :func:`safe_file_name` (fallback: the id). Names that then repeat (ignoring case
    and Unicode normalisation, so that they stay apart on macOS and Windows) become ``<id>-<name>``. Should
    one still be taken by an earlier file (the same id twice, or a file really named ``<id>-<name>``), it gets
    ``-2``, ``-3``... before its extension. Every result is at most :data:`NAME_MAX` bytes.
    """
    names = [safe_file_name(name, file_id) for name, file_id in files]
    repeats = Counter(_same_file(name) for name in names)
    taken: set[str] = set()
    result = []
    for (_, file_id), name in zip(files, names, strict=True):
        stem, extension = _split_extension(name)
        if repeats[_same_file(name)] > 1:
            stem = f"{safe_file_name(file_id, file_id)}-{stem}"
        candidate, number = _fit(stem, extension), 1
        while _same_file(candidate) in taken:
            number += 1
            candidate = _fit(stem, f"-{number}{extension}")
        taken.add(_same_file(candidate))
        result.append(candidate)
    return result


def child_path(folder: PathT, name: str) -> PathT:
    """``folder / name``, after checking that it is a file directly inside ``folder`` (a ``Path`` or an
    ``ObjectStoragePath``); a name that would leave it raises ``NairiError`` (``unsafe_path``)."""
    target = folder / name  # type: ignore[operator]
    if _component(name) != name or target.name != name or target.parent != folder:
        raise NairiError(
            f"refused to write {name!r}: it is not a plain file name inside {folder!s}.", code="unsafe_path"
        )
    return target  # type: ignore[no-any-return]


@contextlib.contextmanager
def download_target(destination: Any) -> Iterator[IO[bytes]]:
    """A binary file to write a download into.

    A path: a temporary file in the destination's directory, renamed over the destination when the block ends
    without error, removed otherwise (the destination never holds a partial file). A file object: itself.
    A path that is an existing folder raises ``NairiConfigurationError`` before anything is sent.
    """
    if not isinstance(destination, (str, os.PathLike)):
        yield destination
        return
    target = Path(destination)
    if target.is_dir():
        raise NairiConfigurationError(
            f"destination: {target} is a folder; give the path of the file to write.",
            code="invalid_destination",
        )
    handle, temp_name = tempfile.mkstemp(prefix=TEMP_PREFIX, suffix=".part", dir=target.parent)
    try:
        with os.fdopen(handle, "wb") as file:
            yield file
        os.replace(temp_name, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp_name)
        raise


def body_position(
    status: int, headers: Mapping[str, str], asked_from: int, known_size: int | None, *, path: str
) -> tuple[int, int | None]:
    """Where a download answer's body starts in the file, and the file size it announces (or ``None``).

    ``asked_from``: the byte the request's ``Range`` started at (0: no ``Range``). A 206 must carry
    ``Content-Range: bytes <asked_from>-<end>/<size>``; a 200 (or any other 2xx) starts at 0 and announces
    its ``Content-Length`` (unless the body is content-encoded). An announced size that differs from
    ``known_size`` (what an earlier answer or the artifact's ``size_bytes`` said) is refused too. Raises
    ``NairiServerError`` (``bad_content_range`` or ``size_mismatch``; retryable) naming what the server did.
    """

    def refuse(what: str, code: str = "bad_content_range") -> NairiServerError:
        return NairiServerError(what, status=status, code=code, method="GET", path=path)

    if status == 206:
        content_range = headers.get("Content-Range", "")
        match = _CONTENT_RANGE.fullmatch(content_range.strip())
        if not match:
            raise refuse(
                f"a 206 answer came with Content-Range {content_range[:80]!r}, not "
                f"'bytes {asked_from}-<end>/<size>'."
            )
        start, end, size = (int(group) for group in match.groups())
        if start != asked_from or not start <= end < size:
            raise refuse(
                f"asked for the bytes from {asked_from} on, the server sent {content_range[:80]!r} (a "
                "resumed download must continue exactly where it stopped)."
            )
        announced: int | None = size
    else:
        start, length = 0, headers.get("Content-Length", "")
        plain = headers.get("Content-Encoding", "identity").strip().lower() in ("", "identity")
        announced = int(length) if plain and length.strip().isdigit() else None
    if known_size is not None and announced is not None and announced != known_size:
        raise refuse(
            f"the server announced a file of {announced} bytes, {known_size} bytes were announced before.",
            "size_mismatch",
        )
    return start, known_size if announced is None else announced


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
        wanted = str(expected).strip().lower() if expected else ""  # the server may send anything
        if wanted and wanted != actual:
            raise NairiChecksumError(
                f"downloaded bytes have sha256 {actual}, expected {_cut(wanted, 80)}.",
                code="checksum_mismatch",
                method=method,
                path=path,
            )
