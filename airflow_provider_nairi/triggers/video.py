"""Wait in the triggerer until videos are processed: :class:`NairiVideoTrigger`.

A video goes ``processing`` → ``ready`` or ``failed`` (``POST /videos``, ``POST /videos/{id}/reprocess``). The
trigger waits for a set of videos at once and fires one event: the one
:func:`~airflow_provider_nairi.resources.video.videos_event` gives (``success`` when all are ``ready``,
``failed`` as soon as one is), ``timeout`` at the absolute deadline, or ``error`` when polling itself fails
(see :class:`~airflow_provider_nairi.triggers.polling.NairiPollingTrigger` for transient-error tolerance).

Killing the task does not touch the videos: processing cannot be cancelled through the API.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from airflow_provider_nairi.resources.video import KIND, videos_event, videos_id
from airflow_provider_nairi.triggers.polling import NairiPollingTrigger

if TYPE_CHECKING:
    from airflow_provider_nairi.hooks.nairi import NairiAsyncHook

__all__ = ["KIND", "NairiVideoTrigger", "videos_event"]  # KIND, videos_event moved to resources.video


class NairiVideoTrigger(NairiPollingTrigger):
    """Poll ``GET /videos/{id}`` for each of ``video_ids`` until all are ready, one fails, or the deadline.

    Serialized with ``video_ids`` as a JSON list (:meth:`identity`); its events and log lines name the set
    by :func:`~airflow_provider_nairi.resources.video.videos_id`.

    :param conn_id: the Nairi connection.
    :param video_ids: the videos to wait for (at least one).
    :param deadline: absolute deadline, epoch seconds, or ``None``.
    :param poll_interval: seconds between two rounds of polls.
    :param max_transient_errors: retryable errors tolerated in a row.
    """

    kind: ClassVar[str] = KIND

    def __init__(
        self,
        *,
        conn_id: str,
        video_ids: Sequence[str],
        deadline: float | None,
        poll_interval: float = 30.0,
        max_transient_errors: int = 5,
    ) -> None:
        if not video_ids:
            raise ValueError("video_ids: give at least one video id to wait for")
        self.video_ids = [str(video_id) for video_id in video_ids]
        super().__init__(
            conn_id=conn_id,
            resource_id=videos_id(self.video_ids),
            deadline=deadline,
            poll_interval=poll_interval,
            max_transient_errors=max_transient_errors,
        )

    def identity(self) -> dict[str, Any]:
        return {"video_ids": list(self.video_ids)}

    async def poll(self, hook: NairiAsyncHook) -> dict[str, Any] | None:
        client = await hook.get_async_client()
        videos = [await client.get_video(video_id) for video_id in self.video_ids]
        self.remote_state = ", ".join(sorted({str(video.get("status")) for video in videos}))
        return videos_event(self.video_ids, videos)
