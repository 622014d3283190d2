"""resources.waiting: the worker's wait and the triggerer's wait are one wait (same events, same sleeps)."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from airflow_provider_nairi.exceptions import (
    NairiConnectionError,
    NairiNotFoundError,
    NairiRateLimitError,
    NairiServerError,
)
from airflow_provider_nairi.resources import waiting
from airflow_provider_nairi.resources.conversation import conversation_event
from airflow_provider_nairi.resources.waiting import Waiter, WaitOptions, on_grid

RUNNING = {"id": "conv_1", "status": "running", "turns": 1}
COMPLETED = {"id": "conv_1", "status": "completed", "turns": 1}
UNAVAILABLE = NairiServerError("unavailable", status=503, code="service_unavailable")
SLOW_DOWN = NairiRateLimitError("slow down", status=429, code="rate_limited", retry_after=7.5)


class Clock:
    """Epoch time that only moves when a wait sleeps; records every sleep of the test's own thread (other
    threads, such as a server another test left running, sleep for real)."""

    def __init__(self) -> None:
        self.now = 1_000_000.0
        self.sleeps: list[float] = []
        self.thread = threading.current_thread()
        self.real_time, self.real_sleep = time.time, time.sleep

    def time(self) -> float:
        return self.now if threading.current_thread() is self.thread else self.real_time()

    def sleep(self, seconds: float) -> None:
        if threading.current_thread() is not self.thread:
            self.real_sleep(seconds)
            return
        self.sleeps.append(seconds)
        self.now += seconds

    async def asleep(self, seconds: float) -> None:
        self.sleep(seconds)


@pytest.fixture
def clock(monkeypatch):
    """The clock, and the triggerer's wake grid off: both waits then sleep exactly what they decided."""
    monkeypatch.setattr(waiting, "WAKE_SLOT", 0.0)
    clock = Clock()
    monkeypatch.setattr(time, "time", clock.time)
    monkeypatch.setattr(time, "sleep", clock.sleep)
    monkeypatch.setattr(asyncio, "sleep", clock.asleep)
    return clock


def run_both(script, clock, turn=None, **settings):
    """Run ``script`` (snapshots or errors, one per check, waiting for ``turn``) through ``wait`` and
    ``wait_async``; return the event and the sleeps of each."""
    results = []
    for mode in ("sync", "async"):
        answers = list(script)
        clock.sleeps = []
        options = WaitOptions(**{"poll_interval": 2.0, **settings})
        waiter = Waiter(
            "conversation",
            "conv_1",
            deadline=options.deadline(),
            poll_interval=options.poll_interval,
            max_transient_errors=options.max_transient_errors,
            last_answer=lambda: ("GET", "/conversations/conv_1", "req_last"),
        )

        def check(answers=answers):
            answer = answers.pop(0)
            if isinstance(answer, Exception):
                raise answer
            return conversation_event(answer, turn)

        async def acheck():
            return check()

        event = waiter.wait(check) if mode == "sync" else asyncio.run(waiter.wait_async(acheck))
        results.append((event, clock.sleeps))
    assert results[0] == results[1], "the worker's and the triggerer's wait differ"
    return results[0]


def test_transient_errors_and_retry_after_then_success(clock):
    event, sleeps = run_both([RUNNING, UNAVAILABLE, SLOW_DOWN, RUNNING, COMPLETED], clock)
    assert event["status"] == "success" and event["resource"]["status"] == "completed"
    assert sleeps == [2.0, 2.0, 7.5, 2.0]  # Retry-After longer than the interval wins once


def test_the_budget_counts_errors_in_a_row_only(clock):
    script = [UNAVAILABLE, UNAVAILABLE, RUNNING, UNAVAILABLE, UNAVAILABLE, COMPLETED]
    event, _ = run_both(script, clock, max_transient_errors=2)
    assert event["status"] == "success"


def test_one_error_over_the_budget_ends_in_an_error_event(clock):
    event, sleeps = run_both(
        [UNAVAILABLE, NairiConnectionError("reset"), UNAVAILABLE], clock, max_transient_errors=2
    )
    assert event["status"] == "error" and event["error"]["status"] == 503
    assert event["error"]["retryable"] is True and sleeps == [2.0, 2.0]


def test_a_final_error_ends_the_wait_at_once(clock):
    event, sleeps = run_both([NairiNotFoundError("gone", status=404, code="not_found")], clock)
    assert (event["status"], event["error"]["type"], sleeps) == ("error", "NairiNotFoundError", [])


def test_the_deadline_cuts_the_last_sleep_and_ends_in_a_timeout_event(clock):
    event, sleeps = run_both([RUNNING] * 10, clock, timeout=5)
    assert (
        event["status"] == "timeout"
        and event["message"] == "conversation conv_1 had not ended at its deadline"
    )
    assert sleeps == [2.0, 2.0, 1.0]


