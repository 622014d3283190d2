"""The asynchronous Nairi client, for triggers: aiohttp, one ``ClientSession`` per event loop.

A triggerer runs hundreds of waits in one event loop, so every :class:`AsyncNairiClient` of a loop shares one
session (and its connection pool); the key, timeouts, TLS and proxy settings travel with each request, so
clients of different connections share it safely. The session is closed when the last client of its loop calls
:meth:`AsyncNairiClient.close`.

Retries, the retry decision, ``Retry-After``, the envelope and the errors are those of the sync client
(:mod:`airflow_provider_nairi.client.protocol`); redirects are refused the same way.

Imports no Airflow. Import it lazily (inside a trigger's ``run``): aiohttp costs about 300 ms to import.
"""

from __future__ import annotations

import asyncio
import functools
import os
import ssl
import time
import urllib.request
import weakref
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

import aiohttp

from airflow_provider_nairi.client.budget import RateBudget, RateBudgets
from airflow_provider_nairi.client.config import ClientConfig
from airflow_provider_nairi.client.protocol import (
    DEFAULT_PAGE_SIZE,
    Envelope,
    PageCursor,
    RateLimit,
    acall_with_retries,
    api_url,
    log_answer,
    parse_response,
    parse_retry_after,
    rate_limit_wait,
    request_headers,
    segment,
    transport_error,
)
from airflow_provider_nairi.exceptions import NairiError


class _LoopShare:
    """What the clients of one event loop share: the session, how many clients hold it, and the proxy taken
    from the environment for each base URL (read once while the session lives: ``getproxies`` walks the
    whole environment, about 0.1 ms, more than a poll's own work)."""

    def __init__(self) -> None:
        self.session = aiohttp.ClientSession()
        self.users = 0
        self._environment_proxies: dict[str, str | None] = {}

    def proxy_for(self, config: ClientConfig) -> str | None:
        """The connection's proxy for the base URL's scheme; without one, ``HTTPS_PROXY`` / ``HTTP_PROXY``
        unless ``NO_PROXY`` covers the host (what requests does for the sync client; aiohttp's own
        ``trust_env`` would also read ``.netrc`` in a thread on every request)."""
        if config.proxies:
            return config.proxies.get(urlsplit(config.base_url).scheme)
        if config.base_url not in self._environment_proxies:
            parts = urlsplit(config.base_url)
            bypass = urllib.request.proxy_bypass(parts.hostname or "")
            proxy = None if bypass else urllib.request.getproxies().get(parts.scheme)
            self._environment_proxies[config.base_url] = proxy
        return self._environment_proxies[config.base_url]


class _LoopSessions:
    """One :class:`_LoopShare` per running event loop, counted by the clients that use it."""

    def __init__(self) -> None:
        self._sessions: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _LoopShare] = (
            weakref.WeakKeyDictionary()
        )

    def acquire(self, config: ClientConfig) -> tuple[aiohttp.ClientSession, str | None]:
        """The loop's session (opened if needed) and the proxy ``config`` uses through it."""
        loop = asyncio.get_running_loop()
        share = self._sessions.get(loop)
        if share is None or share.session.closed:
            share = self._sessions[loop] = _LoopShare()
        share.users += 1
        return share.session, share.proxy_for(config)

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


