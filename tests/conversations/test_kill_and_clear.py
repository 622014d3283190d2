"""A user acting on a deferred task (clear, mark failed, mark success), as Airflow 3.3's triggerer does it.

The sequence of a real deployment: try 1 defers; the user clears the task (its state becomes ``None``) and
the scheduler starts try 2, which reattaches to the same conversation and defers again; then the triggerer
notices the old trigger is gone and cancels its asyncio task with the user-action message, which makes
``run_trigger`` call the old trigger's ``on_kill``. Here the triggerer's own ``TriggerRunner.run_trigger`` and
``cancel_triggers`` run the triggers, against the emulator over real HTTP; only the supervisor's answer to
``GetTaskStates`` (the task instance's state in the metadata DB) is scripted.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid

import pytest
from airflow.providers.common.compat.sdk import TaskDeferred

from airflow_provider_nairi.hooks.nairi import NairiHook
from airflow_provider_nairi.operators.conversation import NairiStartConversationOperator
from airflow_provider_nairi.operators.scheduled_jobs import NairiRunScheduledJobOperator
from airflow_provider_nairi.sensors.conversation import NairiConversationSensor
from airflow_provider_nairi.triggers.video import NairiVideoTrigger

triggerer = pytest.importorskip("airflow.jobs.triggerer_job_runner")
if not hasattr(triggerer, "_USER_ACTION_CANCEL_MSG"):  # on_kill from the triggerer: Airflow 3.3+
    pytest.skip("the triggerer calls BaseTrigger.on_kill from Airflow 3.3", allow_module_level=True)
from airflow.executors.workloads.task import TaskInstanceDTO  # noqa: E402
from airflow.sdk.execution_time import task_runner  # noqa: E402
from airflow.sdk.execution_time.comms import GetTaskStates, TaskStatesResult  # noqa: E402

pytestmark = pytest.mark.nairi_emulator(turn_latency=1.5, video_delay=30)

RUN_ID = "manual__1"


@pytest.fixture
def no_sleep():
    """Real sleeps here: the emulator's agents take real time."""


class MetadataDB:
    """The supervisor's side of ``GetTaskStates``: the state each task instance has *now*."""

    def __init__(self):
        self.states: dict[str, str | None] = {}
        self.asked: list[GetTaskStates] = []

    def send(self, message):
        assert isinstance(message, GetTaskStates)
        self.asked.append(message)
        states = {task_id: state for task_id, state in self.states.items() if task_id in message.task_ids}
        return TaskStatesResult(task_states={RUN_ID: states})


@pytest.fixture
def metadata_db(monkeypatch):
    db = MetadataDB()
    monkeypatch.setattr(task_runner, "SUPERVISOR_COMMS", db, raising=False)
    return db


def task_instance(task_id, try_number):
    """The task instance the triggerer gives a trigger (``workload.ti``)."""
    return TaskInstanceDTO(
        id=uuid.uuid4(),
        dag_version_id=uuid.uuid4(),
        dag_id="dag",
        task_id=task_id,
        run_id=RUN_ID,
        try_number=try_number,
        map_index=-1,
        pool_slots=1,
        priority_weight=1,
    )


class Triggerer:
    """Runs triggers as the triggerer's ``TriggerRunner`` does, and kills them as a user action does."""

    def __init__(self):
        self.runner = triggerer.TriggerRunner()
        self.next_id = 1

    def start(self, trigger, ti):
        trigger_id, self.next_id = self.next_id, self.next_id + 1
        trigger.task_instance = ti
        self.runner.triggers[trigger_id] = {
            "task": asyncio.create_task(self.runner.run_trigger(trigger_id, trigger)),
            "is_watcher": False,
            "name": f"{ti.task_id}/{ti.try_number} (ID {trigger_id})",
            "events": 0,
        }
        return trigger_id

    async def defer(self, operator, context, task_id, try_number=1):
        """Run ``operator`` until it defers, hand its trigger to the triggerer, let it poll; return both."""
        with pytest.raises(TaskDeferred) as deferred:
            operator.execute(context)
        trigger_id = self.start(deferred.value.trigger, task_instance(task_id, try_number))
        await asyncio.sleep(0.2)
        return deferred.value, trigger_id

    async def user_action(self, trigger_id):
        """The trigger's row is gone (task cleared or marked): cancel it with the user-action message."""
        task = self.runner.triggers[trigger_id]["task"]
        self.runner.to_cancel.append(trigger_id)
        await self.runner.cancel_triggers()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    async def event(self, trigger_id):
        await asyncio.wait_for(self.runner.triggers[trigger_id]["task"], timeout=20)
        return self.runner.events.popleft().event.payload


@pytest.fixture
def agent_id(nairi_emulator):
    return NairiHook().client.create_agent("helper", "Answer briefly.")["id"]


def start(agent_id):
    return NairiStartConversationOperator(
        task_id="ask", agent_id=agent_id, message="hello", deferrable=True, poll_interval=0.05, timeout=30
    )


def run_job(agent_id):
    job = NairiHook().client.create_scheduled_job("nightly", agent_id, "summarise", "0 3 * * *")
    return NairiRunScheduledJobOperator(
        task_id="ask", job_id=job["id"], deferrable=True, poll_interval=0.05, timeout=30
    )


