"""Video operators, sensor and trigger: keyed uploads, waiting, failure with the API's reason, deferral."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import pytest
from airflow.providers.common.compat.sdk import (
    AirflowException,
    AirflowFailException,
    AirflowSensorTimeout,
    PokeReturnValue,
    TaskDeferred,
)

from airflow_provider_nairi.idempotency import task_idempotency_key
from airflow_provider_nairi.operators.content import NairiReprocessVideoOperator, NairiUploadVideoOperator
from airflow_provider_nairi.outcomes import SUCCESS
from airflow_provider_nairi.sensors.content import NairiVideoReadySensor
from airflow_provider_nairi.sources import resolve_sources
from airflow_provider_nairi.triggers.polling import NairiPollingTrigger
from airflow_provider_nairi.triggers.video import NairiVideoTrigger

READY = {"status": "ready", "duration_s": 12.5}
FAILED = {"status": "failed", "error": {"code": "unsupported_codec", "message": "codec av1 is not supported"}}


def run(operator, hook, ti):
    operator.__dict__["hook"] = hook
    return operator.execute({"ti": ti})


@pytest.fixture
def clips(tmp_path: Path) -> Path:
    (tmp_path / "intro.mp4").write_bytes(b"\x00" * 64)
    (tmp_path / "demo.mp4").write_bytes(b"\x01" * 32)
    return tmp_path


def test_upload_without_waiting_returns_processing_videos_with_keys(clips: Path, hook, ti):
    op = NairiUploadVideoOperator(task_id="v", sources=str(clips / "*.mp4"), wait_until_ready=False)
    videos = run(op, hook, ti)
    assert [v["status"] for v in videos] == ["processing", "processing"]
    assert ti.pushed == {"video_url": "https://app.nairi.ai/videos/vid_1"}
    calls = hook.called("upload_video")
    assert [kwargs["title"] for _, kwargs in calls] == ["demo", "intro"]
    identity = resolve_sources(str(clips / "demo.mp4"))[0].identity
    assert calls[0][1]["idempotency_key"] == task_idempotency_key(ti, "video", identity)
    assert run(op, hook, ti) == videos  # a retry replays: no second video
    assert len(hook.videos) == 2


def test_upload_waits_until_every_video_is_ready(clips: Path, hook, ti):
    hook.updates = {"vid_1": [{}, READY], "vid_2": [READY]}
    op = NairiUploadVideoOperator(task_id="v", sources=str(clips / "*.mp4"), title="Talk", poll_interval=0.01)
    videos = run(op, hook, ti)
    assert [(v["id"], v["title"], v["status"]) for v in videos] == [
        ("vid_1", "Talk", "ready"),
        ("vid_2", "Talk", "ready"),
    ]
    assert len(hook.called("get_video")) == 4  # two rounds of two reads


def test_a_failed_video_fails_the_upload_task_with_the_api_reason_and_no_retry(clips: Path, hook, ti):
    hook.updates = {"vid_1": [FAILED]}
    op = NairiUploadVideoOperator(task_id="v", sources=str(clips / "intro.mp4"), poll_interval=0.01)
    with pytest.raises(
        AirflowFailException, match="vid_1 failed: unsupported_codec: codec av1 is not supported"
    ):
        run(op, hook, ti)


def test_a_failed_reprocess_lets_airflow_retry_with_a_new_request(hook, ti, make_ti):
    hook.videos["vid_7"] = {"id": "vid_7", "status": "failed", "error": FAILED["error"]}
    hook.updates = {"vid_7": [FAILED]}
    op = NairiReprocessVideoOperator(task_id="r", video_ids="vid_7", poll_interval=0.01)
    with pytest.raises(AirflowException) as error:
        run(op, hook, ti)
    assert not isinstance(error.value, AirflowFailException)
    assert "codec av1" in str(error.value)
    retry = make_ti()
    retry.try_number = 2
    hook.updates = {"vid_7": [READY]}
    assert run(op, hook, retry)[0]["status"] == "ready"
    keys = [kwargs["idempotency_key"] for _, kwargs in hook.called("reprocess_video")]
    assert len(set(keys)) == 2


def test_waiting_stops_at_the_timeout(clips: Path, hook, ti):
    op = NairiUploadVideoOperator(
        task_id="v", sources=str(clips / "intro.mp4"), poll_interval=0.02, timeout=0.1
    )
    started = time.monotonic()
    with pytest.raises(AirflowException, match=r"vid_1 not ready after 0\.1 s"):
        run(op, hook, ti)
    assert time.monotonic() - started < 2


def test_deferrable_upload_hands_a_json_trigger_with_an_absolute_deadline(clips: Path, hook, ti):
    op = NairiUploadVideoOperator(
        task_id="v", sources=str(clips / "*.mp4"), deferrable=True, poll_interval=5, timeout=600, conn_id="n1"
    )
    with pytest.raises(TaskDeferred) as deferred:
        run(op, hook, ti)
    path, kwargs = deferred.value.trigger.serialize()
    assert path == "airflow_provider_nairi.triggers.video.NairiVideoTrigger"
    assert json.loads(json.dumps(kwargs)) == kwargs
    assert kwargs["video_ids"] == ["vid_1", "vid_2"] and kwargs["conn_id"] == "n1"
    assert kwargs["deadline"] == pytest.approx(time.time() + 600, abs=5)
    assert deferred.value.method_name == "execute_complete"
    assert hook.called("get_video") == []


def test_resuming_returns_the_videos_or_the_failure():
    op = NairiUploadVideoOperator(task_id="v", sources="x.mp4")
    videos = [{"id": "vid_1", "status": "ready"}]
    event = {
        "status": SUCCESS,
        "kind": "video",
        "id": "vid_1",
        "message": "",
        "resource": {"videos": videos},
        "error": None,
    }
    assert op.execute_complete({}, event) == videos
    with pytest.raises(AirflowException, match="invalid trigger event"):
        op.execute_complete({}, {"status": "weird"})


def test_sensor_pokes_until_ready_and_pushes_the_videos(hook, ti):
    hook.videos["vid_1"] = {"id": "vid_1", "status": "processing", "error": None}
    hook.updates = {"vid_1": [{}, READY]}
    sensor = NairiVideoReadySensor(task_id="s", video_ids=[{"id": "vid_1"}])
    sensor.__dict__["hook"] = hook
    assert sensor.poke({"ti": ti}) is False
    done = sensor.poke({"ti": ti})
    assert isinstance(done, PokeReturnValue) and done.is_done
    assert done.xcom_value[0]["duration_s"] == 12.5


def test_sensor_fails_at_once_on_a_failed_video(hook, ti):
    hook.videos["vid_1"] = {"id": "vid_1", "status": "failed", "error": FAILED["error"]}
    sensor = NairiVideoReadySensor(task_id="s", video_ids="vid_1")
    sensor.__dict__["hook"] = hook
    with pytest.raises(AirflowFailException, match="unsupported_codec"):
        sensor.poke({"ti": ti})


def test_deferrable_sensor_checks_once_then_defers(hook, ti):
    hook.videos["vid_1"] = {"id": "vid_1", "status": "processing", "error": None}
    sensor = NairiVideoReadySensor(
        task_id="s", video_ids="vid_1", deferrable=True, poll_interval=3, timeout=60
    )
    sensor.__dict__["hook"] = hook
    with pytest.raises(TaskDeferred) as deferred:
        sensor.execute({"ti": ti})
    assert deferred.value.trigger.serialize()[1]["poll_interval"] == 3
    assert ti.pushed["video_url"] == "https://app.nairi.ai/videos/vid_1"
    hook.videos["vid_1"].update(READY)
    assert sensor.execute({"ti": ti})[0]["status"] == "ready"  # already ready: no deferral


def test_sensor_timeout_event_raises_sensor_timeout():
    sensor = NairiVideoReadySensor(task_id="s", video_ids="vid_1")
    event = {
        "status": "timeout",
        "kind": "video",
        "id": "vid_1",
        "message": "late",
        "resource": None,
        "error": None,
    }
    with pytest.raises(AirflowSensorTimeout):
        sensor.execute_complete({}, event)


def test_sensor_without_ids_fails_before_any_request(hook, ti):
    sensor = NairiVideoReadySensor(task_id="s", video_ids=[])
    sensor.__dict__["hook"] = hook
    with pytest.raises(AirflowFailException, match="video_ids"):
        sensor.poke({"ti": ti})
    assert hook.calls == []


class FakeAsyncHook:
    def __init__(self, hook):
        self.hook = hook

    async def get_async_client(self):
        return self

    async def get_video(self, video_id):
        return self.hook.get_video(video_id)

    async def close(self):
        pass


def collect(trigger, hook):
    trigger.make_hook = lambda: FakeAsyncHook(hook)

    async def first_event():
        async for event in trigger.run():
            return event.payload
        return None

    return asyncio.run(asyncio.wait_for(first_event(), 5))


def test_trigger_is_the_shared_polling_trigger_and_round_trips():
    trigger = NairiVideoTrigger(conn_id="n", video_ids=["vid_1", "vid_2"], deadline=123.0, poll_interval=2)
    assert isinstance(trigger, NairiPollingTrigger)
    path, kwargs = trigger.serialize()
    again = NairiVideoTrigger(**json.loads(json.dumps(kwargs)))
    assert again.serialize() == (path, kwargs)


def test_trigger_serializes_its_video_ids_as_a_json_list_through_the_base():
    """The set of videos is what the trigger serializes (a list, never packed into a string): the base's
    serialize writes the trigger's identity, and the video trigger has no serialize of its own to unpack."""
    trigger = NairiVideoTrigger(conn_id="n", video_ids=["vid_1", "vid_2"], deadline=123.0, poll_interval=2)
    assert trigger.identity() == {"video_ids": ["vid_1", "vid_2"]}
    assert trigger.serialize()[1] == {
        "conn_id": "n",
        "video_ids": ["vid_1", "vid_2"],
        "deadline": 123.0,
        "poll_interval": 2.0,
        "max_transient_errors": 5,
    }
    assert NairiVideoTrigger.serialize is NairiPollingTrigger.serialize


