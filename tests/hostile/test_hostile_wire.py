"""Hostile answers on the wire, for both clients: deadlines, size caps, malformed bodies, pagination that
would never end, what the server echoes back, redirects. Each case asserts what a user sees: the error class,
its words, and the time or memory it took."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from hostile_servers import (
    HostileServer,
    answer,
    bomb,
    by_path,
    endless_chunks,
    envelope,
    gzipped,
    raw_answer,
    trickle,
)
from wire_clients import KEY, Sleeps, async_client, sync_client

from airflow_provider_nairi.client import protocol
from airflow_provider_nairi.exceptions import (
    NairiAnswerTooLargeError,
    NairiConnectionError,
    NairiError,
    NairiServerError,
)

pytestmark = pytest.mark.timeout(60)
HERE = Path(__file__).parent


@pytest.fixture(params=["sync", "async"])
def flavour(request):
    return request.param


async def call(flavour, server, method_name, *args, sleeps=None, **extras):
    """``method_name(*args)`` on the sync or the async client of ``server``; returns (result, seconds)."""
    started = time.monotonic()
    if flavour == "sync":
        with sync_client(server, sleeps, **extras) as client:
            result = getattr(client, method_name)(*args)
    else:
        client = async_client(server, sleeps, **extras)
        try:
            result = await getattr(client, method_name)(*args)
        finally:
            await client.close()
    return result, time.monotonic() - started


async def failure(flavour, server, method_name, *args, **extras):
    """The error ``method_name(*args)`` raises, and how long the call took."""
    started = time.monotonic()
    with pytest.raises(NairiError) as info:
        await call(flavour, server, method_name, *args, **extras)
    return info.value, time.monotonic() - started


# -- deadlines -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("script", [trickle(0.05), endless_chunks(0.05)], ids=["trickle", "endless-chunked"])
async def test_a_body_that_never_ends_is_cut_at_request_timeout(flavour, script):
    with HostileServer(script) as server:
        error, took = await failure(
            flavour, server, "get_conversation", "c1", request_timeout=1, read_timeout=5, max_retries=0
        )
    assert isinstance(error, NairiConnectionError) and error.retryable
    assert error.code == "request_timeout"
    assert "no complete answer within request_timeout (1 s)" in str(error)
    assert 0.9 <= took < 1.6, f"the call took {took:.2f} s"  # docs/reliability.md: longest call measured


async def test_every_try_has_its_own_deadline_and_the_retries_stop(flavour):
    sleeps = Sleeps()
    with HostileServer(trickle(0.05)) as server:
        error, took = await failure(
            flavour, server, "get_video", "v1", request_timeout=0.5, max_retries=2, sleeps=sleeps
        )
        tries = len(server.requests)
    assert error.code == "request_timeout"
    assert tries == 3 and len(sleeps) == 2  # retried like any timeout, bounded by max_retries
    assert took < 3 * 0.5 + 0.9


# -- size caps -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("encoding", ["gzip", "deflate"])
async def test_a_compression_bomb_stops_at_max_answer_bytes(flavour, encoding):
    body = bomb(2 << 30, encoding)  # 2 MiB that inflate to 2 GiB
    with HostileServer(answer(200, body, {"Content-Encoding": encoding})) as server:
        error, took = await failure(flavour, server, "get_video", "v1", max_answer_bytes=1 << 20)
    assert isinstance(error, NairiAnswerTooLargeError) and not error.retryable
    assert f"larger than max_answer_bytes ({1 << 20} bytes after {encoding} decoding)" in str(error)
    assert "raise the connection extra max_answer_bytes" in str(error)
    assert took < 2


def test_the_bomb_grows_peak_memory_by_the_cap_not_by_the_bomb():
    """Peak RSS growth of a 2 GiB gzip bomb in a fresh process, both clients (docs/reliability.md)."""
    script = textwrap.dedent(
        """
        import asyncio, json, resource, sys
        sys.path.insert(0, sys.argv[1])
        from hostile_servers import HostileServer, answer, bomb
        from wire_clients import async_client, sync_client
        from airflow_provider_nairi.exceptions import NairiAnswerTooLargeError
        body = bomb(2 << 30)
        growth = {}
        with HostileServer(answer(200, body, {"Content-Encoding": "gzip"})) as server:
            for flavour in ("sync", "async"):
                before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
                try:
                    if flavour == "sync":
                        sync_client(server, max_answer_bytes=8 << 20).get_video("v1")
                    else:
                        async def run():
                            client = async_client(server, max_answer_bytes=8 << 20)
                            try:
                                await client.get_video("v1")
                            finally:
                                await client.close()
                        asyncio.run(run())
                except NairiAnswerTooLargeError:
                    pass
                growth[flavour] = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
        print(json.dumps(growth))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(HERE)], capture_output=True, text=True, timeout=60, check=True
    )
    growth = json.loads(done.stdout.strip().splitlines()[-1])
    print(f"peak RSS growth, 2 GiB gzip bomb, cap 8 MiB: {growth} MiB")
    assert growth["sync"] < 8 + 12 and growth["async"] < 8 + 12, growth  # the cap, plus allocator slack


