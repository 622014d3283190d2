"""Content operators: artifacts in and out, videos, and the read-only corpus calls (search, recall, chat).

Every operator here sends its requests through :class:`~airflow_provider_nairi.hooks.nairi.NairiHook`
(built at execute time, never while the DAG file is parsed) and turns a
:class:`~airflow_provider_nairi.exceptions.NairiError` into an Airflow outcome in one place,
:mod:`airflow_provider_nairi.outcomes`: errors a retry cannot fix (a missing source, 401, 403, 404, 422) fail
the task at once; the others (429, 5xx, network, a checksum mismatch) let Airflow's retries apply.

.. important:: XCom size rule (search, recall, chat)

    XCom lives in Airflow's metadata database. When ``output_path`` is given (a local path, ``file://`` or any
    ObjectStoragePath URI), the operator always writes the results there as JSON and the XCom holds that path,
    so a downstream task knows what it receives. Without ``output_path`` the XCom holds the results, up to
    :data:`XCOM_MAX_BYTES` (48 KiB of JSON); larger results fail the task with an error that names
    ``output_path``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any, ClassVar

from airflow.providers.common.compat.sdk import ObjectStoragePath

from airflow_provider_nairi.client.transfer import TEMP_PREFIX, child_path, file_names
from airflow_provider_nairi.exceptions import (
    NairiConfigurationError,
    NairiDestinationExistsError,
    NairiServerError,
    NairiXComSizeError,
)
from airflow_provider_nairi.idempotency import task_idempotency_key
from airflow_provider_nairi.links import NairiVideoLink, publish_video_link
from airflow_provider_nairi.operators.base import NairiBaseOperator
from airflow_provider_nairi.options import VIDEO_POLL_INTERVAL, resolve_deferrable
from airflow_provider_nairi.outcomes import TIMEOUT, raise_for_event
from airflow_provider_nairi.resources.video import KIND as VIDEO
from airflow_provider_nairi.resources.video import check_videos
from airflow_provider_nairi.resources.waiting import Waiter, WaitOptions
from airflow_provider_nairi.sources import SourceItem, as_path, resolve_sources, upload_sources
from airflow_provider_nairi.triggers.video import NairiVideoTrigger
from airflow_provider_nairi.validation import check_flag, ids_of

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context


#: Largest JSON result (in bytes) that search, recall and chat put into XCom; see the module docstring.
XCOM_MAX_BYTES = 48 * 1024

#: The API's bound on ``limit`` for search and recall.
MAX_CORPUS_LIMIT = 50

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
        return upload_sources(self.hook, self.sources, context["ti"], conversation_id=self.conversation_id)


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
                {**_artifact(self.hook.get_artifact(artifact_id)), "id": artifact_id} for artifact_id in ids
            ]
        else:
            artifacts = [_artifact(a) for a in self.hook.list_artifacts(conversation_id=self.conversation_id)]
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
            self.hook.download_artifact(
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
        for artifact, target, download in plan:
            if download:
                self._download(artifact, target)
                self.log.info("Downloaded artifact %s to %s", artifact["id"], target)
            else:
                self.log.info("Kept %s: it already holds artifact %s", target, artifact["id"])
            written.append(str(target))
        return written


class NairiCorpusOperator(NairiBaseOperator):
    """Base of the read-only corpus operators: results to XCom, or to ``output_path`` (the XCom size rule).

    :param video_ids: restrict to these videos: ids, or the dicts the video operators returned (templated).
    :param output_path: write the results here as JSON (local path, ``file://`` / ``s3://``... URI or
        ObjectStoragePath; templated) and return the path instead of the results.
    """

    def __init__(
        self,
        *,
        video_ids: list[str] | list[dict[str, Any]] | None = None,
        output_path: str | Path | ObjectStoragePath | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.video_ids = video_ids
        self.output_path = output_path

    def call(self, video_ids: list[str] | None) -> Any:
        """Send the request; return the API's data."""
        raise NotImplementedError

    def run(self, context: Context) -> Any:
        results = self.call(ids_of(self.video_ids, "video_ids"))
        payload = json.dumps(results, ensure_ascii=False)
        if self.output_path is not None:
            target = as_path(self.output_path)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(payload, encoding="utf-8")
            self.log.info("Wrote %d bytes of results to %s", len(payload.encode()), target)
            return str(target)
        size = len(payload.encode())
        if size > XCOM_MAX_BYTES:
            raise NairiXComSizeError(
                f"output_path: the results are {size} bytes of JSON, over the {XCOM_MAX_BYTES} bytes this "
                "operator puts into XCom (the metadata database). Set output_path='s3://.../results.json' "
                "(or a local path) to write them there and pass the path instead, or ask for fewer results."
            )
        return results


