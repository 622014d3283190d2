"""The async client's time limits, kept by one watchdog timer per event loop (``client/watchdog.py``): a
stalled answer still fails at ``read_timeout``, a trickling one at ``request_timeout`` (its bytes keep the
read limit away), a cancelled trigger stays cancelled, and polling arms no timer per try."""

from __future__ import annotations

import asyncio
import time

import pytest
from hostile_servers import HostileServer, answer, envelope, hang, trickle
from wire_clients import async_client, sync_client

from airflow_provider_nairi.client.watchdog import TryWatchdog
from airflow_provider_nairi.exceptions import NairiConnectionError

pytestmark = pytest.mark.timeout(60)


async def test_an_answer_that_never_starts_fails_at_read_timeout():
    with HostileServer(hang) as server:
        client = async_client(server, read_timeout=0.3, request_timeout=5, max_retries=0)
        started = time.monotonic()
        try:
            with pytest.raises(NairiConnectionError) as info:
                await client.get_conversation("c1")
        finally:
            await client.close()
    took = time.monotonic() - started
    assert info.value.code == "connection_error" and info.value.retryable
    assert "no bytes of the answer within read_timeout (0.3 s)" in str(info.value)
    assert 0.29 <= took < 1.2, f"the call took {took:.2f} s"


@pytest.mark.parametrize("flavour", ["sync", "async"])
async def test_bytes_that_keep_coming_hold_off_read_timeout_until_request_timeout(flavour):
    """One byte every 0.05 s: no wait for bytes reaches read_timeout (0.3 s); the try ends at its
    request_timeout (1 s), the same on a worker and in the triggerer."""
    extras = {"read_timeout": 0.3, "request_timeout": 1, "max_retries": 0}
    with HostileServer(trickle(0.05)) as server:
        started = time.monotonic()
        with pytest.raises(NairiConnectionError) as info:
            if flavour == "sync":
                with sync_client(server, **extras) as client:
                    client.get_conversation("c1")
            else:
                client = async_client(server, **extras)
                try:
                    await client.get_conversation("c1")
                finally:
                    await client.close()
    took = time.monotonic() - started
    assert info.value.code == "request_timeout"
    assert 0.9 <= took < 1.6, f"the call took {took:.2f} s"


async def test_a_cancelled_wait_is_cancelled_not_a_timeout():
    """A trigger killed mid-request (its task cancelled) ends cancelled, even when the cancellation comes as
    the try reaches its read limit."""
    with HostileServer(hang) as server:
        client = async_client(server, read_timeout=0.2, request_timeout=5, max_retries=0)
        try:
            task = asyncio.create_task(client.get_conversation("c1"))
            await asyncio.sleep(0.19)  # the read limit falls due within a few milliseconds
            task.cancel()
            await asyncio.sleep(0.05)
            assert task.cancelled()
        finally:
            await client.close()


async def test_the_watchdog_gives_way_to_a_cancellation_that_is_not_its_own():
    loop = asyncio.get_running_loop()
    watchdog = TryWatchdog(loop)
    seen: list[object] = []

    async def one_try() -> None:
        watch = watchdog.start(read_timeout=0, total=10)  # due at once: the timer fires next
        try:
            await asyncio.sleep(5)
        except asyncio.CancelledError:
            seen.append(watchdog.expired(watch))
            raise
        finally:
            watchdog.stop(watch)

    task = asyncio.create_task(one_try())
    await asyncio.sleep(0)  # the try starts and waits
    task.cancel()  # a kill in the same instant as the limit
    with pytest.raises(asyncio.CancelledError):
        await task
    assert seen == [None]


async def test_the_watchdogs_own_cancellation_becomes_the_limit_and_is_taken_back():
    watchdog = TryWatchdog(asyncio.get_running_loop())

    async def one_try() -> object:
        watch = watchdog.start(read_timeout=0.05, total=10)
        try:
            await asyncio.sleep(5)
        except asyncio.CancelledError:
            return watchdog.expired(watch)
        finally:
            watchdog.stop(watch)
        return "not stopped"

    task = asyncio.create_task(one_try())
    assert await task == "read_timeout"
    assert task.cancelling() == 0  # taken back: the task goes on as if never cancelled


async def test_polling_arms_no_timer_per_try(monkeypatch):
    """50 polls in a row: the loop's watchdog arms its timer about once per read_timeout, where aiohttp's own
    timeouts armed three per poll (the try's total and the read timer, re-armed at the answer)."""
    loop = asyncio.get_running_loop()
    armed: list[float] = []
    call_at = loop.call_at

    def counting_call_at(when, callback, *args, **kwargs):
        armed.append(when)
        return call_at(when, callback, *args, **kwargs)

    body = envelope({"id": "c1", "status": "running"})
    with HostileServer(answer(200, body, {"Content-Type": "application/json"})) as server:
        client = async_client(server, read_timeout=60, max_retries=0)
        try:
            await client.get_conversation("c1")  # the session and its pool, opened once
            monkeypatch.setattr(loop, "call_at", counting_call_at)
            for _ in range(50):
                assert (await client.get_conversation("c1"))["status"] == "running"
        finally:
            monkeypatch.undo()
            await client.close()
    assert len(armed) <= 2, f"{len(armed)} timers for 50 polls"