async def test_a_content_length_over_the_cap_is_refused_before_reading(flavour):
    with HostileServer(answer(200, b"x" * 300_000)) as server:
        error, _ = await failure(flavour, server, "get_video", "v1", max_answer_bytes=100_000)
    assert isinstance(error, NairiAnswerTooLargeError)
    assert "larger than max_answer_bytes (100000 bytes)" in str(error)


async def test_a_chunked_answer_over_the_cap_stops_while_it_arrives(flavour):
    def script(server, request, conn):
        conn.sendall(raw_answer(200, b"", {"Transfer-Encoding": "chunked"}))
        while server.wait(0):
            conn.sendall(b"10000\r\n" + b"x" * 0x10000 + b"\r\n")  # 64 KiB chunks, for ever

    with HostileServer(script) as server:
        error, took = await failure(flavour, server, "get_video", "v1", max_answer_bytes=1 << 20)
    assert isinstance(error, NairiAnswerTooLargeError) and took < 2


# -- malformed answers ---------------------------------------------------------------------------------------


MALFORMED = {
    "nested-too-deep": (b"[" * 200_000 + b"]" * 200_000, {}, "not a Nairi envelope"),
    "invalid-utf8": (b'{"success": true, "data": "\xff\xfe\xfa"}', {}, "not a Nairi envelope"),
    "data-string": (envelope("conv_1"), {}, "answers a JSON object, the server sent a JSON string"),
    "data-list": (envelope([{"id": "c"}]), {}, "answers a JSON object, the server sent a list of 1"),
    "data-null": (envelope(None), {}, "answers a JSON object, the server sent data null"),
    "empty-200": (b"", {}, "answers a JSON object, the server sent data null or an empty body"),
    "corrupt-gzip": (
        b"\x1f\x8b\x08\x00garbage",
        {"Content-Encoding": "gzip"},
        "gzip body of the answer is corrupt",
    ),
    "truncated-gzip": (
        gzipped(envelope({}))[:-12],
        {"Content-Encoding": "gzip"},
        "ends before its compressed",
    ),
    "brotli": (b"\x0b\x02\x80{}\x03", {"Content-Encoding": "br"}, "Content-Encoding 'br'"),
}


@pytest.mark.parametrize("case", MALFORMED)
async def test_malformed_answers_are_typed_and_retried(flavour, case):
    body, headers, words = MALFORMED[case]
    sleeps = Sleeps()
    with HostileServer(answer(200, body, headers)) as server:
        error, _ = await failure(flavour, server, "get_conversation", "c1", sleeps=sleeps, max_retries=2)
        tries = len(server.requests)
    assert type(error) is NairiServerError and error.code == "malformed_answer"
    assert words in str(error) and "GET /conversations/c1" in str(error)
    assert tries == 3  # retried like any malformed answer


