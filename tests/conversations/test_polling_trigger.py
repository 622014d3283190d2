"""triggers/polling.py: the generic polling base (the conversation and video triggers subclass it)."""

from __future__ import annotations

import asyncio
import json
import time

import pytest

from airflow_provider_nairi import exceptions as nx
from airflow_provider_nairi.outcomes import event_for_resource
from airflow_provider_nairi.resources import waiting
from airflow_provider_nairi.triggers.polling import NairiPollingTrigger


class FakeHook:
    def __init__(self):
        self.closed = 0

    async def close(self):
        self.closed += 1


class ScriptedTrigger(NairiPollingTrigger):
    """Answers polls from a script: a dict snapshot or an exception per poll."""

    kind = "video"

    def __init__(self, *, script=(), cancel_error=None, **kwargs):
        super().__init__(**kwargs)
        self.script = list(script)
        self.polls = 0
        self.cancel_error = cancel_error
        self.cancelled = 0
        self.hooks = []

    def make_hook(self):
        self.hooks.append(FakeHook())
        return self.hooks[-1]

    async def poll(self, hook):
        self.polls += 1
        answer = self.script.pop(0) if self.script else {"id": self.resource_id, "status": "processing"}
        if isinstance(answer, Exception):
            raise answer
        return event_for_resource(self.kind, answer)

    async def cancel(self, hook):
        self.cancelled += 1
        if self.cancel_error:
            raise self.cancel_error
        return True


def trigger(**kwargs):
    settings = {
        "conn_id": "nairi_default",
        "resource_id": "vid_1",
        "deadline": time.time() + 30,
        "poll_interval": 0.01,
        "max_transient_errors": 2,
    }
    return ScriptedTrigger(**{**settings, **kwargs})


async def events(trig):
    return [event.payload async for event in trig.run()]


PROCESSING = {"id": "vid_1", "status": "processing"}
READY = {"id": "vid_1", "status": "ready"}


def test_serialize_is_json_only_and_round_trips():
    trig = trigger()
    classpath, kwargs = trig.serialize()
    assert classpath == f"{__name__}.ScriptedTrigger"
    assert json.loads(json.dumps(kwargs)) == kwargs
    assert set(kwargs) == {"conn_id", "resource_id", "deadline", "poll_interval", "max_transient_errors"}
    assert NairiPollingTrigger(**kwargs).serialize()[1] == kwargs


class PairTrigger(ScriptedTrigger):
    """A trigger identified by something else than one resource id: two of them."""

    def __init__(self, *, pair, **kwargs):
        super().__init__(resource_id=" & ".join(pair), **kwargs)
        self.pair = list(pair)

    def identity(self):
        return {"pair": list(self.pair)}


def test_serialize_writes_what_a_subclass_says_identifies_it_instead_of_resource_id():
    trig = PairTrigger(conn_id="nairi_default", pair=["a", "b"], deadline=None)
    classpath, kwargs = trig.serialize()
    assert set(kwargs) == {"conn_id", "pair", "deadline", "poll_interval", "max_transient_errors"}
    assert kwargs["pair"] == ["a", "b"]
    again = PairTrigger(**json.loads(json.dumps(kwargs)))
    assert again.serialize() == (classpath, kwargs) and again.resource_id == "a & b"


async def test_polls_until_terminal_and_emits_one_json_event():
    trig = trigger(script=[PROCESSING, PROCESSING, READY])
    (event,) = await events(trig)
    assert event["status"] == "success" and event["id"] == "vid_1"
    assert trig.polls == 3
    assert json.loads(json.dumps(event)) == event
    assert [hook.closed for hook in trig.hooks] == [1]


async def test_tolerates_transient_errors_in_a_row_up_to_the_limit():
    flaky = nx.NairiServerError("boom", status=503)
    trig = trigger(script=[flaky, flaky, PROCESSING, flaky, flaky, READY])
    (event,) = await events(trig)
    assert event["status"] == "success"


