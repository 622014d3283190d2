"""Wait for videos to be processed: :class:`NairiVideoReadySensor`."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import AirflowSensorTimeout, BaseSensorOperator, PokeReturnValue

from airflow_provider_nairi.exceptions import NairiConfigurationError, NairiError
from airflow_provider_nairi.hook_mixin import NairiHookMixin
from airflow_provider_nairi.links import NairiVideoLink, publish_video_link
from airflow_provider_nairi.options import default_deferrable
from airflow_provider_nairi.outcomes import raise_for_error, raise_for_event
from airflow_provider_nairi.resources.video import check_videos
from airflow_provider_nairi.triggers.video import NairiVideoTrigger
from airflow_provider_nairi.validation import check_seconds, check_sensor_timing, ids_of

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context


class NairiVideoReadySensor(NairiHookMixin, BaseSensorOperator):
    """Wait until every video of ``video_ids`` is ``ready``; fail at once if one ends ``failed``.

    How completion is detected: each poke reads every video (``GET /videos/{id}``); the sensor succeeds when
    all are ``ready`` and pushes the Video objects as XCom. A ``failed`` video fails the task with the API's
    reason and no retries (waiting again would not change it). Works in ``poke`` and ``reschedule`` mode, and
    deferred (``deferrable=True``: one check on the worker, then :class:`NairiVideoTrigger` in the triggerer,
    which tolerates a few transient API errors in a row). ``timeout`` (seconds, the sensor's usual parameter)
    is an absolute budget; when it passes the sensor raises ``AirflowSensorTimeout``.

    :param video_ids: the videos: ids, or the dicts a video operator returned (templated).
    :param conn_id: the Nairi connection.
    :param deferrable: wait in the triggerer (default: ``[operators] default_deferrable``).
    :param poll_interval: seconds between two checks (the sensor's ``poke_interval``).
    """

    template_fields = ("video_ids",)
    operator_extra_links = (NairiVideoLink(),)

    def __init__(
        self,
        *,
        video_ids: str | list[str] | list[dict[str, Any]],
        conn_id: str = "nairi_default",
        deferrable: bool | None = None,
        poll_interval: float = 60.0,
        **kwargs: Any,
    ) -> None:
        check_seconds("poll_interval", poll_interval)
        check_sensor_timing(kwargs)
        super().__init__(poke_interval=poll_interval, **kwargs)
        self.video_ids = video_ids
        self.conn_id = conn_id
        self.deferrable = default_deferrable() if deferrable is None else deferrable

    def _video_ids(self) -> list[str]:
        try:
            video_ids = ids_of(self.video_ids, "video_ids") or []
            if not video_ids:
                raise NairiConfigurationError("video_ids: give at least one video id to wait for.")
        except NairiError as error:
            raise_for_error(error)
        return video_ids

    def poke(self, context: Context) -> PokeReturnValue | bool:
        video_ids = self._video_ids()
        try:
            event = check_videos(self.hook, video_ids)
        except NairiError as error:
            raise_for_error(error)
        if event is None:
            self.log.info("Video(s) %s still processing", ", ".join(video_ids))
            return False
        return PokeReturnValue(is_done=True, xcom_value=self.execute_complete(context, event))

    def execute(self, context: Context) -> Any:
        publish_video_link(self.hook, context, self._video_ids())
        if not self.deferrable:
            return super().execute(context)
        done = self.poke(context)
        if isinstance(done, PokeReturnValue):
            return done.xcom_value
        self.defer(
            trigger=NairiVideoTrigger(
                conn_id=self.conn_id,
                video_ids=self._video_ids(),
                deadline=time.time() + self.timeout,
                poll_interval=self.poke_interval,
            ),
            method_name="execute_complete",
        )

    def execute_complete(self, context: Context, event: dict[str, Any]) -> list[dict[str, Any]]:
        """The ready videos, or the outcome of a failure, timeout (AirflowSensorTimeout) or polling error."""
        ready = raise_for_event(event, final_on_failure=True, timeout_exception=AirflowSensorTimeout)
        videos: list[dict[str, Any]] = ready["resource"]["videos"]
        return videos
