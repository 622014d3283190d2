"""The shared rate budget of a key (client/budget.py), on a hand-driven clock: pacing, pauses, the probe."""

from __future__ import annotations

import pytest

from airflow_provider_nairi.client.budget import (
    FIRST_REQUESTS,
    PACE_MARGIN,
    PROBE_PATIENCE,
    RateBudget,
    RateBudgets,
    key_fingerprint,
    lead_for,
)
from airflow_provider_nairi.client.protocol import RateLimit

T0 = 1_000_000.0


def fresh_with_answer(remaining: int | None, window: float, now: float = T0) -> RateBudget:
    """A budget whose probe (sent at ``now``) was answered: ``remaining`` left until ``now + window``."""
    budget = RateBudget()
    probe = budget.reserve(now)
    assert probe is not None and budget.due(probe) <= now
    reset = None if remaining is None else now + window
    budget.record(now, RateLimit(limit=None, remaining=remaining, reset=reset))
    return budget


def dues(budget: RateBudget, now: float, count: int) -> list[float]:
    """Take ``count`` tickets at ``now``; when each is due, relative to ``now``."""
    tickets = [budget.reserve(now) for _ in range(count)]
    return [round(budget.due(t) - now, 6) if budget.due(t) > now else 0.0 for t in tickets]


def test_the_first_requests_probe_and_the_others_wait_for_an_answer_a_little():
    budget = RateBudget()
    assert all(budget.reserve(T0) is not None for _ in range(FIRST_REQUESTS))
    assert budget.reserve(T0) is None and budget.reserve(T0 + 0.1) is None  # waiting for an answer
    assert budget.probe_wait(T0 + 0.1) == pytest.approx(PROBE_PATIENCE - 0.1)
    assert budget.reserve(T0 + PROBE_PATIENCE) is not None  # no answer in time (a hung host): go
    budget.record(T0 + 0.3, RateLimit(limit=20, remaining=19, reset=T0 + 1.3))
    # paced from now on, the 11 unpaced first requests counted as if they had been paced (1 s / 19 apart)
    assert budget.due(budget.reserve(T0 + 0.3)) == pytest.approx(T0 + 11 / 19)


def test_a_probe_without_an_answer_lets_the_next_requests_probe():
    budget = RateBudget()
    for _ in range(FIRST_REQUESTS):
        budget.reserve(T0)
    budget.record(T0, None, answered=False)
    assert all(budget.reserve(T0) is not None for _ in range(FIRST_REQUESTS))  # the new probes
    assert budget.reserve(T0) is None


def test_requests_are_spaced_by_time_left_over_requests_left():
    budget = fresh_with_answer(remaining=10, window=2.0)
    assert dues(budget, T0, 4) == [0.2, 0.4, 0.6, 0.8]  # the probe counts as the first paced request


def test_tickets_already_handed_out_follow_a_new_pace():
    budget = fresh_with_answer(remaining=10, window=2.0)
    tickets = [budget.reserve(T0) for _ in range(4)]  # due at +0.2, +0.4, +0.6, +0.8
    # at +0.1 an answer says 19 are left for 1.9 s: 0.1 s apart from the first ticket not yet due
    budget.record(T0 + 0.1, RateLimit(limit=None, remaining=19, reset=T0 + 2.0))
    assert [round(budget.due(t) - T0, 6) for t in tickets] == [0.2, 0.3, 0.4, 0.5]


def test_clients_asking_later_than_the_schedule_go_at_once():
    budget = fresh_with_answer(remaining=10, window=2.0)
    assert dues(budget, T0, 1) == [0.2]
    assert dues(budget, T0 + 5, 2) == [0.0, 0.2]


def test_a_429_pauses_everyone_and_moves_the_whole_queue_back():
    budget = fresh_with_answer(remaining=10, window=2.0)
    taken = [budget.reserve(T0) for _ in range(3)]  # due at +0.2, +0.4, +0.6
    budget.record(T0 + 0.1, None, rate_limited=True, retry_after=3.0)
    assert budget.paused_until == T0 + 3.1
    assert [round(budget.due(t) - T0, 6) for t in taken] == [3.2, 3.4, 3.6]  # order kept, nobody in the pause
    later = budget.reserve(T0 + 0.1)
    assert budget.due(later) > budget.due(taken[-1])


