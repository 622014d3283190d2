"""The asynchronous Nairi client, for triggers: aiohttp, one ``ClientSession`` per event loop.

A triggerer runs hundreds of waits in one event loop, so every :class:`AsyncNairiClient` of a loop shares one
session (and its connection pool); the key, timeouts, TLS and proxy settings travel with each request, so
clients of different connections share it safely. The session is closed when the last client of its loop calls
:meth:`AsyncNairiClient.close`. Its pool holds at most :data:`CONNECTOR_LIMIT` connections, at most
:data:`CONNECTOR_LIMIT_PER_HOST` to one host (and port), so waits stuck on one hung host leave room for the
others; the wait for a pooled connection counts against each try's ``request_timeout``, like the rest of the
try. A try's ``request_timeout`` and ``read_timeout`` are kept by one timer per event loop
(:mod:`~airflow_provider_nairi.client.watchdog`), not by aiohttp's timers per try.

Whether a request goes through a proxy is decided by requests' own code (connection ``proxies``, then
``HTTPS_PROXY`` / ``HTTP_PROXY`` / ``ALL_PROXY`` unless ``NO_PROXY`` covers the host, in every form requests
reads: names, suffixes, ports, ``*``, IP addresses, CIDR ranges): a worker and a triggerer decide alike.

Retries, the retry decision, ``Retry-After``, the envelope and the errors are those of the sync client
(:mod:`airflow_provider_nairi.client.protocol`); redirects are refused the same way.

Imports no Airflow. Import it lazily (inside a trigger's ``run``): aiohttp costs about 300 ms to import.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import ssl
import time
import weakref
from collections.abc import Mapping
from typing import Any

import aiohttp
from requests.utils import get_environ_proxies, select_proxy

from airflow_provider_nairi.client.api import AsyncNairiApi
from airflow_provider_nairi.client.budget import SHORTEST_WAIT, BudgetedClient, RateBudget, RateBudgets
from airflow_provider_nairi.client.config import ClientConfig
from airflow_provider_nairi.client.protocol import (
    DEFAULT_PAGE_SIZE,
    AnswerBody,
    Envelope,
    PageCursor,
    RateLimit,
    Shape,
    api_url,
    aretry_after,
    deadline_error,
    log_answer,
    parse_response,
    rate_limit_wait,
    request_headers,
    transport_error,
)
from airflow_provider_nairi.client.watchdog import Limit, TryWatchdog, Watch
from airflow_provider_nairi.exceptions import NairiConnectionError, NairiError

#: Connections the loop's shared session keeps open at most, in all and to one host (scheme, host, port). A
#: triggerer's polls are short and spread over their intervals, so 100 per host carries hundreds of waits;
#: a hung host holds at most its own 100 (each freed at its try's ``request_timeout``) and the rest of the
#: pool stays free for the other hosts.
CONNECTOR_LIMIT = 500
CONNECTOR_LIMIT_PER_HOST = 100


def proxy_for(base_url: str, proxies: Mapping[str, str] | None) -> str | None:
    """The proxy a request to ``base_url`` goes through, or None for a direct connection: requests' own
    decision for the sync client (``Session.merge_environment_settings`` and the adapter's ``select_proxy``:
    the connection's ``proxies`` first, then the environment's unless ``NO_PROXY`` covers the host)."""
    chosen = dict(proxies or {})
    for scheme, proxy in get_environ_proxies(base_url, no_proxy=chosen.get("no_proxy")).items():
        chosen.setdefault(scheme, proxy)
    return select_proxy(base_url, chosen)


class _LoopShare:
    """What the clients of one event loop share: the session, how many clients hold it, and the proxy of
    each connection (decided once while the session lives: reading the environment costs about 0.1 ms, more
    than a poll's own work)."""

    def __init__(self) -> None:
        # auto_decompress off: AnswerBody decodes gzip/deflate itself, bounded by max_answer_bytes. No
        # cookies: the API uses none, and the session serves every connection of the loop, so a cookie one
        # host set must not ride along with another connection's requests (the jar's look-up on every request
        # and answer also cost 7 to 15 us per poll).
        self.session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=CONNECTOR_LIMIT, limit_per_host=CONNECTOR_LIMIT_PER_HOST),
            auto_decompress=False,
            cookie_jar=aiohttp.DummyCookieJar(),
        )
        self.users = 0
        self.watchdog = TryWatchdog(asyncio.get_running_loop())
        self._proxies: dict[tuple[str, tuple[tuple[str, str], ...]], str | None] = {}

    def proxy_for(self, config: ClientConfig) -> str | None:
        """:func:`proxy_for` of the connection, decided once per session. (aiohttp's own ``trust_env`` is
        left off: it would also read ``.netrc`` in a thread on every request.)"""
        key = (config.base_url, tuple(sorted((config.proxies or {}).items())))
        if key not in self._proxies:
            self._proxies[key] = proxy_for(config.base_url, config.proxies)
        return self._proxies[key]