def cancels(nairi_emulator):
    return [r for r in nairi_emulator.admin.requests_log() if r["path"].endswith("/cancel")]


@pytest.mark.parametrize("make_operator", [start, run_job], ids=["start", "scheduled-job-run"])
def test_clear_of_a_deferred_task_reruns_it_and_ends_with_the_reply(
    make_operator, agent_id, context, nairi_emulator, metadata_db
):
    async def scenario():
        sim = Triggerer()
        _, old = await sim.defer(make_operator(agent_id), context, "ask")
        # Clear: the state becomes None, the scheduler starts try 2, which reattaches and defers again.
        metadata_db.states["ask"] = None
        context["ti"].try_number = 2
        operator = make_operator(agent_id)
        second, new = await sim.defer(operator, context, "ask", try_number=2)
        metadata_db.states["ask"] = "deferred"
        # A second later the triggerer notices the old trigger is gone and kills it.
        await sim.user_action(old)
        return operator, second, await sim.event(new)

    operator, second, event = asyncio.run(scenario())
    result = getattr(operator, second.method_name)(context, event)
    assert result["status"] == "completed" and result["reply"].startswith("Reply to turn 1")
    assert cancels(nairi_emulator) == []
    assert nairi_emulator.admin.counts()["conversations"] == 1
    assert [message.task_ids for message in metadata_db.asked] == [["ask"]]


@pytest.mark.parametrize("marked", ["failed", "success"])
def test_mark_failed_or_success_cancels_the_conversation_within_seconds(
    marked, agent_id, context, nairi_emulator, metadata_db, capsys
):
    async def scenario():
        sim = Triggerer()
        deferred, trigger_id = await sim.defer(start(agent_id), context, "ask")
        metadata_db.states["ask"] = marked
        started = asyncio.get_running_loop().time()
        await sim.user_action(trigger_id)
        return deferred.trigger.resource_id, asyncio.get_running_loop().time() - started

    conversation_id, seconds = asyncio.run(scenario())
    assert seconds < 5
    assert NairiHook().client.get_conversation(conversation_id)["status"] == "cancelled"
    assert [r["path"] for r in cancels(nairi_emulator)] == [f"/conversations/{conversation_id}/cancel"]
    assert f"Cancelled conversation {conversation_id}" in capsys.readouterr().out


def test_a_task_instance_airflow_cannot_report_still_cancels(agent_id, context, nairi_emulator, monkeypatch):
    """No answer about the task instance (deleted run, supervisor error): cancel, so no agent works for
    nobody."""

    class Broken:
        def send(self, message):
            raise ConnectionError("supervisor gone")

    monkeypatch.setattr(task_runner, "SUPERVISOR_COMMS", Broken(), raising=False)

    async def scenario():
        sim = Triggerer()
        deferred, trigger_id = await sim.defer(start(agent_id), context, "ask")
        await sim.user_action(trigger_id)
        return deferred.trigger.resource_id

    conversation_id = asyncio.run(scenario())
    assert NairiHook().client.get_conversation(conversation_id)["status"] == "cancelled"


@pytest.mark.parametrize("state", [None, "failed", "success"])
def test_the_sensor_never_cancels_the_conversation_it_watches(
    state, agent_id, context, nairi_emulator, metadata_db
):
    conversation_id = NairiHook().client.create_conversation(agent_id, "hello")["id"]

    async def scenario():
        sim = Triggerer()
        sensor = NairiConversationSensor(
            task_id="watch", conversation_id=conversation_id, deferrable=True, poke_interval=0.05, timeout=30
        )
        _, trigger_id = await sim.defer(sensor, context, "watch")
        metadata_db.states["watch"] = state
        await sim.user_action(trigger_id)

    asyncio.run(scenario())
    assert cancels(nairi_emulator) == []
    assert NairiHook().client.get_conversation(conversation_id)["status"] in {"queued", "running"}


@pytest.mark.parametrize(
    ("state", "said"),
    [
        ("scheduled", "the task was cleared and its next try takes it over"),
        ("failed", "this task has nothing to cancel"),
    ],
)
def test_a_killed_video_wait_leaves_the_videos_alone(
    state, said, nairi_emulator, metadata_db, capsys, tmp_path
):
    (tmp_path / "clip.mp4").write_bytes(b"\x00" * 1024)
    video_id = NairiHook().client.upload_video(tmp_path / "clip.mp4")["id"]

    async def scenario():
        sim = Triggerer()
        trigger = NairiVideoTrigger(
            conn_id="nairi_default", video_ids=[video_id], deadline=None, poll_interval=5
        )
        trigger_id = sim.start(trigger, task_instance("video", 1))
        metadata_db.states["video"] = state
        await asyncio.sleep(0.2)
        await sim.user_action(trigger_id)

    asyncio.run(scenario())
    assert cancels(nairi_emulator) == []
    assert f"Left video {video_id} running: {said}" in capsys.readouterr().out
    assert NairiHook().client.get_video(video_id)["status"] == "processing"