class NairiSearchOperator(NairiCorpusOperator):
    """Search the org's video corpus: ``POST /search``.

    Returns (XCom) ``[{"video_id", "start_s", "end_s", "text", "score"}, ...]``, best first, or the path they
    were written to (see the XCom size rule in :mod:`airflow_provider_nairi.operators.content`).

    :param query: what to look for (templated).
    :param limit: at most this many results (1 to 50; the API's default when ``None``).
    :param video_ids: restrict to these videos (templated).
    :param output_path: write the results there instead of XCom (templated).
    :param conn_id: the Nairi connection.
    """

    template_fields = ("query", "video_ids", "output_path")
    #: The hook method this operator calls.
    endpoint = "search"

    def __init__(self, *, query: str, limit: int | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.query = query
        self.limit = limit

    def call(self, video_ids: list[str] | None) -> Any:
        if not isinstance(self.query, str) or not self.query.strip():
            raise NairiConfigurationError(f"query: give a non-empty query (got {self.query!r}).")
        if self.limit is not None and not 1 <= self.limit <= MAX_CORPUS_LIMIT:
            raise NairiConfigurationError(f"limit: {self.limit!r} is not between 1 and {MAX_CORPUS_LIMIT}.")
        return getattr(self.hook, self.endpoint)(self.query, limit=self.limit, video_ids=video_ids)


class NairiRecallOperator(NairiSearchOperator):
    """Recall summarised moments from the org's video corpus: ``POST /recall``.

    Returns (XCom) ``[{"video_id", "start_s", "end_s", "summary", "score"}, ...]``, best first, or the path
    they were written to (see the XCom size rule in :mod:`airflow_provider_nairi.operators.content`).
    Parameters are those of :class:`NairiSearchOperator`.
    """

    endpoint = "recall"


class NairiChatOperator(NairiCorpusOperator):
    """Ask a question about the org's videos: ``POST /chat`` (a single read-only answer, not a conversation).

    Returns (XCom) ``{"answer", "citations": [{"video_id", "start_s", "end_s"}, ...]}``, or the path it was
    written to (see the XCom size rule in :mod:`airflow_provider_nairi.operators.content`).

    :param message: the question (templated).
    :param video_ids: restrict to these videos (templated).
    :param output_path: write the answer there instead of XCom (templated).
    :param conn_id: the Nairi connection.
    """

    template_fields = ("message", "video_ids", "output_path")

    def __init__(self, *, message: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.message = message

    def call(self, video_ids: list[str] | None) -> Any:
        if not isinstance(self.message, str) or not self.message.strip():
            raise NairiConfigurationError(f"message: give a non-empty message (got {self.message!r}).")
        return self.hook.chat(self.message, video_ids=video_ids)


class NairiVideoOperator(NairiBaseOperator):
    """Base of the operators that start video processing and, by default, wait until it ends.

    How completion is detected: every ``poll_interval`` seconds each video is read (``GET /videos/{id}``); the
    wait ends when all are ``ready`` (the XCom is the list of Video objects) or as soon as one is ``failed``
    (the task fails with the API's reason). ``timeout`` is an absolute budget for the wait, counted from the
    start of processing; when it passes the task fails and Airflow's retries apply (the videos are left
    alone). With ``deferrable=True`` the wait happens in the triggerer (:class:`NairiVideoTrigger`), otherwise
    on the worker: the same wait either way (:mod:`airflow_provider_nairi.resources.waiting`).

    :param wait_until_ready: wait for processing to end; ``False`` returns the videos as ``processing``.
    :param deferrable, poll_interval, timeout, max_transient_errors: the waiting options
        (:mod:`airflow_provider_nairi.options`; ``timeout`` ``None``: no bound of its own).
    :param conn_id: the Nairi connection.
    """

    #: A ``failed`` video fails the task without Airflow retries (retrying would not change it).
    final_on_failure: ClassVar[bool] = True
    operator_extra_links = (NairiVideoLink(),)

    def __init__(
        self,
        *,
        wait_until_ready: bool = True,
        deferrable: bool | None = None,
        poll_interval: float = VIDEO_POLL_INTERVAL,
        timeout: float | None = None,
        max_transient_errors: int = 5,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.wait_options = WaitOptions(poll_interval, timeout, max_transient_errors)
        self.wait_until_ready = check_flag("wait_until_ready", wait_until_ready)
        self.deferrable = resolve_deferrable(deferrable)
        self.poll_interval = poll_interval
        self.timeout = timeout
        self.max_transient_errors = max_transient_errors

    def start(self, context: Context) -> list[dict[str, Any]]:
        """Start processing; return the Video objects."""
        raise NotImplementedError

    def run(self, context: Context) -> list[dict[str, Any]]:
        videos = self.start(context)
        video_ids = [video["id"] for video in videos]
        publish_video_link(self.hook, context, video_ids)
        if not self.wait_until_ready:
            return videos
        if self.deferrable:
            self.defer(
                trigger=NairiVideoTrigger(
                    conn_id=self.conn_id,
                    video_ids=video_ids,
                    deadline=self.wait_options.deadline(),
                    poll_interval=self.poll_interval,
                    max_transient_errors=self.max_transient_errors,
                ),
                method_name="execute_complete",
            )
        waiter = Waiter(
            VIDEO,
            ", ".join(video_ids),
            deadline=self.wait_options.deadline(),
            poll_interval=self.poll_interval,
            max_transient_errors=self.max_transient_errors,
            log=self.log,
            state=lambda: "processing",
            timeout_message=self.timeout_text(video_ids),
        )
        return self.execute_complete(context, waiter.wait(lambda: check_videos(self.hook, video_ids)))

    def timeout_text(self, video_ids: list[str]) -> str:
        """What a timeout says, on the worker and deferred alike."""
        waited = "at the deadline" if self.timeout is None else f"after {self.timeout:g} s"
        return f"video(s) {', '.join(video_ids)} not ready {waited}"

    def execute_complete(self, context: Context, event: dict[str, Any]) -> list[dict[str, Any]]:
        """Resume after the wait: the ready videos, or the outcome of a failure, timeout or polling error."""
        if isinstance(event, dict) and event.get("status") == TIMEOUT:
            video_ids = [str(video_id) for video_id in str(event.get("id")).split(", ")]
            event = {**event, "message": self.timeout_text(video_ids)}
        ready: list[dict[str, Any]] = raise_for_event(event, final_on_failure=self.final_on_failure)[
            "resource"
        ]["videos"]
        return ready


class NairiUploadVideoOperator(NairiVideoOperator):
    """Upload videos (``POST /videos``) and, by default, wait until they are processed.

    ``sources`` are resolved and checked like the artifact uploads' (paths, globs, ``s3://``... URIs,
    ObjectStoragePath; see :func:`airflow_provider_nairi.sources.resolve_sources`) and streamed in constant
    memory. Each upload carries an idempotency key derived from the task instance and the file's identity: a
    retry replays the first upload instead of creating a second video. A video that ends ``failed`` fails the
    task without retries (a retry would replay the same upload); use :class:`NairiReprocessVideoOperator`.

    Returns (XCom) the Video objects, ``[{"id", "title", "status", "size_bytes", "duration_s", ...}]``: pass
    them as ``video_ids=`` to the sensor, search, recall or chat operators as they are.

    :param sources: the video files (templated).
    :param title: the title of every uploaded video (templated); default: the file name without extension.
    See :class:`NairiVideoOperator` for waiting (``wait_until_ready``, ``deferrable``, ``poll_interval``,
    ``timeout``).
    """

    template_fields = ("sources", "title")

    def __init__(
        self, *, sources: SourceItem | list[SourceItem], title: str | None = None, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.sources = sources
        self.title = title

    def start(self, context: Context) -> list[dict[str, Any]]:
        videos = []
        for source in resolve_sources(self.sources):
            video = self.hook.upload_video(
                source.path,
                title=self.title or PurePosixPath(source.name).stem,
                idempotency_key=task_idempotency_key(context["ti"], "video", source.identity),
            )
            self.log.info("Uploaded %s as video %s", source.location, video["id"])
            videos.append(video)
        return videos


class NairiReprocessVideoOperator(NairiVideoOperator):
    """Process videos again (``POST /videos/{id}/reprocess``) and, by default, wait until they are ready.

    Each try of the task sends a new reprocess request per video (the idempotency key includes the try
    number, so a client-side retry of one request is replayed while an Airflow retry processes again); a
    video that ends ``failed`` fails the try and Airflow's retries apply.

    Returns (XCom) the Video objects.

    :param video_ids: the videos: ids, or the dicts another video operator returned (templated).
    See :class:`NairiVideoOperator` for waiting.
    """

    template_fields = ("video_ids",)
    final_on_failure: ClassVar[bool] = False

    def __init__(self, *, video_ids: str | list[str] | list[dict[str, Any]], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.video_ids = video_ids

    def start(self, context: Context) -> list[dict[str, Any]]:
        ti = context["ti"]
        video_ids = ids_of(self.video_ids, "video_ids") or []
        if not video_ids:
            raise NairiConfigurationError("video_ids: give at least one video id to reprocess.")
        return [
            self.hook.reprocess_video(
                video_id,
                idempotency_key=task_idempotency_key(ti, "reprocess", video_id, getattr(ti, "try_number", 0)),
            )
            for video_id in video_ids
        ]
