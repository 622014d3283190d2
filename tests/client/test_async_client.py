"""The async client over loopback HTTP: same headers, errors, retries and redirect refusal as the sync one.

aioresponses 0.7.9 cannot build responses for aiohttp 3.14 (``ClientResponse`` wants ``stream_writer``), so
these tests script a real aiohttp server on 127.0.0.1 instead: every request is recorded as it arrived.
"""

from __future__ import annotations

import asyncio
import collections
import json
import logging

import pytest
from aiohttp import web
from client_helpers import KEY, envelope, error_body, page

from airflow_provider_nairi.client import ClientConfig
from airflow_provider_nairi.client.aio import SESSIONS, AsyncNairiClient
from airflow_provider_nairi.exceptions import (
    NairiConnectionError,
    NairiError,
    NairiNotFoundError,
    NairiRateLimitError,
    NairiServerError,
)

PREFIX = "/api/public/v1"


class ScriptedServer:
    """Answers each path from a queue of scripted answers (the last one repeats) and records every request."""

    def __init__(self) -> None:
        self.script: dict[str, list[dict]] = collections.defaultdict(list)
        self.requests: list[web.Request] = []
        self.base_url = ""

    def on(self, path: str, *answers: dict) -> None:
        self.script[PREFIX + path].extend(answers)

    def sent(self, path: str) -> list[web.Request]:
        return [r for r in self.requests if r.path == PREFIX + path]

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.requests.append(request)
        queue = self.script[request.path]
        answer = queue.pop(0) if len(queue) > 1 else queue[0]
        if answer.get("reset"):
            request.transport.close()
            raise asyncio.CancelledError
        if "delay" in answer:
            await asyncio.sleep(answer["delay"])
        body = answer.get("body")
        if body is None:
            body = json.dumps(answer.get("json", envelope(None)))
        return web.Response(
            status=answer.get("status", 200),
            text=body,
            content_type=answer.get("content_type", "application/json"),
            headers=answer.get("headers"),
        )


@pytest.fixture
async def server():
    scripted = ScriptedServer()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", scripted.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    scripted.base_url = f"http://127.0.0.1:{port}{PREFIX}"
    yield scripted
    await runner.cleanup()


@pytest.fixture
def config(server):
    return ClientConfig(
        api_key=KEY,
        base_url=server.base_url,
        max_retries=3,
        retry_max_wait=30,
        retry_total_timeout=120,
        read_timeout=0.2,
    )


class AsyncSleeps(list):
    async def __call__(self, seconds: float) -> None:
        self.append(seconds)


@pytest.fixture
def sleeps():
    return AsyncSleeps()


@pytest.fixture
async def client(config, sleeps):
    nairi = AsyncNairiClient(config, sleep=sleeps)
    yield nairi
    await nairi.close()


async def test_get_conversation_headers(client, server):
    server.on("/conversations/conv_1", {"json": envelope({"id": "conv_1", "status": "running"})})
    assert await client.get_conversation("conv_1") == {"id": "conv_1", "status": "running"}
    (request,) = server.sent("/conversations/conv_1")
    assert request.headers["X-API-Key"] == KEY
    assert request.headers["User-Agent"].startswith("airflow-provider-nairi/")
    assert "Idempotency-Key" not in request.headers


async def test_cancel_retries_with_one_idempotency_key(client, server, sleeps):
    server.on(
        "/conversations/conv_1/cancel",
        {"status": 503, "json": error_body(503, "service_unavailable")},
        {"reset": True},
        {"json": envelope({"id": "conv_1", "status": "cancelled"})},
    )
    assert (await client.cancel_conversation("conv_1"))["status"] == "cancelled"
    requests = server.sent("/conversations/conv_1/cancel")
    assert len(requests) == 3
    assert len({r.headers["Idempotency-Key"] for r in requests}) == 1
    assert len(sleeps) == 2


async def test_retry_after_is_honoured(client, server, sleeps):
    server.on(
        "/videos/vid_1",
        {"status": 429, "json": error_body(429, "rate_limited"), "headers": {"Retry-After": "4"}},
        {"json": envelope({"id": "vid_1", "status": "ready"})},
    )
    assert (await client.get_video("vid_1"))["status"] == "ready"
    assert sleeps == [4.0]


async def test_retry_after_over_the_limit_raises_at_once(client, server, sleeps):
    server.on(
        "/videos/vid_1", {"status": 429, "json": error_body(429, "x"), "headers": {"Retry-After": "600"}}
    )
    with pytest.raises(NairiRateLimitError):
        await client.get_video("vid_1")
    assert sleeps == []
    assert len(server.requests) == 1


async def test_not_found_is_not_retried(client, server, sleeps):
    server.on("/conversations/conv_x", {"status": 404, "json": error_body(404, "not_found")})
    with pytest.raises(NairiNotFoundError) as info:
        await client.get_conversation("conv_x")
    assert str(info.value).startswith("GET /conversations/conv_x: 404 not_found")
    assert str(info.value).endswith("(request id req_404)")
    assert sleeps == []


async def test_html_502_is_a_server_error_after_bounded_retries(client, server, sleeps):
    server.on(
        "/conversations/conv_1",
        {"status": 502, "body": "<html>Bad Gateway</html>", "content_type": "text/html"},
    )
    with pytest.raises(NairiServerError):
        await client.get_conversation("conv_1")
    assert len(server.requests) == 4
    assert len(sleeps) == 3


async def test_read_timeouts_become_connection_errors(client, server):
    server.on("/conversations/conv_1", {"delay": 0.5, "json": envelope({})})
    with pytest.raises(NairiConnectionError) as info:
        await client.get_conversation("conv_1")
    assert info.value.retryable
    assert len(server.requests) == 4


