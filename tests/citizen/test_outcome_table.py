"""One outcome table for every waiting class: the same cause ends every task the same way.

Rows: what happened. Columns: every operator and sensor that waits, on the worker and when a deferred task
resumes with the trigger's event. The expected cell is written out here, not derived from the code: 404 fails
without retries; 503 (after the client's retries and the wait's transient-error budget) lets Airflow retry;
failed remote work fails without retries only where the class makes it final; someone else's cancel fails
without retries; the deadline is a retryable failure (sensors: ``AirflowSensorTimeout``); a sensor with
``soft_fail`` skips on each of them. Plus: a kill cancels only what the class owns.
"""

from __future__ import annotations

import ast
import json
import re
import time
from pathlib import Path
from unittest import mock

import pytest
from airflow.providers.common.compat.sdk import (
    AirflowException,
    AirflowFailException,
    AirflowSensorTimeout,
    AirflowSkipException,
)

import airflow_provider_nairi
from airflow_provider_nairi.exceptions import NairiNotFoundError, NairiServerError
from airflow_provider_nairi.operators.content import NairiReprocessVideoOperator, NairiUploadVideoOperator
from airflow_provider_nairi.operators.conversation import (
    NairiSendMessageOperator,
    NairiStartConversationOperator,
)
from airflow_provider_nairi.operators.scheduled_jobs import NairiRunScheduledJobOperator
from airflow_provider_nairi.resources.events import error_event, snapshot_event, timeout_event
from airflow_provider_nairi.resources.video import VideoStatus
from airflow_provider_nairi.sensors.content import NairiVideoReadySensor
from airflow_provider_nairi.sensors.conversation import NairiConversationSensor

NOT_FOUND = NairiNotFoundError("no such thing", status=404, code="not_found", request_id="req_404")
UNAVAILABLE = NairiServerError("unavailable", status=503, code="service_unavailable", request_id="req_503")

Fail, Retry, Timeout, Skip = (
    AirflowFailException,
    AirflowException,
    AirflowSensorTimeout,
    AirflowSkipException,
)


class TaskInstance:
    dag_id, task_id, run_id, map_index, try_number, stats_tags = "dag", "task", "manual__1", -1, 1, {}

    def __init__(self) -> None:
        self.xcom: dict = {}

    def xcom_push(self, key, value):
        self.xcom[key] = json.loads(json.dumps(value))

    def xcom_pull(self, task_ids, key, map_indexes=None):
        return self.xcom.get(key)


def conversation(status, turns=1):
    error = {"code": "tool_error", "message": "the tool crashed"} if status == "failed" else None
    return {"id": "conv_1", "status": status, "turns": turns, "error": error, "last_message": None}


def video(status):
    error = {"code": "decode_error", "message": "unreadable"} if status == "failed" else None
    return {"id": "vid_1", "status": status, "error": error}


class Kind:
    """How to build one class, answer its first request, and what its reads return."""

    def __init__(self, cls, kind, final, sensor, build, read, owns_work):
        self.cls, self.kind, self.final, self.sensor = cls, kind, final, sensor
        self.build, self.read, self.owns_work = build, read, owns_work


def hook_for(tmp_path):
    hook = mock.MagicMock(name="NairiHook")
    hook.client = hook
    hook.dashboard_url.side_effect = lambda kind, object_id: f"https://dash/{kind}/{object_id}"
    hook.create_conversation.return_value = conversation("running")
    hook.run_scheduled_job.return_value = conversation("running")
    hook.send_message.return_value = {"id": "msg_2", "turn": 1}
    hook.upload_video.return_value = video("processing")
    hook.reprocess_video.return_value = video("processing")
    return hook


