"""Resolve the ``sources`` of an upload and upload them: the one upload path of the provider.

:func:`resolve_sources` turns what a DAG author writes into a list of :class:`UploadFile` objects, checking
every one of them before anything is sent:

- a local path (``"data/report.pdf"``, ``pathlib.Path``) or a ``file://`` URI;
- a glob (``"transcripts/*.txt"``, ``"transcripts/**/*.vtt"``, ``"s3://bucket/in/*.csv"``): the files it
  matches, sorted by name; directories it matches are left out;
- any URI or :class:`~airflow.sdk.ObjectStoragePath` that Airflow's object storage knows (``s3://``, ``gs://``,
  ``abfs://``... with the provider that brings it installed; ``s3://my_conn@bucket/key`` picks a connection);
- a list of any of these; a file named twice is uploaded once.

A missing source, a directory, or a glob that matches no file raises
:class:`~airflow_provider_nairi.exceptions.NairiConfigurationError` naming the source and the fix, before the
first upload.

:func:`upload_sources` is what
:class:`~airflow_provider_nairi.operators.content.NairiUploadArtifactsOperator` and the conversation
operators' ``attachments`` call. Each file is streamed by the hook in constant memory, with an idempotency key
derived from the task instance and the file's identity (its location, size and modification time, or the
object store's fingerprint): a retried or cleared task replays the earlier upload instead of creating a
duplicate artifact, while a file that changed in between is uploaded again.
"""

from __future__ import annotations

import glob
import logging
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Union

from airflow.providers.common.compat.sdk import ObjectStoragePath
from fsspec.core import url_to_fs

from airflow_provider_nairi.exceptions import NairiConfigurationError
from airflow_provider_nairi.idempotency import task_idempotency_key

if TYPE_CHECKING:
    from airflow_provider_nairi.client.api import NairiApi

log = logging.getLogger(__name__)

#: What ``sources`` may hold: one item or a list of them.
SourceItem = Union[str, "os.PathLike[str]", ObjectStoragePath]

_GLOB_CHARS = frozenset("*?[")
_LOCAL_PROTOCOLS = frozenset({"file", "local"})


@dataclass(frozen=True)
class UploadFile:
    """One file to upload.

    :param location: where it is, as the user wrote it (a local path or a URI); used in messages and XCom.
    :param name: the file name, sent as the artifact's name.
    :param size: size in bytes when resolved.
    :param identity: location, size and modification time (or the store's fingerprint): what the idempotency
        key is derived from, so an unchanged file maps to the same key and a changed one to a new key.
    :param path: what the hook opens and streams: a :class:`pathlib.Path` for local files, else the
        :class:`~airflow.sdk.ObjectStoragePath`.
    """

    location: str
    name: str
    size: int
    identity: str
    path: Path | ObjectStoragePath


def _is_glob(text: str) -> bool:
    return any(char in _GLOB_CHARS for char in text)


def _is_uri(text: str) -> bool:
    return "://" in text


def _local_source(path: Path, location: str) -> UploadFile:
    if path.is_dir():
        raise NairiConfigurationError(
            f"sources: {location!r} is a directory. Name the files, or give a glob such as "
            f"'{os.path.join(location, '*')}' to upload the files inside it."
        )
    if not path.is_file():
        raise NairiConfigurationError(
            f"sources: {location!r} does not exist (or is not a regular file) on this worker. Check the "
            "path; relative paths are resolved against the worker's current directory: prefer absolute paths."
        )
    resolved = path.resolve()
    stat = resolved.stat()
    return UploadFile(
        location=location,
        name=path.name,  # as given: a symlink keeps its own name
        size=stat.st_size,
        identity=f"{resolved}|{stat.st_size}|{stat.st_mtime_ns}",
        path=resolved,
    )


def _storage_source(path: ObjectStoragePath, location: str) -> UploadFile:
    try:
        info = path.fs.info(path.path)
    except FileNotFoundError:
        raise NairiConfigurationError(
            f"sources: {location!r} does not exist in object storage. Check the bucket and key, and that the "
            "connection in the URI (scheme://conn_id@bucket/key) can read it."
        ) from None
    if info.get("type") == "directory":
        raise NairiConfigurationError(
            f"sources: {location!r} is a directory (prefix). Name the objects, or give a glob such as "
            f"'{location.rstrip('/')}/*' to upload the objects under it."
        )
    size = int(info.get("size") or 0)
    return UploadFile(
        location=location,
        name=path.name,
        size=size,
        identity=f"{location}|{size}|{path.ukey()}",
        path=path,
    )


def _source(item: SourceItem, location: str) -> UploadFile:
    path = as_path(item)
    if isinstance(path, ObjectStoragePath):  # first: on Airflow 2 it is also a pathlib.Path
        return _storage_source(path, location)
    return _local_source(path, location)


def _split_glob(uri: str) -> tuple[str, str]:
    """``"s3://b/in/*/x.csv"`` -> ``("s3://b/in", "*/x.csv")``: the fixed prefix and the pattern."""
    scheme, _, rest = uri.partition("://")
    parts = rest.split("/")
    first = next(i for i, part in enumerate(parts) if _is_glob(part))
    return f"{scheme}://{'/'.join(parts[:first])}", "/".join(parts[first:])