def test_overlapping_pauses_add_only_the_extra_time():
    budget = fresh_with_answer(remaining=10, window=2.0)
    ticket = budget.reserve(T0 + 0.5)
    budget.record(T0, None, rate_limited=True, retry_after=2.0)
    budget.record(T0 + 1, None, rate_limited=True, retry_after=2.0)  # ends at +3: one more second
    assert budget.paused_until == T0 + 3 and budget.due(ticket) == pytest.approx(T0 + 3.5)
    budget.record(T0 + 1, None, rate_limited=True, retry_after=0.5)  # inside the pause: nothing added
    assert budget.paused_until == T0 + 3 and budget.due(ticket) == pytest.approx(T0 + 3.5)


def test_a_429_without_retry_after_pauses_nobody_else():
    """The client that got it backs off with jitter like any retry; the others are not held."""
    budget = fresh_with_answer(remaining=10, window=2.0)
    budget.record(T0, None, rate_limited=True)
    assert budget.paused_until == 0.0 and dues(budget, T0, 1) == [0.2]  # its normal turn


def test_an_answer_is_recorded_from_its_status_and_headers():
    """What both clients record of each answer: its rate limit, and a 429's pause, which the client that got
    it waits out in its retry only when ``Retry-After`` is within its ``retry_max_wait`` (``longest``)."""
    budget = fresh_with_answer(remaining=10, window=2.0)
    headers = {"X-RateLimit-Limit": "20", "X-RateLimit-Remaining": "9", "X-RateLimit-Reset": str(T0 + 2)}
    assert budget.record_answer(T0, 200, headers, sent_at=T0, longest=60) == (RateLimit(20, 9, T0 + 2), None)
    assert budget.paused_until == 0.0
    assert budget.record_answer(T0, 429, {"Retry-After": "3"}, sent_at=T0, longest=60) == (None, T0 + 3)
    assert budget.paused_until == T0 + 3
    assert budget.record_answer(T0, 429, {"Retry-After": "90"}, sent_at=T0, longest=60) == (None, None)
    assert budget.paused_until == T0 + 90  # the others are held all the same; this client's retry gives up
    assert budget.record_answer(T0, 200, {"Retry-After": "500"}, sent_at=T0, longest=600) == (None, None)
    assert budget.paused_until == T0 + 90  # Retry-After counts only on a 429


def test_nothing_left_pauses_until_the_reset_then_probes_if_nothing_was_known():
    budget = RateBudget()
    budget.reserve(T0)
    budget.record(T0, RateLimit(limit=20, remaining=0, reset=T0 + 4))
    probe = budget.reserve(T0 + 1)
    assert budget.due(probe) == T0 + 4  # the next probes wait for the reset


def test_a_server_without_rate_limit_headers_is_not_paced():
    budget = fresh_with_answer(remaining=None, window=0)
    assert dues(budget, T0, 3) == [0.0, 0.0, 0.0]
    budget.record(T0, None, rate_limited=True, retry_after=2)
    assert dues(budget, T0, 1) == [2.0]  # pauses still apply


def test_a_reset_in_the_past_keeps_the_last_spacing():
    budget = fresh_with_answer(remaining=10, window=2.0)
    budget.record(T0 + 3, RateLimit(limit=11, remaining=5, reset=T0 + 2.0))  # clocks disagree
    assert budget.spacing == pytest.approx(0.2)


def test_a_pause_longer_than_retry_max_wait_raises_at_once():
    from airflow_provider_nairi.exceptions import NairiRateLimitError  # noqa: PLC0415

    budget = fresh_with_answer(remaining=10, window=2.0)
    budget.record(T0, None, rate_limited=True, retry_after=120)
    budget.check_pause(T0, 200)
    with pytest.raises(NairiRateLimitError, match="longer than retry_max_wait") as info:
        budget.check_pause(T0, 60)
    assert info.value.retry_after == 120