COMMON = {"deferrable": False, "poll_interval": 1, "timeout": 30}
KINDS = {
    "Start": Kind(
        NairiStartConversationOperator, "conversation", False, False,
        lambda tmp, **kw: NairiStartConversationOperator(task_id="t", agent_id="agt_1", message="m", **kw),
        "get_conversation", True,
    ),
    "Send": Kind(
        NairiSendMessageOperator, "conversation", False, False,
        lambda tmp, **kw: NairiSendMessageOperator(task_id="t", conversation_id="conv_1", message="m", **kw),
        "get_conversation", True,
    ),
    "RunScheduledJob": Kind(
        NairiRunScheduledJobOperator, "conversation", False, False,
        lambda tmp, **kw: NairiRunScheduledJobOperator(task_id="t", job_id="job_1", **kw),
        "get_conversation", True,
    ),
    "UploadVideo": Kind(
        NairiUploadVideoOperator, "video", True, False,
        lambda tmp, **kw: NairiUploadVideoOperator(task_id="t", sources=str(tmp / "clip.mp4"), **kw),
        "get_video", False,
    ),
    "ReprocessVideo": Kind(
        NairiReprocessVideoOperator, "video", False, False,
        lambda tmp, **kw: NairiReprocessVideoOperator(task_id="t", video_ids="vid_1", **kw),
        "get_video", False,
    ),
    "ConversationSensor": Kind(
        NairiConversationSensor, "conversation", False, True,
        lambda tmp, **kw: NairiConversationSensor(task_id="t", conversation_id="conv_1", **kw),
        "get_conversation", False,
    ),
    "VideoReadySensor": Kind(
        NairiVideoReadySensor, "video", True, True,
        lambda tmp, **kw: NairiVideoReadySensor(task_id="t", video_ids="vid_1", **kw),
        "get_video", False,
    ),
}  # fmt: skip

#: case -> (what the reads do, the event a trigger fires for it)
CASES = ["404", "503", "failed", "cancelled", "timeout"]


def expected(kind: Kind, case: str, soft_fail: bool = False):
    if soft_fail:
        return Skip
    return {
        "404": Fail,
        "503": Retry,
        "failed": Fail if kind.final else Retry,
        "cancelled": Fail,
        "timeout": Timeout if kind.sensor else Retry,
    }[case]


def event_for(kind: Kind, case: str) -> dict:
    resource_id = "conv_1" if kind.kind == "conversation" else "vid_1"
    if case == "404":
        return error_event(kind.kind, resource_id, NOT_FOUND)
    if case == "503":
        return error_event(kind.kind, resource_id, UNAVAILABLE)
    if case == "timeout":
        return timeout_event(kind.kind, resource_id)
    snapshot = conversation(case) if kind.kind == "conversation" else video(case)
    if kind.kind == "video":
        return snapshot_event(VideoStatus.of(snapshot), snapshot)
    from airflow_provider_nairi.resources.conversation import ConversationStatus  # noqa: PLC0415

    return snapshot_event(ConversationStatus.of(snapshot), snapshot)


def applicable(kind: Kind, case: str) -> bool:
    return not (case == "cancelled" and kind.kind == "video")  # videos cannot be cancelled


@pytest.fixture
def clock(monkeypatch):
    """Time moves only when a wait sleeps."""
    now = [1_000_000.0]
    monkeypatch.setattr(time, "time", lambda: now[0])
    monkeypatch.setattr(time, "sleep", lambda seconds: now.__setitem__(0, now[0] + seconds))


def run_on_worker(kind: Kind, case: str, tmp_path, soft_fail=False):
    (tmp_path / "clip.mp4").write_bytes(b"\0" * 16)
    hook = hook_for(tmp_path)
    read = getattr(hook, kind.read)
    if case == "404":
        read.side_effect = NOT_FOUND
    elif case == "503":
        read.side_effect = UNAVAILABLE
    elif case == "timeout":
        read.return_value = conversation("running") if kind.kind == "conversation" else video("processing")
    else:
        read.return_value = conversation(case) if kind.kind == "conversation" else video(case)
    extra = {"soft_fail": soft_fail} if kind.sensor else {}
    task = kind.build(tmp_path, **COMMON, **extra)
    task.__dict__["hook"] = hook
    context = {"ti": TaskInstance(), "task_state_store": None}
    if kind.sensor:
        return task.poke(context)
    return task.execute(context)