class AsyncNairiClient:
    """What triggers need, asynchronously: ``request``, ``get_conversation``, ``list_messages`` (all pages),
    ``cancel_conversation``, ``get_video``, ``close``. Use one per trigger and close it in ``finally``.

    Every client of one key in an event loop shares its rate budget (:mod:`.budget`): requests are spaced
    by the ``X-RateLimit-*`` headers, and a 429 or a used-up window holds them all until ``Retry-After`` or
    the reset (a longer hold than ``retry_max_wait`` fails at once with NairiRateLimitError)."""

    def __init__(self, config: ClientConfig, *, sleep: Any = asyncio.sleep) -> None:
        self.config = config
        self._sleep = sleep
        self._session: aiohttp.ClientSession | None = None
        self._rate_limit: RateLimit | None = None
        self._timeout = aiohttp.ClientTimeout(
            sock_connect=config.connect_timeout, sock_read=config.read_timeout
        )
        self._ssl = _ssl_setting(config.verify)
        self._proxy: str | None = None
        self._budget: tuple[RateBudget, asyncio.Event] | None = None
        self._waited_until = 0.0  # the end of the pause this client's own 429 caused (its retry waits it out)

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

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        idempotency_key: str | None = None,
    ) -> Any:
        """Send one call and return the envelope's ``data`` (None for a 204).

        Retried on 429, 5xx and connection errors like the sync client (``docs/errors-and-retries.md``),
        with non-blocking waits. A POST carries an Idempotency-Key (``idempotency_key`` or a fresh uuid4)
        reused by all its retries; other methods carry none. Errors are ``NairiError`` subclasses.
        """
        return (
            await self._call(method, path, params=params, json=json, idempotency_key=idempotency_key)
        ).data

    async def get_conversation(self, conversation_id: str) -> dict[str, Any]:
        """The conversation ``conversation_id`` (``status``: ``queued``, ``running``, ``completed``,
        ``failed``, ``cancelled``).

        Scope ``read``. Retried on 429, 5xx and connection errors like the sync client
        (``docs/errors-and-retries.md``), with non-blocking waits. 404 (``NairiNotFoundError``, not
        retried): no such conversation in this org.
        """
        return await self.request("GET", f"/conversations/{segment(conversation_id)}")  # type: ignore[no-any-return]

    async def list_messages(self, conversation_id: str) -> list[dict[str, Any]]:
        """Every message of the conversation, oldest first, as a list (all pages read before returning,
        de-duplicated by ``id``).

        Scope ``read``; each page is retried on 429, 5xx and connection errors like the sync client
        (``docs/errors-and-retries.md``), with non-blocking waits. 404: no such conversation.
        """
        path = f"/conversations/{segment(conversation_id)}/messages"
        cursor = PageCursor(None, DEFAULT_PAGE_SIZE)
        items: list[dict[str, Any]] = []
        while not cursor.done:
            items += cursor.accept(
                await self._call("GET", path, params=cursor.params()), method="GET", path=path
            )
        return items

    async def cancel_conversation(self, conversation_id: str) -> dict[str, Any]:
        """Cancel a conversation; return it (``cancelled``, or unchanged if it had already ended).

        Scope ``write``. Retried on 429, 5xx and connection errors like the sync client
        (``docs/errors-and-retries.md``), with non-blocking waits. The POST carries a fresh Idempotency-Key
        reused by its retries. 404: no such conversation.
        """
        return await self.request("POST", f"/conversations/{segment(conversation_id)}/cancel")  # type: ignore[no-any-return]

    async def get_video(self, video_id: str) -> dict[str, Any]:
        """The video ``video_id`` (``status``: ``processing``, ``ready`` or ``failed``).

        Scope ``read``. Retried on 429, 5xx and connection errors like the sync client
        (``docs/errors-and-retries.md``), with non-blocking waits. 404 (``NairiNotFoundError``, not
        retried): no such video in this org.
        """
        return await self.request("GET", f"/videos/{segment(video_id)}")  # type: ignore[no-any-return]

    async def _call(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        idempotency_key: str | None = None,
    ) -> Envelope:
        headers = request_headers(self.config, method, idempotency_key)
        return await acall_with_retries(
            self.config, lambda: self._exchange(method, path, headers, params=params, json=json), self._sleep
        )

    async def _take_turn(self) -> tuple[RateBudget, asyncio.Event]:
        """Wait for this request's slot in the key's budget (and any pause recorded meanwhile)."""
        if self._budget is None:
            self._budget = BUDGETS.for_config(self.config)
        budget, answered = self._budget
        while (ticket := budget.reserve(now := max(time.time(), self._waited_until))) is None:
            await answered.wait()  # another client's first request is learning the key's limit
        self._waited_until = 0.0
        budget.check_pause(now, self.config.retry_max_wait)
        while (wait := budget.due(ticket) - now) > 0:
            await self._sleep(wait)
            now = max(time.time(), now + wait)  # (a test's recorded sleep takes no time)
        return budget, answered

    async def _exchange(
        self,
        method: str,
        path: str,
        headers: Mapping[str, str],
        *,
        params: Mapping[str, Any] | None,
        json: Any,
    ) -> Envelope:
        rate_limit_wait(self._rate_limit, self.config)  # raises if the window resets after retry_max_wait
        budget, answered = await self._take_turn()
        if self._session is None or self._session.closed:
            self._session, self._proxy = SESSIONS.acquire(self.config)
        started, sent_at = time.monotonic(), time.time()
        response = None
        try:
            async with self._session.request(
                method,
                api_url(self.config, path),
                params=dict(params) if params else None,
                json=json,
                headers=headers,
                timeout=self._timeout,
                allow_redirects=False,
                ssl=self._ssl,
                proxy=self._proxy,
            ) as response:
                body = await response.read()
        except (aiohttp.ClientSSLError, aiohttp.ServerFingerprintMismatch) as exc:
            raise transport_error(self.config, exc, method=method, path=path, tls=True) from None
        except (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError, asyncio.TimeoutError) as exc:
            raise transport_error(self.config, exc, method=method, path=path) from None
        except aiohttp.ClientError as exc:
            raise NairiError(
                self.config.redact(str(exc)), code="request_error", method=method, path=path
            ) from None
        finally:
            if response is None:  # no answer (an error, or the trigger was cancelled): only ends a probe
                budget.record(time.time(), None, answered=False)
                answered.set()
                answered.clear()
        rate_limit = RateLimit.from_headers(response.headers)
        self._rate_limit = rate_limit or self._rate_limit
        limited = response.status == 429
        retry_after = parse_retry_after(response.headers.get("Retry-After")) if limited else None
        budget.record(time.time(), rate_limit, sent_at=sent_at, rate_limited=limited, retry_after=retry_after)
        if retry_after is not None and retry_after <= self.config.retry_max_wait:
            self._waited_until = budget.paused_until  # the retry's wait (Retry-After) covers the pause
        answered.set()  # wakes the clients waiting for a probe's answer
        answered.clear()
        log_answer(method, path, response.status, started, response.headers)
        return parse_response(self.config, response.status, response.headers, body, method=method, path=path)