@pytest.mark.parametrize("sharers", [1, 2, 5])
def test_sharers_pacing_by_the_same_headers_slow_down_before_the_limit(sharers):
    """k processes with their own budgets, each pacing by the key's common headers and sending as soon as
    it may: at most k - 1 requests of the window are refused (each sharer's first 429 pauses it until the
    reset); one alone is never refused."""
    limit, window = 100, 60.0
    budgets = [fresh_with_answer(remaining=limit - 1, window=window) for _ in range(sharers)]
    remaining, reset, refused = limit - 1 - (sharers - 1), T0 + window, 0
    next_send = [T0] * sharers
    while min(next_send) < reset:
        k = min(range(sharers), key=next_send.__getitem__)
        now = next_send[k]
        if remaining > 0:
            remaining -= 1
            budgets[k].record(now, RateLimit(limit, remaining, reset))
        else:
            refused += 1
            budgets[k].record(now, RateLimit(limit, 0, reset), rate_limited=True, retry_after=reset - now)
        next_send[k] = max(now, budgets[k].due(budgets[k].reserve(now)))
    assert refused <= sharers - 1
    assert remaining <= 1  # the window was used, not wasted


def test_whole_second_resets_are_narrowed_by_the_windows_it_opened():
    """A 1 s window whose reset is rounded up to the second: a window this budget opened (limit - 1 left)
    is at most ``reset - sent`` long, and at most the time since the previous one it opened."""
    budget = RateBudget()
    budget.reserve(T0)
    opened = T0 + 0.3  # reset = ceil(opened + 1) = T0 + 2: looks 1.7 s long
    budget.record(opened, RateLimit(limit=20, remaining=19, reset=T0 + 2), sent_at=opened)
    assert budget.window == pytest.approx(1.7)
    opened = T0 + 1.4  # reset T0 + 3 looks 1.6 s long, but it opened 1.1 s after the previous one
    budget.record(opened, RateLimit(limit=20, remaining=19, reset=T0 + 3), sent_at=opened)
    assert budget.window == pytest.approx(1.1)
    assert budget.spacing == pytest.approx(1.1 * (1 + PACE_MARGIN) / 20)  # the key's steady pace, own window
    budget.record(T0 + 2.4, RateLimit(limit=20, remaining=0, reset=T0 + 3))
    assert budget.paused_until == pytest.approx(T0 + 2.5)  # the window's end, not the rounded T0 + 3


def test_budgets_are_shared_by_base_url_and_key_and_never_show_the_key():
    budgets = RateBudgets()
    one = budgets.for_key("https://a/api", "nr_secret_one")
    assert budgets.for_key("https://a/api", "nr_secret_one") is one
    assert budgets.for_key("https://b/api", "nr_secret_one") is not one
    assert budgets.for_key("https://a/api", "nr_secret_two") is not one
    assert "nr_secret" not in repr(one) and "nr_secret" not in repr(budgets.__dict__)
    assert key_fingerprint("nr_secret_one") != key_fingerprint("nr_secret_two")
    assert len(key_fingerprint("nr_secret_one")) == 12


def test_a_key_with_headroom_lets_a_request_go_at_once_and_counts_it_in_the_queue():
    """go_now, the fast path of every request: it takes a place only when reserve would have made it due at
    once, and that place counts for the requests that queue after it."""
    unknown = RateBudget()
    assert unknown.go_now(T0) is False  # the key's pace is not known yet: the probe path decides
    budget = fresh_with_answer(remaining=10, window=2.0)  # 0.2 s apart
    assert budget.go_now(T0 + 5) is True  # nobody queued: goes now
    assert budget.go_now(T0 + 5) is False  # the next one is due 0.2 s later: it must queue
    assert dues(budget, T0 + 5, 2) == [0.2, 0.4]  # ... behind the one that went
    assert budget.go_now(T0 + 5.4) is False  # still two queued ahead
    assert budget.go_now(T0 + 9) is True
    budget.record(T0 + 9, RateLimit(limit=10, remaining=0, reset=T0 + 12))  # used up: paused to the reset
    assert budget.go_now(T0 + 11) is False
    assert budget.go_now(T0 + 12) is False  # the queue moved back by the pause: its next place is 0.2 s on
    assert budget.go_now(T0 + 12.2) is True


