"""Videos: :class:`NairiUploadVideoOperator`, :class:`NairiReprocessVideoOperator` (the wait they share is
:class:`~airflow_provider_nairi.operators.waiting.NairiVideoOperator`)."""

from __future__ import annotations

from pathlib import PurePosixPath
from typing import TYPE_CHECKING, Any, ClassVar

from airflow_provider_nairi.exceptions import NairiConfigurationError
from airflow_provider_nairi.idempotency import task_idempotency_key
from airflow_provider_nairi.operators.waiting import NairiVideoOperator
from airflow_provider_nairi.sources import SourceItem, resolve_sources
from airflow_provider_nairi.validation import ids_of

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context


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
            video = self.api.upload_video(
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
            self.api.reprocess_video(
                video_id,
                idempotency_key=task_idempotency_key(ti, "reprocess", video_id, getattr(ti, "try_number", 0)),
            )
            for video_id in video_ids
        ]