async def test_a_204_where_an_object_is_expected_is_malformed(flavour):
    with HostileServer(answer(204)) as server:
        error, _ = await failure(flavour, server, "get_conversation", "c1", max_retries=0)
    assert isinstance(error, NairiServerError)
    assert "answers a JSON object, the server sent no content (204)" in str(error)


async def test_a_list_endpoint_that_answers_an_object_is_malformed(flavour):
    method = "list_messages" if flavour == "async" else "list_agents"
    args = ("c1",) if flavour == "async" else ()

    async def run():
        if flavour == "sync":
            with sync_client(server, max_retries=1) as client:
                return list(client.list_agents())
        return await call(flavour, server, method, *args, max_retries=1)

    with HostileServer(answer(200, envelope({"id": "agt_1"}))) as server:
        with pytest.raises(
            NairiServerError, match="answers a list of objects, the server sent a JSON object"
        ):
            await run()
        assert len(server.requests) == 2


def test_the_sync_delete_still_takes_a_204():
    with HostileServer(answer(204)) as server, sync_client(server) as client:
        assert client.delete_agent("agt_1") is None


# -- pagination ----------------------------------------------------------------------------------------------


def page_script(make_page):
    def script(server, request, conn):
        offset = int(request.query.get("offset", 0))
        data, pagination = make_page(offset)
        conn.sendall(raw_answer(200, envelope(data, pagination=pagination)))
        return True

    return script


async def list_all(flavour, server, **extras):
    if flavour == "sync":
        with sync_client(server, **extras) as client:
            return list(client.list_messages("c1"))
    result, _ = await call(flavour, server, "list_messages", "c1", **extras)
    return result


async def test_a_page_repeated_without_ids_and_has_more_ends_with_what_the_server_did(flavour):
    """Items without ``id``, ``offset`` ignored, ``has_more`` stuck: de-duplication cannot see the loop."""
    stuck = page_script(lambda offset: ([{"text": "same"}] * 3, {"has_more": True}))
    with HostileServer(stuck) as server:
        with pytest.raises(
            NairiServerError, match=r"repeats the previous page for offset 3 .* ignores offset"
        ):
            await list_all(flavour, server)
        assert len(server.requests) == 2


async def test_has_more_stuck_true_ends_at_the_announced_total(flavour):
    endless = page_script(
        lambda offset: ([{"id": f"m{offset + i}"} for i in range(5)], {"has_more": True, "total": 12})
    )
    with HostileServer(endless) as server:
        items = await list_all(flavour, server)
        assert len(server.requests) == 3  # offsets 0, 5, 10: the walk ends once 15 >= total 12
    assert len(items) == 15


async def test_fresh_ids_for_ever_without_total_stop_at_max_pages(flavour, monkeypatch):
    monkeypatch.setattr(protocol, "MAX_PAGES", 20)
    endless = page_script(lambda offset: ([{"id": f"m{offset}"}], {"has_more": True, "total": "lots"}))
    with HostileServer(endless) as server:
        with pytest.raises(NairiServerError) as info:
            await list_all(flavour, server)
        assert len(server.requests) == 20
    assert "still claims more items after 20 pages (20 items, announced total: none)" in str(info.value)
    assert info.value.code == "malformed_pagination"


async def test_a_total_below_what_arrived_ends_the_walk(flavour):
    liar = page_script(
        lambda offset: ([{"id": f"m{offset + i}"} for i in range(4)], {"has_more": True, "total": 2})
    )
    with HostileServer(liar) as server:
        items = await list_all(flavour, server)
        assert len(server.requests) == 1
    assert [item["id"] for item in items] == ["m0", "m1", "m2", "m3"]


# -- what the server echoes ----------------------------------------------------------------------------------