def test_a_retry_after_is_cut_by_the_deadline_too(clock):
    event, sleeps = run_both([SLOW_DOWN, RUNNING], clock, timeout=3)
    assert event["status"] == "timeout" and sleeps == [3.0]


@pytest.mark.parametrize(
    "snapshot",
    [
        {"id": "conv_1", "status": "running", "turns": "many"},
        {"id": "conv_1", "status": 5, "turns": 1},
        {"id": "conv_1", "status": "running", "turns": {"n": 1}},
        ["conv_1"],
    ],
    ids=["turns-a-word", "status-a-number", "turns-an-object", "not-an-object"],
)
def test_an_answer_the_check_cannot_read_is_a_transient_malformed_answer_naming_the_call(clock, snapshot):
    script = [snapshot, RUNNING, snapshot, snapshot]
    event, sleeps = run_both(script, clock, turn=1, max_transient_errors=1)
    assert event["status"] == "error" and sleeps == [2.0, 2.0, 2.0]  # tolerated once in a row, twice in all
    assert event["error"]["type"] == "NairiServerError" and event["error"]["code"] == "malformed_answer"
    assert event["error"]["retryable"] is True and event["error"]["request_id"] == "req_last"
    assert "GET /conversations/conv_1" in event["message"]


def test_an_answer_in_hand_the_check_cannot_read_raises_naming_its_call():
    waiter = Waiter(
        "conversation",
        "conv_1",
        deadline=None,
        poll_interval=1.0,
        last_answer=lambda: ("POST", "/conversations", "req_create"),
    )
    with pytest.raises(NairiServerError) as raised:
        waiter.read(lambda: conversation_event({"id": "conv_1", "status": "running", "turns": "x"}, 1))
    assert raised.value.retryable and raised.value.code == "malformed_answer"
    assert str(raised.value).startswith(
        "POST /conversations: malformed_answer: the answer about conversation"
    )
    assert str(raised.value).endswith("(request id req_create)")
    unavailable = NairiServerError("unavailable", status=503, method="GET", path="/conversations/conv_1")

    def fails():
        raise unavailable

    with pytest.raises(NairiServerError) as passed_through:
        waiter.read(fails)
    assert passed_through.value is unavailable  # a client error is kept as it is


def test_wait_options_refuse_what_would_never_end_or_busy_loop():
    for bad in ({"poll_interval": 0}, {"poll_interval": float("nan")}, {"poll_interval": 1, "timeout": -1}):
        with pytest.raises(ValueError):
            WaitOptions(**bad)
    with pytest.raises(ValueError):
        WaitOptions(poll_interval=1, max_transient_errors=-1)


@pytest.mark.parametrize("step", [20.0, 5.0, 0.5, 0.02])
@pytest.mark.parametrize("now", [0.0, 12.345, 86_400.0371])
def test_a_triggerer_sleep_ends_on_the_nearest_point_of_the_wake_grid(step, now):
    slot = min(waiting.WAKE_SLOT, step * 0.02)  # 0.02 s, or 2 % of a sleep under 1 s
    slept = on_grid(step, now)
    assert step - slot / 2 - 1e-9 <= slept < step + slot / 2 + 1e-9
    ends = (now + slept) / slot
    assert abs(ends - round(ends)) < 1e-6


def test_the_triggerer_wait_sleeps_to_the_grid_and_the_worker_wait_does_not(monkeypatch):
    # Waits whose polls fall due near one point of the grid wake in one pass of the event loop; a worker's
    # wait sleeps what it decided.
    wakes: list[tuple[float, float]] = []
    real_sleep = asyncio.sleep

    async def recording_sleep(seconds):
        if seconds >= 1.0:  # the wait's own sleeps (5 s); other code's short sleeps (Airflow 3.1) are not it
            wakes.append((seconds, asyncio.get_running_loop().time() + seconds))
        await real_sleep(0)

    monkeypatch.setattr(asyncio, "sleep", recording_sleep)

    def waiter_and_check():
        polls = iter([RUNNING, RUNNING, COMPLETED])
        return Waiter("conversation", "conv_1", deadline=None, poll_interval=5.0), lambda: conversation_event(
            next(polls)
        )

    waiter, check = waiter_and_check()

    async def acheck():
        return check()

    assert asyncio.run(waiter.wait_async(acheck))["status"] == "success"
    assert len(wakes) == 2
    for seconds, when in wakes:
        assert 5.0 - waiting.WAKE_SLOT / 2 <= seconds <= 5.0 + waiting.WAKE_SLOT / 2 + 1e-9
        grid = when / waiting.WAKE_SLOT
        assert abs(grid - round(grid)) < 0.01  # on the grid (the loop's clock moved a few us)
    slept: list[float] = []
    monkeypatch.setattr(time, "sleep", slept.append)
    waiter, check = waiter_and_check()
    assert waiter.wait(check)["status"] == "success" and slept == [5.0, 5.0]