def _expand_glob(pattern: str) -> list[UploadFile]:
    if _is_uri(pattern) and not pattern.startswith("file://"):
        base, rest = _split_glob(pattern)
        matches = sorted(_storage_path(base).glob(rest), key=str)
        found = [_source(match, str(match)) for match in matches if not match.is_dir()]
    else:
        local = str(_local_uri_path(pattern)) if pattern.startswith("file://") else pattern
        names = sorted(glob.glob(os.path.expanduser(local), recursive=True))
        found = [_source(name, name) for name in names if not os.path.isdir(name)]
    if not found:
        raise NairiConfigurationError(
            f"sources: the glob {pattern!r} matches no file. Check the pattern and that the files exist when "
            "the task runs ('**' matches across directories)."
        )
    return found


def _local_uri_path(uri: str) -> Path:
    """The local path of a ``file://`` or ``local://`` URI, read by fsspec without an ObjectStoragePath: local
    URIs work wherever local paths do, whatever Airflow's object storage can do."""
    return Path(url_to_fs(uri)[1])


def _storage_path(uri: str) -> ObjectStoragePath:
    """``ObjectStoragePath(uri)``, with the fix named when Airflow cannot build one at all."""
    try:
        return ObjectStoragePath(uri)
    except TypeError as error:  # upath's "detected protocol ... incompatible with ObjectStoragePath"
        raise NairiConfigurationError(
            f"{uri!r}: Airflow's ObjectStoragePath cannot open it ({error}). Airflow 3.0 refuses every URI "
            "this way when universal-pathlib 0.3 or later is installed: install Airflow with its constraints "
            "file, or pin 'universal-pathlib<0.3' (local paths and file:// URIs work either way)."
        ) from None


def as_path(location: str | os.PathLike[str] | ObjectStoragePath) -> Path | ObjectStoragePath:
    """A local :class:`~pathlib.Path` for a local path or ``file://`` URI, else an ObjectStoragePath.

    Used for the places the provider writes to (download destinations, ``output_path``) and for sources.
    """
    if isinstance(location, ObjectStoragePath):
        return Path(location.path) if location.protocol in _LOCAL_PROTOCOLS else location
    if isinstance(location, str) and _is_uri(location):
        if location.partition("://")[0] in _LOCAL_PROTOCOLS:
            return _local_uri_path(location)
        return as_path(_storage_path(location))
    return Path(location).expanduser()


def _resolve_one(item: SourceItem) -> list[UploadFile]:
    if isinstance(item, str) and item.strip():
        return _expand_glob(item) if _is_glob(item) else [_source(item, item)]
    if isinstance(item, (os.PathLike, ObjectStoragePath)):
        return [_source(item, str(item))]
    raise NairiConfigurationError(
        f"sources: {item!r} is not a path, glob or URI. Give a string, a pathlib.Path or an "
        "ObjectStoragePath, or a list of them."
    )


def resolve_sources(sources: SourceItem | Iterable[SourceItem]) -> list[UploadFile]:
    """Expand ``sources`` into the files to upload, in the order given; check all of them first.

    :raises NairiConfigurationError: no source given, a source is missing or a directory, or a glob matches no
        file. The message names the source and says how to fix it.
    """
    items: list[Any] = [sources]
    if isinstance(sources, Iterable) and not isinstance(sources, (str, os.PathLike, ObjectStoragePath)):
        items = list(sources)
    if not items or items == [None]:
        raise NairiConfigurationError("sources: give at least one path, glob or URI to upload.")
    resolved: dict[str, UploadFile] = {}
    for item in items:
        for source in _resolve_one(item):
            resolved.setdefault(source.identity, source)
    return list(resolved.values())


def upload_sources(
    api: NairiApi,
    sources: SourceItem | Iterable[SourceItem],
    ti: Any,
    *,
    conversation_id: str | None = None,
) -> list[dict[str, Any]]:
    """Upload every file of ``sources`` as an artifact; return one summary per file, in order.

    All sources are resolved and checked before the first upload. Each summary is
    ``{"id", "name", "size_bytes", "sha256", "source"}`` (``source`` is the location the file came from).

    :param api: the API object that streams the files (``hook.client``, a
        :class:`~airflow_provider_nairi.client.sync.NairiClient`).
    :param sources: paths, globs, URIs or ObjectStoragePaths (see :func:`resolve_sources`).
    :param ti: the running task instance; with the file's identity it gives each upload its idempotency key.
    :param conversation_id: attach the artifacts to this conversation.
    :raises NairiConfigurationError: a source is missing, a directory, or an empty glob (nothing is uploaded).
    :raises NairiError: an upload failed; the files uploaded before it are replayed, not duplicated, on retry.
    """
    resolved = resolve_sources(sources)
    uploaded = []
    for source in resolved:
        artifact = api.upload_artifact(
            source.path,
            name=source.name,
            conversation_id=conversation_id,
            idempotency_key=task_idempotency_key(ti, "upload", source.identity),
        )
        log.info("Uploaded %s (%d bytes) as artifact %s", source.location, source.size, artifact["id"])
        uploaded.append(
            {
                "id": artifact["id"],
                "name": artifact.get("name", source.name),
                "size_bytes": artifact.get("size_bytes", source.size),
                "sha256": artifact.get("sha256"),
                "source": source.location,
            }
        )
    return uploaded