def test_without_rate_limit_headers_every_request_goes_at_once():
    budget = fresh_with_answer(remaining=None, window=0)
    assert all(budget.go_now(T0) for _ in range(100))


def own_window_budget(limit: int, window: float) -> RateBudget:
    """A budget that opened a window of ``window`` s on a key allowing ``limit`` per window (its probe
    answered ``limit - 1`` left)."""
    budget = RateBudget()
    budget.reserve(T0)
    budget.record(T0, RateLimit(limit=limit, remaining=limit - 1, reset=T0 + window), sent_at=T0)
    return budget


def test_a_key_with_much_headroom_lets_a_burst_go_at_once_and_no_window_gets_more_than_its_limit():
    """On a key allowing 100,000 requests a minute, a burst of polls (a triggerer's loop catching up after a
    pause) goes at once instead of queueing one slot apart; whatever the arrivals, no window of the key's
    length gets more than the limit. A 20-per-second key is still paced slot by slot."""
    roomy = own_window_budget(100_000, 60.0)
    assert roomy.spacing == pytest.approx(60 * (1 + PACE_MARGIN) / 100_000)
    assert roomy.lead == pytest.approx(60 * (PACE_MARGIN - (1 + PACE_MARGIN) / 100_000))
    assert roomy.lead == lead_for(RateLimit(100_000, 99_999, T0 + 60), 60.0) and roomy.lead > 1.0
    assert all(roomy.go_now(T0 + 1) for _ in range(1000))  # 1,000 at once: all go
    tight = own_window_budget(20, 1.0)
    assert tight.lead == 0.0
    assert tight.go_now(T0 + 1) is True and tight.go_now(T0 + 1) is False  # the next is one slot later

    budget, sent, now = own_window_budget(1000, 10.0), [T0], T0
    while now < T0 + 60:  # demand far above the limit, in bursts
        for _ in range(50):
            if budget.go_now(now):
                sent.append(now)
        now += 0.2
    for start in sent:
        assert sum(1 for t in sent if start <= t < start + 10.0) <= 1000
    assert len(sent) >= 5 * 1000 * 0.95  # and the key is used, not wasted