async def test_cross_host_redirect_is_refused(client, server):
    server.on("/conversations/conv_1", {"status": 307, "headers": {"Location": "http://other.example/x"}})
    with pytest.raises(NairiError) as info:
        await client.get_conversation("conv_1")
    assert info.value.code == "redirect_refused"
    assert "other.example" in str(info.value)
    assert len(server.requests) == 1


async def test_list_messages_reads_every_page(client, server):
    server.on(
        "/conversations/conv_1/messages",
        {"json": page([{"id": f"msg_{i}"} for i in range(200)], True)},
        {"json": page([{"id": "msg_200"}], False)},
    )
    messages = await client.list_messages("conv_1")
    assert [m["id"] for m in messages] == [f"msg_{i}" for i in range(201)]
    assert [r.query.get("offset") for r in server.requests] == ["0", "200"]


async def test_key_never_logged(client, server, caplog):
    server.on("/conversations/conv_1", {"status": 401, "json": error_body(401, "unauthorized", f"bad {KEY}")})
    with caplog.at_level(logging.DEBUG), pytest.raises(NairiError) as info:
        await client.get_conversation("conv_1")
    assert "GET /conversations/conv_1 -> 401" in caplog.text
    assert KEY not in caplog.text
    assert KEY not in str(info.value)


async def test_one_session_per_loop_closed_by_the_last_client(config, server):
    server.on("/videos/vid_1", {"json": envelope({"id": "vid_1"})})
    first, second = AsyncNairiClient(config), AsyncNairiClient(config)
    await first.get_video("vid_1")
    await second.get_video("vid_1")
    session = first._session
    assert second._session is session
    await first.close()
    assert not session.closed
    await second.close()
    assert session.closed
    assert asyncio.get_running_loop() not in SESSIONS._sessions


async def test_bearer_header(config, server):
    server.on("/videos/vid_1", {"json": envelope({"id": "vid_1"})})
    async with AsyncNairiClient(ClientConfig(**{**config.__dict__, "auth_header": "bearer"})) as nairi:
        await nairi.get_video("vid_1")
    assert server.requests[0].headers["Authorization"] == f"Bearer {KEY}"
    assert "X-API-Key" not in server.requests[0].headers


REMOTE = "http://api.nairi.test" + PREFIX  # never resolved: only a proxy can carry a request there
DEAD_PROXY = "http://127.0.0.1:9"  # nothing listens: a request sent through it fails


@pytest.fixture
def proxy_environment(monkeypatch):
    """A clean proxy environment; returns a setter (lower-case names win over upper-case ones in urllib)."""
    for name in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "no_proxy", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch.setenv


def origin_of(server: ScriptedServer) -> str:
    return server.base_url.removesuffix(PREFIX)


async def test_the_environment_proxy_carries_the_request(server, proxy_environment):
    proxy_environment("http_proxy", origin_of(server))  # the scripted server plays the proxy
    server.on("/videos/vid_1", {"json": envelope({"id": "vid_1"})})
    config = ClientConfig(api_key=KEY, base_url=REMOTE, allow_insecure_http=True, max_retries=0)
    async with AsyncNairiClient(config) as nairi:
        assert await nairi.get_video("vid_1") == {"id": "vid_1"}
    (request,) = server.sent("/videos/vid_1")
    assert request.host == "api.nairi.test"  # asked of the proxy in absolute form


async def test_the_connection_proxy_wins_over_the_environment(server, proxy_environment):
    proxy_environment("http_proxy", DEAD_PROXY)
    server.on("/videos/vid_1", {"json": envelope({"id": "vid_1"})})
    config = ClientConfig(
        api_key=KEY, base_url=REMOTE, allow_insecure_http=True, proxies={"http": origin_of(server)}
    )
    async with AsyncNairiClient(config) as nairi:
        assert await nairi.get_video("vid_1") == {"id": "vid_1"}
    assert server.sent("/videos/vid_1")[0].host == "api.nairi.test"


async def test_no_proxy_sends_the_request_directly(server, proxy_environment):
    proxy_environment("http_proxy", DEAD_PROXY)
    server.on("/videos/vid_1", {"json": envelope({"id": "vid_1"})})
    direct = ClientConfig(api_key=KEY, base_url=server.base_url, max_retries=0)
    async with AsyncNairiClient(direct) as nairi:
        with pytest.raises(NairiConnectionError):  # through the dead proxy
            await nairi.get_video("vid_1")
    proxy_environment("no_proxy", "127.0.0.1")  # read again by the next loop-wide session
    async with AsyncNairiClient(direct) as nairi:
        assert await nairi.get_video("vid_1") == {"id": "vid_1"}


def test_clients_share_aiohttp_timeouts_only_when_their_settings_are_the_same():
    """One ``ClientTimeout`` per settings (a triggerer holds one client per waiting trigger): a client gets
    its own connection's connect timeout, whatever other clients of the process use. aiohttp keeps only that
    one: the try's ``request_timeout`` and ``read_timeout`` are the loop's watchdog's (test_try_watchdog)."""
    base = {"api_key": KEY, "base_url": "https://api.example.com/api/public/v1"}
    first = AsyncNairiClient(ClientConfig(**base))
    same = AsyncNairiClient(ClientConfig(**base, max_retries=0))
    slower = AsyncNairiClient(ClientConfig(**base, read_timeout=5, request_timeout=9, connect_timeout=2))
    assert first._timeout is same._timeout
    assert (slower._timeout.total, slower._timeout.sock_read, slower._timeout.sock_connect) == (None, None, 2)
    assert (first._timeout.total, first._timeout.sock_read, first._timeout.sock_connect) == (None, None, 10)
