"""NairiEventTrigger against the emulator over real HTTP: one event per ended run / conversation / video, a
position that survives a restart (no replay, no loss), outages handled inside, never a raise."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time

import pytest

from airflow_provider_nairi import exceptions as nx
from airflow_provider_nairi.hooks.nairi import NairiAsyncHook, NairiHook
from airflow_provider_nairi.triggers import events
from airflow_provider_nairi.triggers.events import NairiEventTrigger, Position


class MemoryStore:
    """What the 3.3 triggerer injects as ``asset_state_store`` (one watched asset), kept in a dict; values go
    through JSON like the real store's."""

    def __init__(self):
        self.values = {}
        self.writes = 0

    async def aget(self, key, default=None):
        return json.loads(self.values[key]) if key in self.values else default

    async def aset(self, key, value):
        self.values[key] = json.dumps(value)
        self.writes += 1


@pytest.fixture(autouse=True)
def fast(monkeypatch):
    monkeypatch.setattr(events, "SETTLE_SECONDS", 0.01)


@pytest.fixture
def org(nairi_emulator):
    hook = NairiHook().client
    agent = hook.create_agent("support", "Answer briefly.")
    other = hook.create_agent("other", "Answer briefly.")
    job = hook.create_scheduled_job("nightly", agent["id"], "Summarise the day.", "0 2 * * *")
    yield hook, agent, other, job
    hook.close()