def cells(sensors_only=False):
    for name, kind in KINDS.items():
        if sensors_only and not kind.sensor:
            continue
        for case in CASES:
            if applicable(kind, case):
                yield pytest.param(kind, case, id=f"{name}-{case}")


@pytest.mark.parametrize(("kind", "case"), list(cells()))
def test_worker_path(kind, case, tmp_path, clock):
    if kind.sensor and case == "timeout":
        pytest.skip("a sensor's worker-side deadline is Airflow's poke loop, not the provider's")
    with pytest.raises(BaseException) as caught:
        run_on_worker(kind, case, tmp_path)
    assert type(caught.value) is expected(kind, case), repr(caught.value)


@pytest.mark.parametrize(("kind", "case"), list(cells()))
def test_resume_path(kind, case, tmp_path):
    extra = {"deferrable": True} if kind.sensor else {}
    task = kind.build(tmp_path, **{**COMMON, **extra})
    task.__dict__["hook"] = hook_for(tmp_path)
    context = {"ti": TaskInstance(), "task_state_store": None}
    with pytest.raises(BaseException) as caught:
        task.resume_execution("execute_complete", {"event": event_for(kind, case)}, context)
    assert type(caught.value) is expected(kind, case), repr(caught.value)


@pytest.mark.parametrize(("kind", "case"), list(cells(sensors_only=True)))
def test_soft_fail_skips_in_every_mode(kind, case, tmp_path, clock):
    if case != "timeout":
        with pytest.raises(BaseException) as caught:
            run_on_worker(kind, case, tmp_path, soft_fail=True)
        assert type(caught.value) is Skip, repr(caught.value)
    task = kind.build(tmp_path, **{**COMMON, "deferrable": True, "soft_fail": True})
    task.__dict__["hook"] = hook_for(tmp_path)
    with pytest.raises(BaseException) as caught:
        task.resume_execution("execute_complete", {"event": event_for(kind, case)}, {"ti": TaskInstance()})
    assert type(caught.value) is Skip, repr(caught.value)


@pytest.mark.parametrize("name", list(KINDS))
def test_a_kill_cancels_only_work_the_class_owns(name, tmp_path):
    kind = KINDS[name]
    hook = hook_for(tmp_path)
    task = kind.build(tmp_path, **COMMON)
    task.__dict__["hook"] = hook
    if hasattr(task, "current_conversation_id"):
        task.current_conversation_id = "conv_1"  # the wait had started
    task.on_kill()
    cancelled = [call.args for call in hook.cancel_conversation.call_args_list]
    assert cancelled == ([("conv_1",)] if kind.owns_work else [])


PACKAGE = Path(airflow_provider_nairi.__file__).parent
#: Where a bare ``except NairiError`` may stand: the translation, the wait's budget, the client, the
#: connection test (which reports the error instead of raising it), the secret scrubber (which re-raises) and
#: the common.ai managed-agent contract (its own three outcomes: rejected, invocation error, transient).
MAY_CATCH_ANY_NAIRI_ERROR = {
    "outcomes.py",
    "hooks/managed_agent.py",
    "resources/waiting.py",
    "hooks/nairi.py",
    "operators/secrets.py",
}


def test_nairi_errors_are_translated_in_one_place_only():
    catching = set()
    for path in PACKAGE.rglob("*.py"):
        relative = path.relative_to(PACKAGE).as_posix()
        if relative.startswith(("client/", "emulator/")):
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            handler = isinstance(node, ast.ExceptHandler) and node.type is not None
            if handler and re.search(r"\bNairiError\b", ast.unparse(node.type)):
                catching.add(relative)
    assert catching == MAY_CATCH_ANY_NAIRI_ERROR


def test_the_table_covers_every_waiting_class():
    assert {kind.cls for kind in KINDS.values()} >= {
        NairiStartConversationOperator,
        NairiSendMessageOperator,
        NairiRunScheduledJobOperator,
        NairiUploadVideoOperator,
        NairiReprocessVideoOperator,
        NairiConversationSensor,
        NairiVideoReadySensor,
    }