class _LoopSessions:
    """One :class:`_LoopShare` per running event loop, counted by the clients that use it."""

    def __init__(self) -> None:
        self._sessions: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _LoopShare] = (
            weakref.WeakKeyDictionary()
        )

    def acquire(self, config: ClientConfig) -> tuple[aiohttp.ClientSession, str | None, TryWatchdog]:
        """The loop's session (opened if needed), the proxy ``config`` uses through it, and the loop's
        :class:`~airflow_provider_nairi.client.watchdog.TryWatchdog`."""
        loop = asyncio.get_running_loop()
        share = self._sessions.get(loop)
        if share is None or share.session.closed:
            share = self._sessions[loop] = _LoopShare()
        share.users += 1
        return share.session, share.proxy_for(config), share.watchdog

    async def release(self, session: aiohttp.ClientSession) -> None:
        loop = asyncio.get_running_loop()
        share = self._sessions.get(loop)
        if share is None or share.session is not session:
            return
        share.users -= 1
        if share.users <= 0:
            del self._sessions[loop]
            await session.close()


SESSIONS = _LoopSessions()


class _LoopBudgets:
    """The rate budgets of each running event loop, one per key (every trigger of a triggerer on that key
    shares it), and per loop the event that wakes clients waiting for a probe's answer."""

    def __init__(self) -> None:
        self._loops: weakref.WeakKeyDictionary[
            asyncio.AbstractEventLoop, tuple[RateBudgets, asyncio.Event]
        ] = weakref.WeakKeyDictionary()

    def for_config(self, config: ClientConfig) -> tuple[RateBudget, asyncio.Event]:
        loop = asyncio.get_running_loop()
        if loop not in self._loops:
            self._loops[loop] = (RateBudgets(), asyncio.Event())
        budgets, answered = self._loops[loop]
        return budgets.for_key(config.base_url, config.api_key), answered


BUDGETS = _LoopBudgets()


@functools.lru_cache(maxsize=16)
def _client_timeout(connect: float) -> aiohttp.ClientTimeout:
    """aiohttp's timeout of one try: connecting only (a timer only when a new connection is opened). The
    try's ``request_timeout`` and ``read_timeout`` are the loop's :class:`TryWatchdog`'s. One object per
    setting, shared by the clients (a triggerer holds one client per waiting trigger)."""
    return aiohttp.ClientTimeout(total=None, sock_connect=connect)


@functools.lru_cache(maxsize=16)
def _ca_bundle_context(path: str) -> ssl.SSLContext:
    if os.path.isdir(path):
        return ssl.create_default_context(capath=path)
    return ssl.create_default_context(cafile=path)


def _ssl_setting(verify: bool | str) -> bool | ssl.SSLContext:
    """aiohttp's ``ssl=`` for the connection's ``verify``. ``True`` takes ``REQUESTS_CA_BUNDLE``, then
    ``CURL_CA_BUNDLE``, from the environment when set (a file or a directory of CAs), as requests does for the
    sync client: a worker and a triggerer trust the same CAs."""
    if verify is True:
        verify = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or True
    if isinstance(verify, str):
        return _ca_bundle_context(verify)
    return bool(verify)


def _limit_error(config: ClientConfig, limit: Limit, *, method: str, path: str) -> NairiConnectionError:
    """The retryable error of a try the loop's watchdog stopped at ``limit``: the deadline error of
    ``request_timeout``, or a connection error for an answer with no bytes within ``read_timeout``."""
    if limit == "request_timeout":
        return deadline_error(config, method=method, path=path)
    stalled = TimeoutError(f"no bytes of the answer within read_timeout ({config.read_timeout:g} s)")
    return transport_error(config, stalled, method=method, path=path)


