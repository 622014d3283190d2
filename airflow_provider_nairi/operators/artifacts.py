"""Artifacts in and out: :class:`NairiUploadArtifactsOperator`, :class:`NairiDownloadArtifactsOperator`.

Errors a retry cannot fix (a missing source, a destination that holds other content, 401, 403, 404, 422) fail
the task at once; the others (429, 5xx, network, a checksum mismatch) let Airflow's retries apply
(:mod:`airflow_provider_nairi.outcomes`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import ObjectStoragePath

from airflow_provider_nairi.client.transfer import TEMP_PREFIX, child_path, file_names
from airflow_provider_nairi.exceptions import (
    NairiConfigurationError,
    NairiDestinationExistsError,
    NairiServerError,
)
from airflow_provider_nairi.lineage import Lineage, download_lineage, upload_lineage
from airflow_provider_nairi.operators.base import NairiBaseOperator
from airflow_provider_nairi.sources import SourceItem, as_path, upload_sources
from airflow_provider_nairi.validation import check_flag, ids_of

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context

_CHUNK = 1 << 20


class NairiUploadArtifactsOperator(NairiBaseOperator):
    """Upload local files or object-storage objects as Nairi artifacts.

    ``sources`` are resolved and checked first (see :func:`airflow_provider_nairi.sources.resolve_sources`):
    a missing file, a directory or a glob that matches nothing fails the task before anything is uploaded.
    Each file is streamed in constant memory. Each upload carries an idempotency key derived from the task
    instance and the file's identity (location, size, modification time), so a retry or a cleared task replays
    the earlier uploads instead of creating duplicates; a file that changed in between is uploaded anew.

    Returns (XCom) one dict per file, in order: ``{"id", "name", "size_bytes", "sha256", "source"}``. Pass it
    as ``artifact_ids=`` to another Nairi operator as it is.

    :param sources: a path, glob, ``file://`` / ``s3://``... URI or ObjectStoragePath, or a list of them
        (templated).
    :param conversation_id: attach the artifacts to this conversation (templated).
    :param conn_id: the Nairi connection.
    """

    template_fields = ("sources", "conversation_id")

    def __init__(
        self,
        *,
        sources: SourceItem | list[SourceItem],
        conversation_id: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.sources = sources
        self.conversation_id = conversation_id

    def run(self, context: Context) -> list[dict[str, Any]]:
        return upload_sources(self.api, self.sources, context["ti"], conversation_id=self.conversation_id)

    def lineage(self, namespace: str, result: Any) -> Lineage | None:
        return upload_lineage(namespace, result)


def _sha256_of(path: Path | ObjectStoragePath) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        while chunk := file.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _artifact(answer: Any) -> dict[str, Any]:
    """An artifact the API returned, checked to be an object with a non-empty string ``id``."""
    if not isinstance(answer, Mapping) or not isinstance(answer.get("id"), str) or not answer["id"]:
        raise NairiServerError(
            f"an artifact came back as a {type(answer).__name__} without a string id: it cannot be fetched.",
            code="malformed_answer",
        )
    return dict(answer)


def target_names(artifacts: Sequence[Mapping[str, Any]]) -> list[str]:
    """Distinct, safe file names for ``artifacts``, in order (:func:`~.transfer.file_names`): each name
    reduced to one plain path component, ``<id>-`` prefixed where two share one."""
    return file_names([(artifact.get("name"), artifact.get("id")) for artifact in artifacts])


def _announced_size(artifact: Mapping[str, Any]) -> int | None:
    """The artifact's ``size_bytes`` when it is a whole number of bytes, ``None`` when absent; anything
    else is a malformed answer."""
    size = artifact.get("size_bytes")
    if size is None or (isinstance(size, int) and not isinstance(size, bool) and size >= 0):
        return size
    raise NairiServerError(
        f"artifact {artifact['id']} announces size_bytes {str(size)[:40]!r}, not a number of bytes.",
        code="malformed_answer",
    )


class NairiDownloadArtifactsOperator(NairiBaseOperator):
    """Download a conversation's artifacts (or the listed ones) into a folder or object storage.

    Give ``conversation_id`` or ``artifact_ids`` (exactly one). Each artifact is written as
    ``<destination>/<name>``, whatever the server sends: the name is reduced to one plain file name (its
    last path part; control characters become ``_``; cut to 255 bytes keeping the extension; the artifact
    id when nothing usable is left, e.g. ``..``), the path is checked to be inside the destination before
    anything is written, and where two artifacts share a name both are written as ``<id>-<name>`` (the full
    rule: ``docs/content.md``). So an agent cannot write outside the destination, no two artifacts land on
    one file, and no name stops the others from downloading.

    - Nothing is overwritten unless ``overwrite=True``: before the first byte is downloaded, every target is
      checked; an existing file that already holds the artifact's exact bytes (same sha256) is kept as it is
      (so a retry after a partial run goes on where it stopped); any other existing file fails the task,
      naming it.
    - Each download is streamed to a temporary name next to the target (``.nairi-...``) and renamed when
      complete and verified, so a target never holds a partial file. The hook resumes a broken transfer
      with ``Range`` (checking the ``Content-Range``), checks the byte count against ``size_bytes`` and
      verifies the sha256 the API announced; a mismatch fails the try and Airflow's retries apply.

    Returns (XCom) the written paths (local paths, or URIs for object storage), in the API's order.

    :param destination: a local folder, ``file://`` / ``s3://``... URI or ObjectStoragePath (templated);
        created if missing.
    :param conversation_id: download every artifact of this conversation (templated).
    :param artifact_ids: download these artifacts: ids, or the dicts an upload operator returned (templated).
    :param created_by: only artifacts created by ``"agent"`` or ``"user"``; ``None`` (default) keeps all.
    :param overwrite: replace existing files that differ.
    :param conn_id: the Nairi connection.
    """

    template_fields = ("destination", "conversation_id", "artifact_ids")

    def __init__(
        self,
        *,
        destination: str | Path | ObjectStoragePath,
        conversation_id: str | None = None,
        artifact_ids: list[str] | list[dict[str, Any]] | None = None,
        created_by: str | None = None,
        overwrite: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if created_by not in (None, "agent", "user"):
            raise ValueError(f"created_by: {created_by!r} is not 'agent', 'user' or None.")
        check_flag("overwrite", overwrite)
        self.destination = destination
        self.conversation_id = conversation_id
        self.artifact_ids = artifact_ids
        self.created_by = created_by
        self.overwrite = overwrite

    def _artifacts(self) -> list[dict[str, Any]]:
        ids = ids_of(self.artifact_ids, "artifact_ids")
        if (ids is None) == (self.conversation_id is None):
            raise NairiConfigurationError(
                "Give exactly one of conversation_id or artifact_ids "
                f"(got {'both' if ids is not None else 'neither'})."
            )
        if ids is not None:  # the id asked for is the one downloaded, whatever the answer says
            artifacts = [
                {**_artifact(self.api.get_artifact(artifact_id)), "id": artifact_id} for artifact_id in ids
            ]
        else:
            artifacts = [_artifact(a) for a in self.api.list_artifacts(conversation_id=self.conversation_id)]
        return [a for a in artifacts if self.created_by in (None, a.get("created_by"))]

    def _plan(
        self, folder: Path | ObjectStoragePath, artifacts: list[dict[str, Any]]
    ) -> list[tuple[dict[str, Any], Path | ObjectStoragePath, bool]]:
        """``(artifact, target, download?)`` per artifact; raise if a target exists and must not change."""
        plan, conflicts = [], []
        for artifact, name in zip(artifacts, target_names(artifacts), strict=True):
            target = child_path(folder, name)
            download = True
            if target.exists() and (not self.overwrite or not target.is_file()):  # a folder is never replaced
                if target.is_file() and _sha256_of(target) == str(artifact.get("sha256")).lower():
                    download = False
                else:
                    conflicts.append(str(target))
            plan.append((artifact, target, download))
        if conflicts:
            raise NairiDestinationExistsError(
                f"destination: {', '.join(conflicts)} already exist(s) with other content; nothing was "
                "downloaded. Set overwrite=True to replace them, or pick another destination."
            )
        return plan

    def _download(self, artifact: Mapping[str, Any], target: Path | ObjectStoragePath) -> None:
        sha256, size = artifact.get("sha256"), _announced_size(artifact)

        def fetch(destination: Any) -> None:
            self.api.download_artifact(
                artifact["id"], destination, expected_sha256=sha256, expected_size=size
            )

        if not isinstance(target, ObjectStoragePath):  # the hook writes a temp file, renamed once verified
            fetch(target)
            return
        # A hidden name no artifact can get (file_names never starts one with TEMP_PREFIX), the same for the
        # same target on a retry (a leftover is overwritten, not piled up).
        digest = hashlib.sha256(target.name.encode()).hexdigest()[:32]
        partial = target.with_name(f"{TEMP_PREFIX}{digest}.partial")
        try:
            with partial.open("wb") as file:  # type: ignore[no-untyped-call]
                fetch(file)
            partial.replace(target)
        except BaseException:
            partial.unlink(missing_ok=True)
            raise

    def run(self, context: Context) -> list[str]:
        folder = as_path(self.destination)
        if folder.exists() and not folder.is_dir():
            raise NairiDestinationExistsError(
                f"destination: {self.destination!s} is a file; give a folder (it is created if missing)."
            )
        artifacts = self._artifacts()
        plan = self._plan(folder, artifacts)
        folder.mkdir(parents=True, exist_ok=True)
        written = []
        self.downloaded = [artifact for artifact, _, _ in plan]
        for artifact, target, download in plan:
            if download:
                self._download(artifact, target)
                self.log.info("Downloaded artifact %s to %s", artifact["id"], target)
            else:
                self.log.info("Kept %s: it already holds artifact %s", target, artifact["id"])
            written.append(str(target))
        return written

    #: The artifacts of the latest run, in the order of the written paths.
    downloaded: list[dict[str, Any]] | None = None

    def asset_extra(self, result: Any) -> dict[str, Any]:
        """Per written file: its path, the artifact id and its sha256 (the download verified it)."""
        artifacts = self.downloaded or []
        files = [
            {"path": path, "id": artifact.get("id"), "sha256": artifact.get("sha256")}
            for path, artifact in zip(result or [], artifacts, strict=False)
        ]
        return super().asset_extra(files)

    def lineage(self, namespace: str, result: Any) -> Lineage | None:
        return download_lineage(namespace, [str(a.get("id")) for a in self.downloaded or []], result or [])
