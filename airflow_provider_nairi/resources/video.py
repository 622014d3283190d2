"""A video, as the provider waits for it: ``processing`` → ``ready`` or ``failed``; one event for a set.

:func:`videos_event` gives the one event a set of videos ends in:

- ``success`` when every video is ``ready``; ``resource`` is ``{"videos": [<Video>, ...]}``, in order;
- ``failed`` as soon as one video is ``failed``, with that video's API ``error`` (``{code, message}``);
- ``None`` while one is still processing.

Processing cannot be cancelled through the API.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow_provider_nairi.resources.events import (
    FAILED,
    SUCCESS,
    Event,
    RemoteStatus,
    make_event,
    snapshot_event,
)

if TYPE_CHECKING:
    from airflow_provider_nairi.client.api import NairiApi

KIND = "video"


class VideoStatus(RemoteStatus):
    """The status of a video (``GET /videos/{id}``)."""

    PROCESSING = "processing"
    READY = "ready", SUCCESS
    FAILED = "failed", FAILED


def videos_id(video_ids: Sequence[str]) -> str:
    """The id the events about a set of videos carry and their log lines name: the ids, comma-separated."""
    return ", ".join(video_ids)


def videos_event(video_ids: Sequence[str], videos: Sequence[dict[str, Any]]) -> Event | None:
    """The event a set of video snapshots ends in, or ``None`` while one of them is still processing.

    The first ``failed`` video gives the event (its API error included); ``success`` needs all ``ready``.
    :raises NairiServerError: a status the contract does not name.
    """
    still_processing = False
    for video in videos:
        event = snapshot_event(VideoStatus.of(video), video)
        if event is None:
            still_processing = True
        elif event["status"] != SUCCESS:
            return event
    if still_processing:
        return None
    return make_event(
        SUCCESS,
        kind=KIND,
        resource_id=videos_id(video_ids),
        message=f"{len(videos)} video(s) ready: {videos_id(video_ids)}",
        resource={"videos": list(videos)},
    )


def check_videos(api: NairiApi, video_ids: Sequence[str]) -> Event | None:
    """Read each video once; return the event they end in (:func:`videos_event`), else ``None``."""
    return videos_event(video_ids, [api.get_video(video_id) for video_id in video_ids])