async def test_the_key_never_leaves_through_what_the_server_echoes(flavour, caplog):
    body = json.dumps(
        {
            "success": False,
            "error": {"code": f"bad_{KEY}", "message": f"key {KEY}", "details": [{KEY: f"v{KEY}"}]},
            "meta": {"request_id": f"req_{KEY}"},
        }
    ).encode()
    scripts = {
        "/conversations/c1": answer(400, body, {"X-Request-Id": f"req_{KEY}"}),
        "/videos/v2": answer(502, b"<html>", {"Content-Type": f"text/html; key={KEY}", "X-Request-Id": KEY}),
        "/videos/v1": answer(200, envelope({"id": "v1"}, f"req_{KEY}"), {"X-Request-Id": f"req_{KEY}"}),
    }
    with caplog.at_level(logging.DEBUG), HostileServer(by_path(scripts)) as server:
        refused, _ = await failure(flavour, server, "get_conversation", "c1", max_retries=0)
        proxy_page, _ = await failure(flavour, server, "get_video", "v2", max_retries=0)
        await call(flavour, server, "get_video", "v1")
    assert refused.code == "bad_***" and refused.request_id == "req_***"
    assert refused.details == [{"***": "v***"}] and "key ***" in str(refused)
    assert "text/html; key=***" in str(proxy_page)
    for error in (refused, proxy_page):
        assert KEY not in str(error) + repr(error.__dict__)
    assert KEY not in caplog.text
    assert "(request id req_***)" in caplog.text  # the request id is still logged, redacted


# -- redirects -----------------------------------------------------------------------------------------------


REDIRECTS = {
    "scheme": (
        lambda s: f"https://127.0.0.1:{s.port}/api/public/v1/me",
        "from http to https on the same host",
    ),
    "port": (lambda s: "http://127.0.0.1:1/api/public/v1/me", "to port 1 of the same host"),
    "host": (lambda s: f"http://localhost:{s.port}/api/public/v1/me", "to another host, localhost"),
    "path": (lambda s: "/api/public/v2/me", "redirect to /api/public/v2/me on the same host"),
}


@pytest.mark.parametrize("case", REDIRECTS)
async def test_redirect_refusals_say_what_the_redirect_changes(flavour, case):
    location, words = REDIRECTS[case]

    def script(server, request, conn):
        conn.sendall(raw_answer(302, b"", {"Location": location(server)}))
        return True

    with HostileServer(script) as server:
        error, _ = await failure(flavour, server, "get_video", "v1")
        assert len(server.requests) == 1
    assert error.code == "redirect_refused"
    assert words in str(error)
    assert ("another host" in str(error)) is (case == "host")


async def videos_in_a_row(flavour, server, count):
    """``get_video("v1")`` ``count`` times with one sync or async client of ``server``."""
    if flavour == "sync":
        with sync_client(server) as client:
            return [client.get_video("v1") for _ in range(count)]
    client = async_client(server)
    try:
        return [await client.get_video("v1") for _ in range(count)]
    finally:
        await client.close()


@pytest.mark.parametrize("encoding", ["identity", "gzip"])
async def test_reading_answers_under_the_cap_keeps_the_connection_alive(flavour, encoding):
    body = gzipped(envelope({"id": "v1"})) if encoding == "gzip" else envelope({"id": "v1"})
    with HostileServer(answer(200, body, {"Content-Encoding": encoding})) as server:
        results = await videos_in_a_row(flavour, server, 5)
        connections = server.connections
    assert results == [{"id": "v1"}] * 5 and connections == 1


async def test_a_cookie_the_server_sets_never_rides_along_with_a_later_request(flavour):
    # The async clients of a triggerer share one session for every connection: a cookie one host set must
    # not be sent again, to it or to another connection's host. Neither client keeps cookies at all.
    body = envelope({"id": "v1"})
    cookie = {"Set-Cookie": "session=abc123; Path=/"}
    with HostileServer(answer(200, body, cookie)) as server:
        results = await videos_in_a_row(flavour, server, 3)
        sent = [request.headers.get("cookie") for request in server.requests]
    assert results == [{"id": "v1"}] * 3
    assert sent == [None, None, None]
