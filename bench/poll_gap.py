"""Where the CPU per poll of a waiting ``NairiConversationTrigger`` goes beyond a bare aiohttp trigger.

One event loop in this process runs ``--waits`` triggers polling every ``--interval`` seconds against the
emulator (pinned to the other core when there are two, this process to the first), for ``--seconds`` per
round; the CPU this process spent is divided by the polls the emulator counted, and so are the event loop's
iterations (polls that fall due together share one; a poll alone costs one more selector call). Six
contenders, in interleaved rounds (the order reversed every other round), the median of each one's rounds
taken:

- ``bare``: ``BareAiohttpTrigger`` of ``bench/triggerer.py`` (one shared session, no checks);
- ``ours``: ``NairiConversationTrigger`` as shipped;
- ``client``: our client's calls alone (``get_conversation`` through the endpoint table, then a sleep);
- ``ours, no budget``: ours with the key's rate budget turned off (every request at once, no answer
  recorded): what the budget costs;
- ``ours, try stripped`` and ``client, try stripped``: the same with the client's one try
  (``AsyncNairiClient._exchange``) replaced by the bare request: no key budget, no answer cap, no envelope,
  request-id or shape checks, no log-level check, no watchdog. A diagnostic patch made here, never shipped:
  what is left is the cost of the layers (endpoint table, retry wrapper, ``Waiter``). The patches are made
  in this process only and undone after their rounds.

Last, one round each of ``bare`` and ``ours`` under ``cProfile``: the functions called per poll (Python
functions and built-ins), a count the machine's load does not move, unlike the CPU figures.

It is not the issue's measurement (``bench/triggerer.py`` runs Airflow's own trigger runner); it splits the
gap that one shows. Ends with ``GOAL cpu_per_poll_one_loop`` (ours, at most 1.1x bare).

    .venv/bin/python bench/poll_gap.py [--waits 100] [--interval 0.2] [--seconds 3] [--rounds 7]
"""

# ruff: noqa: PLC0415 - Airflow and the provider load after AIRFLOW_HOME is set.
from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import json
import os
import pstats
import selectors
import statistics
import tempfile
import time
from collections.abc import AsyncIterator
from typing import Any

os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="nairi-bench-gap-"))
os.environ.setdefault("AIRFLOW__LOGGING__LOGGING_LEVEL", "WARNING")  # the waits' lines are not measured

from _common import emulator_process
from triggerer import BareAiohttpTrigger, start_conversations

BARE, OURS, CLIENT = "bare", "ours", "client"
STRIPPED = ", try stripped"
NO_BUDGET = ", no budget"
CONN_ID = "nairi_gap"


class ClientPolls:
    """Our client's calls alone: ``get_conversation`` and a sleep, for ever (cancelled by the round)."""

    def __init__(self, conversation_id: str, interval: float) -> None:
        self.conversation_id, self.interval = conversation_id, interval

    async def run(self) -> AsyncIterator[None]:
        from airflow_provider_nairi.hooks.nairi import NairiAsyncHook

        hook = NairiAsyncHook(CONN_ID)
        client = await hook.get_async_client()
        try:
            while True:
                await client.get_conversation(self.conversation_id)
                await asyncio.sleep(self.interval)
        finally:
            await hook.close()
        yield  # (an async generator, like a trigger's run)


@contextlib.contextmanager
def try_stripped() -> Any:
    """Replace ``AsyncNairiClient._exchange`` with the bare request and ``json.loads`` (diagnostic only)."""
    from airflow_provider_nairi.client import aio
    from airflow_provider_nairi.client.protocol import Envelope, api_url

    async def bare_exchange(self: Any, method: str, path: str, headers: Any, **_: Any) -> Envelope:
        if self._session is None:
            self._session, self._proxy, self._watchdog = aio.SESSIONS.acquire(self.config)
        url = api_url(self.config, path)
        async with self._session.get(url, headers=headers, timeout=self._timeout) as response:
            body = await response.read()
        return Envelope(json.loads(body)["data"], None, None)

    shipped = aio.AsyncNairiClient._exchange
    aio.AsyncNairiClient._exchange = bare_exchange  # type: ignore[method-assign]
    try:
        yield
    finally:
        aio.AsyncNairiClient._exchange = shipped  # type: ignore[method-assign]


@contextlib.contextmanager
def budget_off() -> Any:
    """Every request goes at once and no answer is recorded in the key's budget (diagnostic only)."""
    from airflow_provider_nairi.client.budget import BudgetedClient, RateBudget

    shipped = RateBudget.go_now, BudgetedClient._record_in
    RateBudget.go_now = lambda self, now: True  # type: ignore[method-assign]
    BudgetedClient._record_in = lambda self, *args: None  # type: ignore[method-assign]
    try:
        yield
    finally:
        RateBudget.go_now, BudgetedClient._record_in = shipped  # type: ignore[method-assign]


def waiters(contender: str, shard: dict[str, Any], ids: list[str], interval: float) -> list[Any]:
    from airflow_provider_nairi.triggers.conversation import NairiConversationTrigger

    kind = contender.replace(STRIPPED, "").replace(NO_BUDGET, "")
    if kind == BARE:
        url = f"{shard['base_url']}/conversations/"
        return [BareAiohttpTrigger(url + i, shard["api_key"], interval) for i in ids]
    if kind == CLIENT:
        return [ClientPolls(i, interval) for i in ids]
    deadline = time.time() + 3600
    return [
        NairiConversationTrigger(
            conn_id=CONN_ID, resource_id=i, deadline=deadline, poll_interval=interval, turn=1
        )
        for i in ids
    ]