class AsyncNairiClient(BudgetedClient, AsyncNairiApi):
    """Every endpoint, awaited (:class:`~airflow_provider_nairi.client.api.AsyncNairiApi`: the table the
    sync client reads too), over aiohttp. Use one per trigger and close it in ``finally``.

    Every client of one key in an event loop shares its rate budget (:mod:`.budget`): requests are spaced
    by the ``X-RateLimit-*`` headers, and a 429 or a used-up window holds them all until ``Retry-After`` or
    the reset (a longer hold than ``retry_max_wait`` fails at once with NairiRateLimitError)."""

    def __init__(self, config: ClientConfig, *, sleep: Any = asyncio.sleep) -> None:
        self.config = config
        self._sleep = sleep
        self._session: aiohttp.ClientSession | None = None
        self._rate_limit: RateLimit | None = None
        self._timeout = _client_timeout(config.connect_timeout)
        self._ssl = _ssl_setting(config.verify)
        self._proxy: str | None = None
        self._watchdog: TryWatchdog | None = None  # the loop's, acquired with the session
        self._read_headers = request_headers(config, "GET", None)  # the same for every read: built once
        self._url = ("", "")  # (path, URL) of the latest request
        self._budget: RateBudget | None = None  # the key's, shared by the loop's clients of that key
        self._answered: asyncio.Event | None = None  # set by a probe's answer (the loop's, shared)
        self._waited_until = 0.0  # the end of the pause this client's own 429 caused (its retry waits it out)
        #: ``(method, path, request id)`` of the latest answer read, for errors about what it held.
        self.last_answer: tuple[str, str, str | None] | None = None

    @property
    def rate_limit(self) -> RateLimit | None:
        """``RateLimit(limit, remaining, reset)`` from the latest answer's ``X-RateLimit-*`` headers; None
        before the first call.
        """
        return self._rate_limit

    async def close(self) -> None:
        """Give back the loop's shared aiohttp session (closed when its last client closes). Safe to call
        twice.
        """
        if self._session is not None:
            session, self._session = self._session, None
            await SESSIONS.release(session)

    async def __aenter__(self) -> AsyncNairiClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def paginate(
        self, path: str, params: Mapping[str, Any] | None = None, page_size: int = DEFAULT_PAGE_SIZE
    ) -> list[dict[str, Any]]:
        """Every item of a list endpoint, oldest first, as a list (all pages read before returning,
        de-duplicated by ``id``); each page retried like any call."""
        cursor = PageCursor(params, page_size)
        items: list[dict[str, Any]] = []
        while not cursor.done:
            envelope = await self.request_envelope("GET", path, params=cursor.params(), expect="list")
            items += cursor.accept(envelope, method="GET", path=path)
        return items

    async def request_envelope(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        idempotency_key: str | None = None,
        expect: Shape | None = None,
    ) -> Envelope:
        """Send one call and return its :class:`Envelope` (``request`` returns its ``data``).

        Retried on 429, 5xx, connection errors, timeouts and malformed answers like the sync client
        (``docs/errors-and-retries.md``), with non-blocking waits. A POST carries an Idempotency-Key
        (``idempotency_key`` or a fresh uuid4) reused by all its retries; other methods carry none. Errors
        are ``NairiError`` subclasses. ``expect``: the shape ``data`` must have (``"object"`` or
        ``"list"``), as in the sync client.
        """
        headers = (
            self._read_headers if method == "GET" else request_headers(self.config, method, idempotency_key)
        )
        try:
            envelope = await self._exchange(method, path, headers, params=params, json=json, expect=expect)
        except NairiError as failure:
            # a partial, not a lambda: a lambda's captured names would cost a cell each on every call, and
            # the triggerer's garbage collector runs by the objects its polls hold in flight
            retry = functools.partial(
                self._exchange, method, path, headers, params=params, json=json, expect=expect
            )
            envelope = await aretry_after(self.config, failure, retry, self._sleep)
        self.last_answer = (method, path, envelope.request_id)
        return envelope

    async def _take_turn(self, budget: RateBudget, answered: asyncio.Event) -> bool:
        """Wait for this request's slot in the key's budget (and any pause recorded meanwhile); return
        whether it probes the key (its answer wakes the clients waiting for the first one)."""
        while (ticket := budget.reserve(now := max(time.time(), self._waited_until))) is None:
            with contextlib.suppress(asyncio.TimeoutError):  # a first request is learning the key's limit
                await asyncio.wait_for(answered.wait(), budget.probe_wait(time.time()))
        self._waited_until = 0.0
        budget.check_pause(now, self.config.retry_max_wait)
        while (wait := budget.due(ticket) - now) > SHORTEST_WAIT:
            await self._sleep(wait)
            now = max(time.time(), now + wait)  # (a test's recorded sleep takes no time)
        return ticket.number is None

    async def _stream_body(
        self, response: aiohttp.ClientResponse, watch: Watch, *, method: str, path: str
    ) -> bytes:
        """The body of an answer whose headers came before it, read by :class:`AnswerBody` (decoded,
        capped): from the headers on, each of its bytes has ``read_timeout`` (the loop's watchdog)."""
        watchdog = self._watchdog
        assert watchdog is not None  # (acquired with the session)
        watchdog.progressed(watch)
        answer = AnswerBody(self.config, response.headers, status=response.status, method=method, path=path)
        while chunk := await response.content.readany():
            watchdog.progressed(watch)
            answer.feed(chunk)
        return answer.body()

    @staticmethod
    def _probe_ended(answered: asyncio.Event) -> None:
        """A probe's try ended (answered or not): wake the clients waiting for it (there are none once the
        key's pace is known)."""
        answered.set()
        answered.clear()

    def _url_of(self, path: str) -> str:
        """:func:`api_url` of ``path``, kept for the next request (a poll asks for one path every time)."""
        self._url = (path, api_url(self.config, path))
        return self._url[1]

    async def _exchange(
        self,
        method: str,
        path: str,
        headers: Mapping[str, str],
        *,
        params: Mapping[str, Any] | None,
        json: Any,
        expect: Shape | None,
    ) -> Envelope:
        """One try, after this request's turn in the key's budget: bounded by ``request_timeout`` from the
        wait for a pooled connection to the body's end, and by ``read_timeout`` between its bytes (the loop's
        watchdog); the body read by :class:`AnswerBody` (decoded, capped)."""
        if self._rate_limit is not None and self._rate_limit.remaining == 0:  # the latest answer used it up
            rate_limit_wait(self._rate_limit, self.config)  # raises if the window resets after retry_max_wait
        if self._budget is None or self._answered is None:
            self._budget, self._answered = BUDGETS.for_config(self.config)
        budget, answered = self._budget, self._answered
        # a key with headroom: go at once (no coroutine, one lock); else queue for a turn
        probe, sent_at = False, time.time()
        if self._waited_until or not budget.go_now(sent_at):
            probe = await self._take_turn(budget, answered)
            sent_at = time.time()
        if self._session is None or self._session.closed:
            self._session, self._proxy, self._watchdog = SESSIONS.acquire(self.config)
        watchdog = self._watchdog
        assert watchdog is not None  # (acquired with the session)
        url = self._url[1] if path == self._url[0] else self._url_of(path)
        started = time.monotonic()
        watch = watchdog.start(self.config.read_timeout, self.config.request_timeout)
        read = False
        try:
            async with self._session.request(
                method,
                url,
                params=dict(params) if params else None,
                json=json,
                headers=headers,
                timeout=self._timeout,
                allow_redirects=False,
                ssl=self._ssl,
                proxy=self._proxy,
            ) as response:
                content = response.content
                if content.is_eof():  # the whole body came with the headers (a poll's answer): no wait
                    body = AnswerBody.whole(
                        self.config,
                        response.headers,
                        content.read_nowait(),
                        status=response.status,
                        method=method,
                        path=path,
                    )
                else:
                    body = await self._stream_body(response, watch, method=method, path=path)
        except asyncio.CancelledError:
            limit = watchdog.expired(watch)
            if limit is None:  # not a limit of the try: the task itself was cancelled
                raise
            raise _limit_error(self.config, limit, method=method, path=path) from None
        except (aiohttp.ClientSSLError, aiohttp.ServerFingerprintMismatch) as exc:
            raise transport_error(self.config, exc, method=method, path=path, tls=True) from None
        except (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError, asyncio.TimeoutError) as exc:
            raise transport_error(self.config, exc, method=method, path=path) from None
        except aiohttp.ClientError as exc:
            raise NairiError(
                self.config.redact(str(exc)), code="request_error", method=method, path=path
            ) from None
        else:
            read = True
        finally:
            watchdog.stop(watch)
            if not read:  # no answer (an error, or the trigger was cancelled): it only ends a probe
                budget.record(time.time(), None, answered=False)
                if probe:
                    self._probe_ended(answered)
        self._record_in(budget, response.status, response.headers, sent_at)
        if probe:
            self._probe_ended(answered)
        log_answer(self.config, method, path, response.status, started=started, headers=response.headers)
        return parse_response(
            self.config, response.status, response.headers, body, method=method, path=path, expect=expect
        )
