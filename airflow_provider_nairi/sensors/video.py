"""Wait for videos to be processed: :class:`NairiVideoReadySensor`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow_provider_nairi.exceptions import NairiConfigurationError
from airflow_provider_nairi.links import NairiVideoLink, publish_video_link
from airflow_provider_nairi.options import VIDEO_POLL_INTERVAL
from airflow_provider_nairi.resources.video import check_videos
from airflow_provider_nairi.sensors.base import NairiBaseSensor
from airflow_provider_nairi.triggers.video import NairiVideoTrigger
from airflow_provider_nairi.validation import ids_of

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context


class NairiVideoReadySensor(NairiBaseSensor):
    """Wait until every video of ``video_ids`` is ``ready``; fail at once if one ends ``failed``.

    How completion is detected: each poke reads every video (``GET /videos/{id}``); the sensor succeeds when
    all are ``ready`` and pushes the Video objects as XCom. A ``failed`` video fails the task with the API's
    reason and no retries (waiting again would not change it). Modes, ``soft_fail`` and ``timeout``: see
    :class:`~airflow_provider_nairi.sensors.base.NairiBaseSensor` (deferred: :class:`NairiVideoTrigger`).

    :param video_ids: the videos: ids, or the dicts a video operator returned (templated).
    :param poll_interval, deferrable, max_transient_errors, conn_id: see
        :class:`~airflow_provider_nairi.sensors.base.NairiBaseSensor`.
    """

    template_fields = ("video_ids",)
    operator_extra_links = (NairiVideoLink(),)
    final_on_failure = True
    default_poll_interval = VIDEO_POLL_INTERVAL

    def __init__(self, *, video_ids: str | list[str] | list[dict[str, Any]], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.video_ids = video_ids

    def _video_ids(self) -> list[str]:
        video_ids = ids_of(self.video_ids, "video_ids") or []
        if not video_ids:
            raise NairiConfigurationError("video_ids: give at least one video id to wait for.")
        return video_ids

    def prepare(self, context: Context) -> None:
        publish_video_link(self.hook, context, self._video_ids())

    def read_event(self, context: Context) -> dict[str, Any] | None:
        video_ids = self._video_ids()
        event = check_videos(self.api, video_ids)
        if event is None:
            self.log.info("Video(s) %s still processing", ", ".join(video_ids))
        return event

    def result(self, context: Context, event: dict[str, Any]) -> list[dict[str, Any]]:
        videos: list[dict[str, Any]] = event["resource"]["videos"]
        return videos

    def trigger(self, deadline: float) -> NairiVideoTrigger:
        return NairiVideoTrigger(
            conn_id=self.conn_id,
            video_ids=self._video_ids(),
            deadline=deadline,
            poll_interval=self.poll_interval,
            max_transient_errors=self.max_transient_errors,
        )