#: The kwargs earlier versions of NairiVideoTrigger stored in the triggers table (main before and after the
#: resource layer, b008418 and bbc8cc3: their serialize() deleted the packed resource_id).
KWARGS_STORED_BEFORE = {
    "conn_id": "n",
    "deadline": None,
    "poll_interval": 0.01,
    "max_transient_errors": 5,
    "video_ids": ["vid_1", "vid_2"],
}


def test_a_trigger_row_stored_by_the_previous_version_loads_and_runs(hook):
    for video_id in ("vid_1", "vid_2"):
        hook.videos[video_id] = {"id": video_id, "status": "processing", "error": None}
    hook.updates = {"vid_1": [READY], "vid_2": [{}, READY]}
    trigger = NairiVideoTrigger(**json.loads(json.dumps(KWARGS_STORED_BEFORE)))
    assert trigger.serialize()[1] == KWARGS_STORED_BEFORE
    event = collect(trigger, hook)
    assert (event["status"], event["id"]) == ("success", "vid_1, vid_2")
    assert [v["id"] for v in event["resource"]["videos"]] == ["vid_1", "vid_2"]


def test_killing_the_deferred_task_leaves_the_videos_processing(hook, capsys):
    """Processing cannot be cancelled through the API: on_kill calls nothing and says so."""
    trigger = NairiVideoTrigger(conn_id="n", video_ids=["vid_1"], deadline=None, poll_interval=1)
    trigger.make_hook = lambda: FakeAsyncHook(hook)
    asyncio.run(trigger.on_kill())
    output = capsys.readouterr().out
    assert "Left video vid_1 running" in output and "Cancelled" not in output