def test_answers_of_a_window_paced_steadily_are_recognised_without_changing_the_schedule(monkeypatch):
    """In a window the budget opened and paces at its steady pace, an answer with requests left cannot change
    the schedule, so ``record_answer`` takes it without the lock (a triggerer's polls on a key with
    headroom). Fed the same answers, a budget that records every one in full decides exactly alike, through
    a new window, a 429, a used-up window and a window another client opened."""
    fast, full = RateBudget(), RateBudget()
    recorded: list[float] = []
    record = RateBudget.record

    def counting(self, now, *args, **kwargs):
        if self is fast:
            recorded.append(now)
        return record(self, now, *args, **kwargs)

    monkeypatch.setattr(RateBudget, "record", counting)

    def headers(limit: int, remaining: int, reset: float) -> dict[str, str]:
        return {
            "X-RateLimit-Limit": str(limit),
            "X-RateLimit-Remaining": str(remaining),
            "X-RateLimit-Reset": str(int(reset)),
        }

    answers = [(T0 + 0.01 * i, 200, headers(100, 99 - i, T0 + 10)) for i in range(30)]  # opens a window
    answers += [(T0 + 10.0, 200, headers(100, 99, T0 + 20))]  # the next window, opened again
    answers += [(T0 + 10.1 + 0.01 * i, 200, headers(100, 98 - i, T0 + 20)) for i in range(20)]
    answers += [(T0 + 10.5, 429, {**headers(100, 0, T0 + 20), "Retry-After": "2"})]
    answers += [(T0 + 12.6, 200, headers(100, 40, T0 + 20)), (T0 + 12.7, 200, headers(100, 0, T0 + 20))]
    answers += [(T0 + 20.2 + 0.01 * i, 200, headers(100, 50 - i, T0 + 30)) for i in range(10)]  # not ours
    for budget in (fast, full):
        budget.reserve(T0)
    for now, status, answer in answers:
        full._quiet = None  # always the whole record
        got = fast.record_answer(now, status, answer, sent_at=now, longest=60)
        assert got == full.record_answer(now, status, answer, sent_at=now, longest=60)
        state = ("spacing", "paused_until", "lead", "window", "window_opened")
        assert [getattr(fast, name) for name in state] == [getattr(full, name) for name in state]
        assert [fast.go_now(now) for _ in range(3)] == [full.go_now(now) for _ in range(3)]
    assert fast.record_answer(T0 + 10.2, 200, headers(100, 7, T0 + 20), sent_at=T0, longest=60)[
        0
    ] == RateLimit(100, 7, float(int(T0 + 20)))
    assert 0 < len(recorded) <= 16, f"{len(recorded)} of {len(answers)} answers recorded in full"


def test_in_a_window_someone_else_opened_answers_are_recorded_once_half_the_limit_is_used(monkeypatch):
    """Another process opened the window: the budget spreads what is left over the rest of the window. While
    more than half the limit is left, an answer of that window is taken without the lock and the pace of the
    latest recorded answer holds (never faster than what was left then, spread over the rest of the window);
    from half the limit on, every answer is recorded and the pace follows what is left."""
    budget = RateBudget()
    recorded: list[int] = []
    record = RateBudget.record
    monkeypatch.setattr(
        RateBudget,
        "record",
        lambda self, now, rate_limit, **kw: (
            recorded.append(rate_limit.remaining),
            record(self, now, rate_limit, **kw),
        ),
    )

    def answer(now: float, remaining: int) -> RateLimit | None:
        headers = {
            "X-RateLimit-Limit": "1000",
            "X-RateLimit-Remaining": str(remaining),
            "X-RateLimit-Reset": str(int(T0 + 60)),
        }
        return budget.record_answer(now, 200, headers, sent_at=now, longest=60)[0]

    budget.reserve(T0)
    assert answer(T0, 800) == RateLimit(1000, 800, T0 + 60)  # a window opened by someone else: 800 left
    assert budget.spacing == pytest.approx(60 / 800)
    assert budget.lead == pytest.approx(0.02 * 60)  # 2 % of the window's time left: 16 of 800 go early
    assert [answer(T0 + 0.1 * i, 800 - 10 * i).remaining for i in range(1, 30)] == list(range(790, 509, -10))
    assert recorded == [800]  # above half the limit: the pace of the recorded answer holds
    assert budget.spacing == pytest.approx(60 / 800)
    assert answer(T0 + 3.0, 500).remaining == 500  # half the limit used: recorded again, the pace follows
    assert recorded == [800, 500] and budget.spacing == pytest.approx((60 - 3.0) / 500)


def test_in_a_window_someone_else_opened_a_burst_may_use_two_percent_of_what_is_left_at_once():
    """Polls falling due together on a key another process is also using: up to 2 % of the requests left
    go at once (the lead is 2 % of the window's time left), the next queue one slot apart."""
    budget = RateBudget()
    budget.reserve(T0)
    budget.record(T0, RateLimit(limit=1000, remaining=800, reset=T0 + 60), sent_at=T0)  # 75 ms apart
    assert budget.lead == pytest.approx(1.2)
    assert sum(budget.go_now(T0) for _ in range(30)) == 16  # 2 % of 800
    assert dues(budget, T0, 2) == pytest.approx([1.275, 1.35])  # the rest one slot apart, as before