async def test_one_transient_error_too_many_ends_with_a_retryable_error_event():
    flaky = nx.NairiConnectionError("refused")
    trig = trigger(script=[flaky, flaky, flaky, READY])
    (event,) = await events(trig)
    assert event["status"] == "error"
    assert event["error"]["retryable"] is True and "refused" in event["message"]
    assert trig.polls == 3


async def test_non_retryable_error_ends_at_once():
    trig = trigger(script=[nx.NairiAuthError("revoked", status=401, code="unauthorized", request_id="req_9")])
    (event,) = await events(trig)
    assert event["status"] == "error" and event["error"]["code"] == "unauthorized"
    assert event["error"]["request_id"] == "req_9" and event["error"]["retryable"] is False


async def test_deadline_passed_emits_timeout_after_a_last_poll():
    trig = trigger(deadline=time.time() + 0.05, poll_interval=0.02)
    started = time.monotonic()
    (event,) = await events(trig)
    assert event["status"] == "timeout"
    assert time.monotonic() - started < 1
    assert trig.polls >= 2


async def test_never_loops_without_sleeping(monkeypatch):
    sleeps = []
    real_sleep = asyncio.sleep

    async def recording_sleep(seconds):
        sleeps.append(seconds)
        await real_sleep(0)

    monkeypatch.setattr(asyncio, "sleep", recording_sleep)
    monkeypatch.setattr(waiting, "WAKE_SLOT", 0.0)  # the decided sleeps, not the grid's slack
    flaky = nx.NairiServerError("boom", status=500)
    trig = trigger(script=[flaky, PROCESSING, flaky, READY], poll_interval=0.5)
    await events(trig)
    assert sleeps == [0.5, 0.5, 0.5]


async def test_rate_limit_waits_for_retry_after(monkeypatch):
    sleeps = []

    async def recording_sleep(seconds):
        sleeps.append(seconds)

    monkeypatch.setattr(asyncio, "sleep", recording_sleep)
    monkeypatch.setattr(waiting, "WAKE_SLOT", 0.0)
    trig = trigger(
        script=[nx.NairiRateLimitError("slow", status=429, retry_after=7.0), READY], poll_interval=1
    )
    await events(trig)
    assert sleeps == [7.0]


@pytest.mark.parametrize("bad", [0, -1])
def test_poll_interval_must_be_positive(bad):
    with pytest.raises(ValueError, match="poll_interval"):
        trigger(poll_interval=bad)


async def test_on_kill_cancels_and_swallows_errors(capsys):
    trig = trigger()
    await trig.on_kill()
    assert trig.cancelled == 1
    failing = trigger(cancel_error=nx.NairiServerError("down", status=503))
    await failing.on_kill()
    assert failing.cancelled == 1
    assert [hook.closed for hook in trig.hooks + failing.hooks] == [1, 1]
    assert "Could not cancel video vid_1" in capsys.readouterr().out


def test_triggers_of_one_class_share_one_logger_named_as_airflow_names_it():
    """A triggerer holds thousands of waiting triggers: one logger per class, not one per trigger (each costs
    the garbage collector about eight objects), under the name Airflow gives a trigger's logger."""
    from airflow_provider_nairi.triggers.conversation import NairiConversationTrigger  # noqa: PLC0415

    first, second = trigger(), trigger(resource_id="vid_2")
    conversation = NairiConversationTrigger(conn_id="nairi_default", resource_id="conv_1", deadline=None)
    assert first.log is second.log
    assert conversation.log is not first.log
    # (Airflow may put its own prefix before the class's module and name)
    assert conversation.log.name.endswith(
        "airflow_provider_nairi.triggers.conversation.NairiConversationTrigger"
    )
    assert first.log.name.endswith(f"{__name__}.ScriptedTrigger")


async def test_a_wait_cancelled_while_it_sleeps_gives_its_hook_back():
    """The runner cancels a trigger whose task was killed or moved: the hook (the loop's shared session)
    is given back at once, and the trigger no longer holds it."""
    trig = trigger(poll_interval=30)
    waiting = asyncio.ensure_future(events(trig))
    while trig.polls < 1:
        await asyncio.sleep(0.01)
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    assert [hook.closed for hook in trig.hooks] == [1]
    assert trig._hook is None
