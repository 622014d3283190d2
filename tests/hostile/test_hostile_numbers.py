"""Numbers from the server and from the connection: finite, in range, clamped; never a crash, never a wait
for ever, never a 200 turned into an error."""

from __future__ import annotations

import time
from email.utils import formatdate

import pytest
from hostile_servers import HostileServer, answer, envelope, raw_answer
from wire_clients import KEY, Sleeps, async_client, sync_client

from airflow_provider_nairi.client.config import ClientConfig
from airflow_provider_nairi.client.protocol import MAX_SERVER_WAIT
from airflow_provider_nairi.exceptions import NairiConfigurationError, NairiRateLimitError

pytestmark = pytest.mark.timeout(30)

GARBAGE = ["nan", "inf", "-inf", "-1", "1e400", "1e300", "12abc", "", "0x10"]


@pytest.fixture(params=["sync", "async"])
def flavour(request):
    return request.param


async def get_video_twice(flavour, server, sleeps, **extras):
    """Two calls on one client (the second one sees the first one's rate limit); returns its rate_limit."""
    if flavour == "sync":
        with sync_client(server, sleeps, **extras) as client:
            assert client.get_video("v1") == {"id": "v1"}
            assert client.get_video("v1") == {"id": "v1"}
            return client.rate_limit
    client = async_client(server, sleeps, **extras)
    try:
        assert await client.get_video("v1") == {"id": "v1"}
        assert await client.get_video("v1") == {"id": "v1"}
        return client.rate_limit
    finally:
        await client.close()


@pytest.mark.parametrize("value", GARBAGE)
async def test_garbage_rate_limit_headers_neither_crash_nor_wait(flavour, value):
    headers = {"X-RateLimit-Limit": value, "X-RateLimit-Remaining": value, "X-RateLimit-Reset": value}
    sleeps = Sleeps()
    with HostileServer(answer(200, envelope({"id": "v1"}), headers)) as server:
        rate_limit = await get_video_twice(flavour, server, sleeps)
    assert sleeps == []
    if rate_limit is not None:  # "-1", "1e400"...: unreadable, counted as absent; what is kept is finite
        for number in (rate_limit.limit, rate_limit.remaining, rate_limit.reset):
            assert number is None or 0 <= number <= 2**53


async def test_a_used_up_window_that_resets_far_away_is_clamped_not_slept(flavour):
    headers = {"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": str(time.time() + 1e12)}
    sleeps = Sleeps()
    with HostileServer(answer(200, envelope({"id": "v1"}), headers)) as server:
        client = sync_client(server, sleeps) if flavour == "sync" else async_client(server, sleeps)
        try:
            first = client.get_video("v1") if flavour == "sync" else await client.get_video("v1")
            assert first == {"id": "v1"}  # the 200 itself stays a success
            with pytest.raises(NairiRateLimitError) as info:
                client.get_video("v1") if flavour == "sync" else await client.get_video("v1")
        finally:
            client.close() if flavour == "sync" else await client.close()
    assert info.value.retry_after == MAX_SERVER_WAIT and sleeps == []
    assert "resets in 3600 s, longer than retry_max_wait (60 s)" in str(info.value)


def rate_limited_then_ok(retry_after):
    def script(server, request, conn):
        if len(server.requests) == 1:
            conn.sendall(raw_answer(429, b'{"success": false}', {"Retry-After": retry_after}))
        else:
            conn.sendall(raw_answer(200, envelope({"id": "v1"})))
        return True

    return script


@pytest.mark.parametrize("value", ["nan", "-5", "garbage", "", "-inf"])
async def test_an_unreadable_retry_after_backs_off_as_if_absent(flavour, value):
    sleeps = Sleeps()
    with HostileServer(rate_limited_then_ok(value)) as server:
        await get_video_twice(flavour, server, sleeps)
    assert len(sleeps) == 1 and 0 <= sleeps[0] <= 0.5  # the first backoff step, not the header


@pytest.mark.parametrize(
    "value", ["inf", "1e30", "1e400", formatdate(time.time() + 10 * 365 * 86400, usegmt=True)]
)
async def test_an_enormous_retry_after_is_clamped_and_fails_at_once(flavour, value):
    sleeps = Sleeps()
    with HostileServer(rate_limited_then_ok(value)) as server, pytest.raises(NairiRateLimitError) as info:
        await get_video_twice(flavour, server, sleeps)
    assert info.value.retry_after == MAX_SERVER_WAIT and sleeps == []
    assert "(Retry-After: 3600 s)" in str(info.value)


@pytest.mark.parametrize(
    ("extra", "value", "words"),
    [
        ("connect_timeout", "nan", "a finite number"),
        ("connect_timeout", 0, "a number > 0"),
        ("read_timeout", float("inf"), "a finite number"),
        ("read_timeout", -1, "a number > 0"),
        ("request_timeout", "0", "a number > 0"),
        ("request_timeout", "-inf", "a finite number"),
        ("retry_max_wait", "nan", "a finite number"),
        ("retry_total_timeout", "inf", "a finite number"),
        ("max_retries", "inf", "an integer"),
        ("max_retries", float("inf"), "an integer"),
        ("max_answer_bytes", 0, "a number > 0"),
        ("max_answer_bytes", "1e400", "an integer"),
    ],
)
def test_connection_extras_refuse_meaningless_numbers_naming_the_extra(extra, value, words):
    with pytest.raises(NairiConfigurationError) as info:
        ClientConfig.from_connection(host=None, password=KEY, extras={extra: value})
    assert f"Connection extra {extra!r} is {value!r}; expected {words}" in str(info.value)