def wait_ended(hook, conversation_id, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        conversation = hook.get_conversation(conversation_id)
        if conversation["status"] not in ("queued", "running"):
            return conversation
        time.sleep(0.02)
    raise AssertionError(f"{conversation_id} did not end")


async def poll_once(trigger, position):
    hook = NairiAsyncHook()
    try:
        client = await hook.get_async_client()
        source = await trigger.source(client)
        return await trigger.poll(client, source, position)
    finally:
        await hook.close()


async def collect(trigger, count, timeout=10.0, linger=0.3):
    """Run the trigger as the triggerer does (it keeps iterating after an event) until it has yielded
    ``count`` events and ``linger`` more seconds passed (or the timeout), then stop it as a triggerer restart
    does: cancel the task."""
    got = []
    enough = asyncio.Event()

    async def consume():
        async for event in trigger.run():
            got.append(event.payload)
            if len(got) >= count:
                enough.set()

    task = asyncio.ensure_future(consume())
    with contextlib.suppress(asyncio.TimeoutError):
        await asyncio.wait_for(enough.wait(), timeout)
        await asyncio.sleep(linger)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    return got


async def test_each_run_of_the_job_that_ended_is_announced_once(org):
    hook, agent, _, job = org
    before = wait_ended(hook, hook.run_scheduled_job(job["id"])["id"])
    trigger = NairiEventTrigger(job_name="nightly", poll_interval=0.05)
    position, payloads = await poll_once(trigger, None)
    assert payloads == []  # a run that ended before the watcher began is not announced
    assert before["id"] in position.recent

    runs = [wait_ended(hook, hook.run_scheduled_job(job["id"])["id"]) for _ in range(2)]
    hook.create_conversation(agent["id"], "not a run of the job")
    position, payloads = await poll_once(trigger, position)

    assert [p["conversation_id"] for p in payloads] == [r["id"] for r in runs]
    assert payloads[0] == {
        "kind": "scheduled_job_run",
        "conversation_id": runs[0]["id"],
        "status": "completed",
        "agent_id": agent["id"],
        "turns": 1,
        "reply_message_id": runs[0]["last_message"]["id"],
        "error_code": None,
        "updated_at": runs[0]["updated_at"],
        "job_id": job["id"],
    }
    assert (await poll_once(trigger, position))[1] == []


async def test_a_run_still_working_at_start_is_announced_when_it_ends(org):
    hook, _, _, job = org
    hook.update_scheduled_job(job["id"], message="slow [[delay:0.5]]")
    run = hook.run_scheduled_job(job["id"])
    trigger = NairiEventTrigger(job_id=job["id"], poll_interval=0.05)
    position, payloads = await poll_once(trigger, None)
    assert payloads == [] and position.pending == [run["id"]]
    wait_ended(hook, run["id"])
    position, payloads = await poll_once(trigger, position)
    assert [p["conversation_id"] for p in payloads] == [run["id"]] and position.pending == []


async def test_failed_runs_are_announced_only_when_asked(org):
    hook, _, _, job = org
    hook.update_scheduled_job(job["id"], message="[[fail:quota:over budget]]")
    default = NairiEventTrigger(job_id=job["id"], poll_interval=0.05)
    both = NairiEventTrigger(job_id=job["id"], statuses=["completed", "failed"], poll_interval=0.05)
    start_default, _ = await poll_once(default, None)
    start_both, _ = await poll_once(both, None)
    failed = wait_ended(hook, hook.run_scheduled_job(job["id"])["id"])
    assert (await poll_once(default, start_default))[1] == []
    [payload] = (await poll_once(both, start_both))[1]
    assert payload["conversation_id"] == failed["id"]
    assert (payload["status"], payload["error_code"], payload["reply_message_id"]) == (
        "failed",
        "quota",
        None,
    )


async def test_conversations_of_one_agent_and_videos(org, tmp_path):
    hook, agent, other, _ = org
    by_agent = NairiEventTrigger(agent_name="support", poll_interval=0.05)
    videos = NairiEventTrigger(videos=True, poll_interval=0.05)
    agent_position, _ = await poll_once(by_agent, None)
    video_position, _ = await poll_once(videos, None)

    mine = wait_ended(hook, hook.create_conversation(agent["id"], "hello")["id"])
    wait_ended(hook, hook.create_conversation(other["id"], "hello")["id"])
    broken, talk = tmp_path / "broken.mp4", tmp_path / "talk.txt"
    broken.write_bytes(b"\x00" * 64)  # the emulator fails it: not announced (statuses default to ready)
    talk.write_bytes(b"x" * 64)
    hook.upload_video(broken, title="Broken")
    video = hook.upload_video(talk, title="Demo")
    time.sleep(0.5)

    _, payloads = await poll_once(by_agent, agent_position)
    assert [(p["kind"], p["conversation_id"]) for p in payloads] == [("conversation", mine["id"])]
    assert "job_id" not in payloads[0]
    _, payloads = await poll_once(videos, video_position)
    assert payloads == [
        {
            "kind": "video",
            "video_id": video["id"],
            "status": "ready",
            "size_bytes": 64,
            "updated_at": hook.get_video(video["id"])["updated_at"],
        }
    ]


async def test_a_triggerer_restart_neither_replays_nor_loses_runs(org):
    hook, _, _, job = org
    store = MemoryStore()

    first = NairiEventTrigger(job_name="nightly", poll_interval=0.05)
    first.asset_state_store = store
    assert await collect(first, 1, timeout=0.5) == []  # starts: remembers the end of the list
    run_1 = wait_ended(hook, hook.run_scheduled_job(job["id"])["id"])
    first = NairiEventTrigger(job_name="nightly", poll_interval=0.05)
    first.asset_state_store = store
    assert [p["conversation_id"] for p in await collect(first, 1)] == [run_1["id"]]  # then it stops

    run_2 = wait_ended(hook, hook.run_scheduled_job(job["id"])["id"])  # ends while no triggerer runs

    second = NairiEventTrigger(job_name="nightly", poll_interval=0.05)  # rebuilt from the same kwargs
    second.asset_state_store = store
    got = await collect(second, 2, timeout=1.0)
    assert [p["conversation_id"] for p in got] == [run_2["id"]]  # run_1 not again, run_2 not lost
    assert list(store.values) == [f"nairi-event-trigger:scheduled_job_run:{job['id']}"]


async def test_an_outage_is_waited_out_inside_the_trigger(org, nairi_emulator, monkeypatch):
    hook, _, _, job = org
    connection = {"conn_type": "nairi", "host": nairi_emulator.base_url, "password": nairi_emulator.api_key}
    monkeypatch.setenv("AIRFLOW_CONN_NAIRI_DEFAULT", json.dumps({**connection, "extra": {"max_retries": 0}}))
    store = MemoryStore()
    trigger = NairiEventTrigger(job_id=job["id"], poll_interval=0.05)
    trigger.asset_state_store = store
    await collect(trigger, 1, timeout=0.3)
    run = wait_ended(hook, hook.run_scheduled_job(job["id"])["id"])
    nairi_emulator.admin.set_faults(rate=1.0, kinds=["503"])
    trigger = NairiEventTrigger(job_id=job["id"], poll_interval=0.05)
    trigger.asset_state_store = store
    task = asyncio.ensure_future(collect(trigger, 1, timeout=5.0))
    await asyncio.sleep(1.0)
    assert not task.done()  # still running: the errors did not end (or crash) the watcher
    nairi_emulator.admin.clear_faults()
    got = await task
    assert [p["conversation_id"] for p in got] == [run["id"]]
    failed_polls = [r for r in nairi_emulator.admin.requests_log() if r["status"] == 503]
    assert len(failed_polls) >= 3  # each failed poll was retried later, with a growing backoff


def test_backoff_doubles_honours_retry_after_and_is_capped():
    trigger = NairiEventTrigger(job_id="job_1", poll_interval=10)
    server = nx.NairiServerError("down")
    assert [trigger.backoff(server, n) for n in (1, 2, 3)] == [10, 20, 40]
    assert trigger.backoff(server, 30) == events.MAX_BACKOFF_SECONDS
    assert trigger.backoff(nx.NairiRateLimitError("slow down", retry_after=300), 1) == 300
    assert trigger.backoff(nx.NairiRateLimitError("x", retry_after=10**6), 1) == events.MAX_BACKOFF_SECONDS


async def test_answers_outside_the_contract_are_never_announced():
    class Hostile:
        def __init__(self, answers):
            self.answers = answers

        async def request(self, method, path, params=None):
            return self.answers.pop(0)

    trigger = NairiEventTrigger(agent_id="agt_1", poll_interval=5)
    bad = [
        {"id": "conv_1; DROP", "status": "completed"},
        {"id": "x" * 500, "status": "completed"},
        {"id": "conv_2", "status": "exploded"},
        {"id": 7, "status": "completed"},
        "not an object",
        {"id": "conv_3", "status": "completed", "turns": "many", "error": "text", "last_message": []},
    ]
    position, payloads = await trigger.poll(Hostile([bad]), ("agt_1", "agt_1", None), Position("agt_1"))
    assert [p["conversation_id"] for p in payloads] == ["conv_3"]
    assert payloads[0]["turns"] is None and payloads[0]["error_code"] is None
    assert position.offset == len(bad) and position.pending == []
    with pytest.raises(nx.NairiServerError, match="without a list"):
        await trigger.poll(Hostile([{"oops": 1}]), ("agt_1", "agt_1", None), position)


def test_a_stored_position_that_is_not_one_starts_the_feed_anew():
    assert Position.from_json(None) is None
    assert Position.from_json({"scope": "agt_1", "offset": -1, "pending": [], "recent": []}) is None
    assert Position.from_json({"scope": "agt_1", "offset": 3, "pending": "x", "recent": []}) is None
    kept = Position.from_json({"scope": "agt_1", "offset": 3, "pending": ["c_1", 5], "recent": ["c_2"] * 500})
    assert kept == Position("agt_1", 3, ["c_1"], ["c_2"] * events.RECENT_IDS)


def test_pending_is_bounded():
    feed = events.Feed("conversation", ("completed",), max_pending=2)
    position = Position("agt_1")
    for n in range(3):
        feed.read(position, {"id": f"conv_{n}", "status": "running"})
    assert position.pending == ["conv_1", "conv_2"] and feed.dropped == ["conv_0"]


def test_serialized_kwargs_hold_no_position_and_no_key_and_are_stable():
    trigger = NairiEventTrigger(job_name="nightly", conn_id="nairi_prod")
    classpath, kwargs = trigger.serialize()
    assert classpath == "airflow_provider_nairi.triggers.events.NairiEventTrigger"
    assert kwargs == {
        "job_id": None,
        "job_name": "nightly",
        "agent_id": None,
        "agent_name": None,
        "videos": False,
        "statuses": ["completed"],
        "poll_interval": 60.0,
        "max_pending": 100,
        "conn_id": "nairi_prod",
    }
    assert NairiEventTrigger(**kwargs).serialize() == (classpath, kwargs)


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({}, "Give exactly one"),
        ({"job_id": "job_1", "agent_id": "agt_1"}, "Give exactly one"),
        ({"job_id": "job_1", "statuses": ["ready"]}, "statuses"),
        ({"videos": True, "statuses": ["completed"]}, "statuses"),
        ({"job_id": "job_1", "statuses": []}, "statuses"),
        ({"job_id": "job_1", "poll_interval": 0.001}, "poll_interval"),
        ({"job_id": "job_1", "max_pending": 0}, "max_pending"),
        ({"job_name": " "}, "job_name"),
    ],
)
def test_wrong_parameters_are_refused_at_parse(kwargs, error):
    with pytest.raises((ValueError, nx.NairiConfigurationError), match=error):
        NairiEventTrigger(**kwargs)


def test_usable_in_an_asset_watcher():
    sdk = pytest.importorskip("airflow.sdk")
    if not hasattr(sdk, "AssetWatcher"):
        pytest.skip("AssetWatcher is Airflow 3")
    asset = sdk.Asset(
        "nairi://jobs/nightly",
        watchers=[sdk.AssetWatcher(name="nightly", trigger=NairiEventTrigger(job_name="nightly"))],
    )
    assert asset.watchers[0].trigger.serialize()[1]["job_name"] == "nightly"