class LoopIterations:
    """Counts the event loop's iterations (one selector call each): polls that fall due together share one."""

    count = 0
    _select = selectors.DefaultSelector.select

    @classmethod
    def install(cls) -> None:
        def select(selector: Any, timeout: float | None = None) -> Any:
            cls.count += 1
            return cls._select(selector, timeout)

        selectors.DefaultSelector.select = select  # type: ignore[method-assign]


async def one_round(
    contender: str, shard: dict[str, Any], ids: list[str], args: Any, profile: cProfile.Profile | None = None
) -> tuple[float, float]:
    """CPU microseconds per poll of one contender's round, and the loop's iterations per poll (with
    ``profile``: the round's calls are counted by it)."""

    async def consume(waiter: Any) -> None:
        async for _ in waiter.run():
            return

    tasks = [asyncio.create_task(consume(w)) for w in waiters(contender, shard, ids, args.interval)]
    await asyncio.sleep(1.0)  # sessions, connections and the key's budget settled
    polls_before, cpu_before = shard["admin"].counts()["requests_total"], time.process_time()
    iterations_before = LoopIterations.count
    if profile is not None:
        profile.enable()
    await asyncio.sleep(args.seconds)
    if profile is not None:
        profile.disable()
    cpu = time.process_time() - cpu_before
    iterations = LoopIterations.count - iterations_before
    polls = shard["admin"].counts()["requests_total"] - polls_before
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    for session in BareAiohttpTrigger.sessions.values():
        await session.close()
    BareAiohttpTrigger.sessions.clear()
    return cpu / max(1, polls) * 1e6, iterations / max(1, polls)


def run(
    contender: str, shard: dict[str, Any], ids: list[str], args: Any, profile: cProfile.Profile | None = None
) -> tuple[float, float]:
    patches = {STRIPPED: try_stripped, NO_BUDGET: budget_off}
    patch = next((made for suffix, made in patches.items() if contender.endswith(suffix)), None)
    with patch() if patch else contextlib.nullcontext():
        return asyncio.run(one_round(contender, shard, ids, args, profile))


def calls_per_poll(contender: str, shard: dict[str, Any], ids: list[str], args: Any) -> tuple[float, float]:
    """Python functions and built-in functions called per poll in one round under ``cProfile``: a count the
    machine's load does not move (its CPU figure is the profiler's, not used)."""
    profile = cProfile.Profile()
    polls_before = shard["admin"].counts()["requests_total"]
    run(contender, shard, ids, args, profile)
    polls = max(1, shard["admin"].counts()["requests_total"] - polls_before)
    stats = pstats.Stats(profile).stats  # type: ignore[attr-defined]
    python = sum(calls for (file, _, _), (_, calls, *_) in stats.items() if file != "~")
    builtin = sum(calls for (file, _, _), (_, calls, *_) in stats.items() if file == "~")
    return python / polls, builtin / polls


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--waits", type=int, default=100)
    parser.add_argument("--interval", type=float, default=0.2)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    from airflow_provider_nairi.client import ClientConfig, NairiClient
    from airflow_provider_nairi.testing import connection_env_var, connection_json

    contenders = [BARE, OURS, CLIENT, OURS + NO_BUDGET, OURS + STRIPPED, CLIENT + STRIPPED]
    with emulator_process() as shard:
        if len(os.sched_getaffinity(0)) >= 2:
            first, second = sorted(os.sched_getaffinity(0))[:2]
            os.sched_setaffinity(0, {first})
            os.sched_setaffinity(shard["pid"], {second})
        with NairiClient(ClientConfig(api_key=shard["api_key"], base_url=shard["base_url"])) as client:
            shard["agent_id"] = client.create_agent("gap", "wait")["id"]
        ids = start_conversations(shard, args.waits)
        os.environ[connection_env_var(CONN_ID)] = connection_json(shard["base_url"], shard["api_key"])
        cpu: dict[str, list[float]] = {c: [] for c in contenders}
        iterations: dict[str, list[float]] = {c: [] for c in contenders}
        LoopIterations.install()
        for r in range(args.rounds):
            for contender in contenders if r % 2 == 0 else contenders[::-1]:
                us, per_poll = run(contender, shard, ids, args)
                cpu[contender].append(us)
                iterations[contender].append(per_poll)
        counted = {contender: calls_per_poll(contender, shard, ids, args) for contender in (BARE, OURS)}
    bare = statistics.median(cpu[BARE])
    print(
        f"{args.waits} waits polling every {args.interval:g} s, {args.rounds} interleaved rounds of "
        f"{args.seconds:g} s; CPU per poll of this process (median of rounds; the rounds), event-loop "
        "iterations per poll (median):"
    )
    for contender in contenders:
        median = statistics.median(cpu[contender])
        rounds = ", ".join(f"{v:.0f}" for v in cpu[contender])
        loops = statistics.median(iterations[contender])
        print(
            f"  {contender:24s} {median:6.0f} us  {median / bare:5.2f}x bare  {loops:4.2f} it/poll"
            f"  ({rounds})"
        )
    print(
        "  calls per poll (cProfile, one round each; Python functions + built-ins): "
        + "; ".join(f"{c} {py:.0f} + {builtin:.0f}" for c, (py, builtin) in counted.items())
        + f"; ours/bare {sum(counted[OURS]) / sum(counted[BARE]):.2f}"
    )
    ratio = statistics.median(cpu[OURS]) / bare
    print(f"GOAL cpu_per_poll_one_loop {'met' if ratio <= 1.1 else 'missed'} {ratio:.2f} (<= 1.1x bare)")


if __name__ == "__main__":
    main()
