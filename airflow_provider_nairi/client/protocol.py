"""The Nairi wire protocol, once for the sync and the async client.

Here and nowhere else: the request headers (key, User-Agent, Idempotency-Key), the envelope parsing, the
mapping of an answer to an error class, the retry decision and its waits (``Retry-After`` in both forms,
exponential backoff with jitter), the rate-limit bookkeeping, pagination bookkeeping and the redirect refusal.
The clients only move bytes and translate their library's exceptions with :func:`transport_error`.

Pure: imports no Airflow and no HTTP library.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any, TypeVar
from urllib.parse import quote, urljoin, urlsplit

from tenacity import (
    AsyncRetrying,
    RetryCallState,
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    stop_before_delay,
    wait_random_exponential,
)

from airflow_provider_nairi.client.config import ClientConfig, origin
from airflow_provider_nairi.exceptions import (
    NairiAuthError,
    NairiConfigurationError,
    NairiConflictError,
    NairiConnectionError,
    NairiError,
    NairiNotFoundError,
    NairiPayloadTooLargeError,
    NairiRateLimitError,
    NairiServerError,
    NairiTLSError,
    NairiValidationError,
)

log = logging.getLogger("airflow_provider_nairi.client")
T = TypeVar("T")

MAX_PAGE_SIZE = 200
DEFAULT_PAGE_SIZE = 200

#: Status → error class; any other 4xx is a plain NairiError, any 5xx a NairiServerError.
ERROR_CLASSES: dict[int, type[NairiError]] = {
    400: NairiValidationError,
    401: NairiAuthError,
    403: NairiAuthError,
    404: NairiNotFoundError,
    409: NairiConflictError,
    413: NairiPayloadTooLargeError,
    422: NairiValidationError,
    429: NairiRateLimitError,
}


def error_class(status: int) -> type[NairiError]:
    if status >= 500:
        return NairiServerError
    return ERROR_CLASSES.get(status, NairiError)


# -- requests ------------------------------------------------------------------------------------------------


def idempotency_key_for(method: str, key: str | None) -> str | None:
    """The Idempotency-Key of one logical call: the caller's, else a new uuid4 for a POST; chosen once,
    before the retry loop, so every retry of the call carries the same key. PUT and DELETE are idempotent
    by nature."""
    if method.upper() != "POST":
        return None
    if key is not None and not 1 <= len(key) <= 255:
        raise NairiConfigurationError(
            f"idempotency_key must be 1 to 255 characters, got {len(key)}.", code="invalid_idempotency_key"
        )
    return key or str(uuid.uuid4())


def request_headers(config: ClientConfig, method: str, idempotency_key: str | None) -> dict[str, str]:
    """Headers of every try of one call (they hold the key: never log them)."""
    headers = {"User-Agent": config.user_agent, "Accept": "application/json", **config.auth_headers()}
    key = idempotency_key_for(method, idempotency_key)
    if key:
        headers["Idempotency-Key"] = key
    return headers


def segment(value: str) -> str:
    """One path segment, escaped: an id or a name never changes the shape of the path.

    ``""``, ``.`` and ``..`` (also when a server sent them) raise ``NairiConfigurationError``: escaping
    leaves them as they are, and HTTP libraries resolve them (``/secrets/..`` would address the vault).
    """
    text = str(value)
    if text in ("", ".", ".."):
        raise NairiConfigurationError(
            f"{text!r} cannot be an id or a name in an API path: it would address another resource.",
            code="invalid_path",
        )
    return quote(text, safe="")


def api_url(config: ClientConfig, path: str) -> str:
    """Absolute URL of an API path (``/conversations``); only paths under the base URL are allowed."""
    if "://" in path or not path.startswith("/"):
        raise NairiConfigurationError(f"API path must start with '/': {path!r}.", code="invalid_path")
    return config.base_url + path


# -- answers -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Envelope:
    """A parsed success answer: ``data``, the list ``pagination`` (or None) and the request id."""

    data: Any
    pagination: Mapping[str, Any] | None
    request_id: str | None


@dataclass(frozen=True)
class RateLimit:
    """The rate-limit headers of the latest answer: requests per window, left in it, and when it resets."""

    limit: int | None
    remaining: int | None
    reset: float | None  # Unix time, seconds

    @classmethod
    def from_headers(cls, headers: Mapping[str, str]) -> RateLimit | None:
        """The ``X-RateLimit-*`` headers (case-insensitive mapping); None when the answer has none of them.
        An unreadable value counts as absent."""
        limit, remaining, reset = (_number(headers.get(name)) for name in RATE_LIMIT_HEADERS)
        if limit is None and remaining is None and reset is None:
            return None
        return cls(
            limit=int(limit) if limit is not None else None,
            remaining=int(remaining) if remaining is not None else None,
            reset=reset,
        )


RATE_LIMIT_HEADERS = ("X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset")


def _number(text: str | None) -> float | None:
    try:
        return float(text) if text is not None else None
    except ValueError:
        return None


def rate_limit_wait(rate_limit: RateLimit | None, config: ClientConfig, now: float | None = None) -> float:
    """Seconds to wait before the next call: until the reset when the window is used up, else 0.

    A wait longer than ``retry_max_wait`` raises NairiRateLimitError at once instead of sleeping.
    """
    if rate_limit is None or rate_limit.remaining != 0 or rate_limit.reset is None:
        return 0.0
    wait = rate_limit.reset - (time.time() if now is None else now)
    if wait <= 0:
        return 0.0
    if wait > config.retry_max_wait:
        raise NairiRateLimitError(
            f"Rate limit used up; the window resets in {wait:.0f} s, longer than retry_max_wait "
            f"({config.retry_max_wait:g} s).",
            code="rate_limited",
            retry_after=wait,
        )
    return wait


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """``Retry-After`` in seconds, from ``120`` or an HTTP date; None when absent or unreadable."""
    if value is None:
        return None
    text = value.strip()
    try:
        return max(0.0, float(text))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def request_id_of(headers: Mapping[str, str], body: Any = None) -> str | None:
    if isinstance(body, Mapping):
        meta = body.get("meta")
        if isinstance(meta, Mapping) and isinstance(meta.get("request_id"), str):
            return str(meta["request_id"])
    return headers.get("X-Request-Id")


def parse_response(
    config: ClientConfig,
    status: int,
    headers: Mapping[str, str],
    body: bytes,
    *,
    method: str,
    path: str,
) -> Envelope:
    """Turn one answer into an :class:`Envelope`, or raise the error it stands for.

    3xx: refused (see :func:`redirect_error`). Non-JSON or not the contract's envelope: NairiServerError for a
    2xx or 5xx, the status's class for a 4xx (an HTML 401 from a proxy is still an auth failure).
    """
    if 300 <= status < 400:
        raise redirect_error(config, status, headers.get("Location"), method=method, path=path)
    if status == 204 or (not body and status < 300):
        return Envelope(None, None, request_id_of(headers))
    try:
        parsed = json.loads(body)
    except ValueError:
        parsed = None
    request_id = request_id_of(headers, parsed)
    context: dict[str, Any] = {"status": status, "request_id": request_id, "method": method, "path": path}
    if status >= 400:
        raise _error_from_body(config, status, headers=headers, parsed=parsed, body=body, context=context)
    if not isinstance(parsed, Mapping) or parsed.get("success") is not True or "data" not in parsed:
        raise NairiServerError(
            f"the answer is not a Nairi envelope ({_describe_body(headers, body)}).",
            code="malformed_answer",
            **context,
        )
    pagination = parsed.get("pagination")
    return Envelope(parsed["data"], pagination if isinstance(pagination, Mapping) else None, request_id)


def _describe_body(headers: Mapping[str, str], body: bytes) -> str:
    return f"{headers.get('Content-Type') or 'no content type'}, {len(body)} bytes"


def _error_from_body(
    config: ClientConfig,
    status: int,
    *,
    headers: Mapping[str, str],
    parsed: Any,
    body: bytes,
    context: dict[str, Any],
) -> NairiError:
    cls = error_class(status)
    error = parsed.get("error") if isinstance(parsed, Mapping) else None
    if isinstance(error, Mapping):
        code = str(error.get("code") or "") or None
        message = config.redact(str(error.get("message") or "no message"))
        raw_details = error.get("details")
        details = [
            {k: config.redact(str(v)) for k, v in d.items()}
            for d in (raw_details if isinstance(raw_details, list) else [])
            if isinstance(d, Mapping)
        ]
    else:
        code, details = None, []
        message = f"non-JSON error answer ({_describe_body(headers, body)})"
    if cls is NairiRateLimitError:
        retry_after = parse_retry_after(headers.get("Retry-After"))
        if retry_after is not None:
            message += f" (Retry-After: {retry_after:.0f} s)"
        return NairiRateLimitError(message, code=code, details=details, retry_after=retry_after, **context)
    return cls(message, code=code, details=details, **context)


def redirect_error(
    config: ClientConfig, status: int, location: str | None, *, method: str, path: str
) -> NairiError:
    """The client follows no redirect: the API never sends one, and following one could carry the key to
    another host (requests and aiohttp forward ``X-API-Key`` across hosts). The error names both hosts."""
    configured = urlsplit(config.base_url).netloc
    if not location:
        target, same = "no Location", True
    else:
        absolute = urljoin(config.base_url + path, location)
        same = origin(absolute) == origin(config.base_url)
        target = urlsplit(absolute).netloc
    if same:
        message = (
            f"the server answered {status} with a redirect ({target}); the Nairi API does not redirect, so "
            f"the connection's base URL is probably wrong (it is {config.base_url})."
        )
    else:
        message = (
            f"the server answered {status} redirecting to another host, {target} "
            f"(configured host: {configured}); redirects are not followed so that the API key never reaches "
            "another host. Point the connection's host at the API itself."
        )
    return NairiError(message, status=status, code="redirect_refused", method=method, path=path)


def transport_error(
    config: ClientConfig, exc: BaseException, *, method: str, path: str, tls: bool = False
) -> NairiConnectionError:
    """No answer (DNS, refused, reset, timeout, TLS). TLS failures are :class:`NairiTLSError`, not retried."""
    error_class = NairiTLSError if tls else NairiConnectionError
    kind = "TLS verification failed" if tls else type(exc).__name__
    return error_class(
        config.redact(f"{kind}: {exc}"),
        code="tls_error" if tls else "connection_error",
        method=method,
        path=path,
    )


# -- retries -------------------------------------------------------------------------------------------------


def should_retry(error: BaseException, config: ClientConfig) -> bool:
    """The retry decision, shared by both clients.

    Retried: 429 (unless its Retry-After is longer than ``retry_max_wait``), 5xx and malformed answers,
    connection errors and timeouts. Never: 400/401/403/404/409/413/422, redirects, TLS errors,
    configuration errors. Every POST carries an Idempotency-Key, so retrying one after its body was sent
    cannot create a second object.
    """
    if not isinstance(error, NairiError) or not error.retryable:
        return False
    if isinstance(error, NairiRateLimitError) and error.retry_after is not None:
        return error.retry_after <= config.retry_max_wait
    return True


class RetryWait:
    """Tenacity wait: the server's ``Retry-After`` when it gave one, else exponential backoff with full jitter
    (0.5 s, 1 s, 2 s... random below each, never above ``retry_max_wait``)."""

    def __init__(self, config: ClientConfig) -> None:
        self._backoff = wait_random_exponential(multiplier=0.5, max=config.retry_max_wait)

    def __call__(self, state: RetryCallState) -> float:
        error = state.outcome.exception() if state.outcome else None
        if isinstance(error, NairiRateLimitError) and error.retry_after is not None:
            return error.retry_after
        return float(self._backoff(state))


def _log_retry(state: RetryCallState) -> None:
    error = state.outcome.exception() if state.outcome else None
    wait = state.next_action.sleep if state.next_action else 0.0
    log.warning("Nairi call failed (%s); retry %d in %.1f s.", error, state.attempt_number, wait)


def retry_kwargs(config: ClientConfig, sleep: Callable[[float], Any]) -> dict[str, Any]:
    """Keyword arguments for ``tenacity.Retrying`` and ``AsyncRetrying``: bounded in tries (``max_retries`` +
    1) and in time (``retry_total_timeout``, counting the coming wait); the last error is raised as is."""
    return {
        "retry": retry_if_exception(lambda e: should_retry(e, config)),
        "wait": RetryWait(config),
        "stop": stop_after_attempt(config.max_retries + 1) | stop_before_delay(config.retry_total_timeout),
        "reraise": True,
        "before_sleep": _log_retry,
        "sleep": sleep,
    }


def call_with_retries(config: ClientConfig, attempt: Callable[[], T], sleep: Callable[[float], Any]) -> T:
    """Run ``attempt`` under the retry rules of :func:`retry_kwargs`.

    The first try runs directly (tenacity's bookkeeping costs about as much CPU as parsing the answer, and
    most calls succeed at once); after a retryable failure tenacity takes over and replays that failure as
    its attempt 1, so the count of tries, the waits and the stop rules are the same. The time budget
    starts at that first failure.
    """
    try:
        return attempt()
    except NairiError as error:
        if not should_retry(error, config):
            raise
        first: NairiError | None = error
    for state in Retrying(**retry_kwargs(config, sleep)):
        with state:
            if first is not None:
                failed, first = first, None
                raise failed
            return attempt()
    raise AssertionError("unreachable: tenacity re-raises the last error")  # pragma: no cover


async def acall_with_retries(
    config: ClientConfig, attempt: Callable[[], Awaitable[T]], sleep: Callable[[float], Awaitable[Any]]
) -> T:
    """:func:`call_with_retries` for coroutines (``AsyncRetrying``, awaited sleeps)."""
    try:
        return await attempt()
    except NairiError as error:
        if not should_retry(error, config):
            raise
        first: NairiError | None = error
    async for state in AsyncRetrying(**retry_kwargs(config, sleep)):
        with state:
            if first is not None:
                failed, first = first, None
                raise failed
            return await attempt()
    raise AssertionError("unreachable: tenacity re-raises the last error")  # pragma: no cover


# -- pagination ----------------------------------------------------------------------------------------------


class PageCursor:
    """Bookkeeping of one walk over a list endpoint: the next page's query, de-duplication by ``id``, the
    end.

    Pages advance ``offset`` by the items received; a page with ``has_more`` false ends the walk without
    another request; ``has_more`` with an empty page, or with a page of items all received before (a server
    that ignores ``offset``), is a NairiServerError (it would loop for ever).
    """

    def __init__(self, params: Mapping[str, Any] | None, page_size: int) -> None:
        if not 1 <= page_size <= MAX_PAGE_SIZE:
            raise NairiConfigurationError(
                f"page_size must be 1 to {MAX_PAGE_SIZE}, got {page_size}.", code="invalid_page_size"
            )
        self._params = {k: v for k, v in (params or {}).items() if v is not None}
        self._page_size = page_size
        self._seen: set[Any] = set()
        self.offset = 0
        self.done = False

    def params(self) -> dict[str, Any]:
        return {**self._params, "limit": self._page_size, "offset": self.offset}

    def accept(self, envelope: Envelope, *, method: str, path: str) -> list[Any]:
        """Record one page; return its items not seen before."""
        items, pagination = envelope.data, envelope.pagination or {}
        context: dict[str, Any] = {"request_id": envelope.request_id, "method": method, "path": path}
        if not isinstance(items, list):
            raise NairiServerError(
                "a list endpoint answered without a list.", code="malformed_answer", **context
            )
        has_more = bool(pagination.get("has_more"))
        if has_more and not items:
            raise NairiServerError(
                f"the server claims more items after offset {self.offset} but sent an empty page.",
                code="malformed_pagination",
                **context,
            )
        self.offset += len(items)
        self.done = not has_more
        fresh = []
        for item in items:
            item_id = item.get("id") if isinstance(item, Mapping) else None
            if item_id is not None:
                if item_id in self._seen:
                    continue
                self._seen.add(item_id)
            fresh.append(item)
        if has_more and not fresh:
            raise NairiServerError(
                f"the server repeats items already received (page at offset {self.offset - len(items)}) "
                "and claims more: it ignores offset; stopping instead of looping for ever.",
                code="malformed_pagination",
                **context,
            )
        return fresh


# -- logging -------------------------------------------------------------------------------------------------


#: Level of the line of a successful read; a wait lowers it to DEBUG while it polls (:func:`polling`).
_READ_LOG_LEVEL: ContextVar[int] = ContextVar("nairi_read_log_level", default=logging.INFO)


@contextmanager
def polling() -> Iterator[None]:
    """Within it (this thread or asyncio task only), a successful read logs its answer line at DEBUG: a wait
    that polls every few seconds would otherwise log hundreds of identical lines an hour; its own lines say
    what changed (``WaitLog`` in ``triggers/polling.py``)."""
    token = _READ_LOG_LEVEL.set(logging.DEBUG)
    try:
        yield
    finally:
        _READ_LOG_LEVEL.reset(token)


def log_answer(method: str, path: str, status: int, started: float, headers: Mapping[str, str]) -> None:
    """One line per answer: call, status, time, request id. Never a body, never a request header.

    INFO, except a successful read (``GET``) inside :func:`polling`: DEBUG."""
    read = method in ("GET", "HEAD") and status < 400
    level = _READ_LOG_LEVEL.get() if read else logging.INFO
    if not log.isEnabledFor(level):
        return
    log.log(
        level,
        "Nairi %s %s -> %d in %.0f ms (request id %s)%s",
        method,
        path,
        status,
        (time.monotonic() - started) * 1000,
        headers.get("X-Request-Id") or "-",
        " (idempotent replay)" if headers.get("Idempotent-Replayed") == "true" else "",
    )