def test_trigger_fires_success_when_all_are_ready(hook):
    for video_id in ("vid_1", "vid_2"):
        hook.videos[video_id] = {"id": video_id, "status": "processing", "error": None}
    hook.updates = {"vid_1": [READY], "vid_2": [{}, {}, READY]}
    trigger = NairiVideoTrigger(
        conn_id="n", video_ids=["vid_1", "vid_2"], deadline=time.time() + 5, poll_interval=0.01
    )
    event = collect(trigger, hook)
    assert event["status"] == "success"
    assert [v["status"] for v in event["resource"]["videos"]] == ["ready", "ready"]


def test_trigger_fires_failed_with_the_api_error_and_timeout_at_the_deadline(hook):
    hook.videos["vid_1"] = {"id": "vid_1", "status": "processing", "error": None}
    hook.videos["vid_2"] = {"id": "vid_2", "status": "failed", "error": FAILED["error"]}
    failed = collect(
        NairiVideoTrigger(conn_id="n", video_ids=["vid_1", "vid_2"], deadline=None, poll_interval=0.01), hook
    )
    assert (failed["status"], failed["error"]["code"]) == ("failed", "unsupported_codec")
    late = collect(
        NairiVideoTrigger(conn_id="n", video_ids=["vid_1"], deadline=time.time() + 0.05, poll_interval=0.01),
        hook,
    )
    assert late["status"] == "timeout"


def test_video_operators_and_sensor_show_the_video_link():
    for cls in (NairiUploadVideoOperator, NairiReprocessVideoOperator, NairiVideoReadySensor):
        assert [link.name for link in cls.operator_extra_links] == ["Nairi video"]
