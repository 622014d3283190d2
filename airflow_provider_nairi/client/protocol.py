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
import re
import time
import uuid
import zlib
from collections.abc import Awaitable, Callable, Mapping
from contextvars import ContextVar
from email.utils import parsedate_to_datetime
from typing import Any, Literal, NamedTuple, TypeVar
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
    NairiAnswerTooLargeError,
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
#: Most pages one walk over a list endpoint reads: a server that never stops claiming ``has_more`` (with fresh
#: ids on every page and no usable ``total``) ends with NairiServerError after this many.
MAX_PAGES = 10_000
#: Longest wait a number from the server can cause (``Retry-After``, ``X-RateLimit-Reset``): larger values,
#: ``inf`` and far-future dates are clamped to it; ``nan``, negative and unreadable values count as absent.
MAX_SERVER_WAIT = 3600.0
#: Characters kept of what the server echoes into an error: request id and error code / message.
MAX_ECHOED_ID = 200
MAX_ECHOED_MESSAGE = 2000
#: The encodings a JSON answer may come in: the only ones the clients ask for (``Accept-Encoding``).
ACCEPT_ENCODING = "gzip, deflate"
#: The shape of ``data`` an endpoint answers with: a JSON object, or a list of objects (one page).
Shape = Literal["object", "list"]

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
    headers = {
        "User-Agent": config.user_agent,
        "Accept": "application/json",
        "Accept-Encoding": ACCEPT_ENCODING,
        **config.auth_headers(),
    }
    key = idempotency_key_for(method, idempotency_key)
    if key:
        headers["Idempotency-Key"] = key
    return headers


#: Text that ``quote(text, safe="")`` leaves as it is (RFC 3986 unreserved characters).
_PLAIN_SEGMENT = re.compile(r"[A-Za-z0-9_.~-]+")


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
    if _PLAIN_SEGMENT.fullmatch(text):  # an id as the API makes them: quote() would leave it as it is
        return text
    return quote(text, safe="")


def api_url(config: ClientConfig, path: str) -> str:
    """Absolute URL of an API path (``/conversations``); only paths under the base URL are allowed."""
    if "://" in path or not path.startswith("/"):
        raise NairiConfigurationError(f"API path must start with '/': {path!r}.", code="invalid_path")
    return config.base_url + path


# -- answers -------------------------------------------------------------------------------------------------


class Envelope(NamedTuple):  # one per answer: a tuple is the cheapest immutable record
    """A parsed success answer: ``data``, the list ``pagination`` (or None) and the request id."""

    data: Any
    pagination: Mapping[str, Any] | None
    request_id: str | None


class RateLimit(NamedTuple):  # one per answer, kept until the next: a tuple is the cheapest record
    """The rate-limit headers of the latest answer: requests per window, left in it, and when it resets."""

    limit: int | None
    remaining: int | None
    reset: float | None  # Unix time, seconds

    @classmethod
    def from_headers(cls, headers: Mapping[str, str]) -> RateLimit | None:
        """The ``X-RateLimit-*`` headers (case-insensitive mapping); None when the answer has none of them.
        An unreadable value counts as absent."""
        get = headers.get  # (once per answer of every poll: no generator)
        limit = header_number(get("X-RateLimit-Limit"))
        remaining = header_number(get("X-RateLimit-Remaining"))
        reset = header_number(get("X-RateLimit-Reset"))
        if limit is None and remaining is None and reset is None:
            return None
        return cls(
            limit=int(limit) if limit is not None else None,
            remaining=int(remaining) if remaining is not None else None,
            reset=reset,
        )


#: Largest number a header may carry (2**53: every integer up to it is exact as a float); above: unreadable.
_MAX_HEADER_NUMBER = float(2**53)


def header_number(text: str | None) -> float | None:
    """A header's number when it is finite, 0 or more and at most 2**53; None when absent or not that."""
    if text is None:
        return None
    try:
        number = float(text)
    except ValueError:
        return None
    return number if 0 <= number <= _MAX_HEADER_NUMBER else None  # nan fails both comparisons


def rate_limit_wait(rate_limit: RateLimit | None, config: ClientConfig, now: float | None = None) -> float:
    """Seconds to wait before the next call: until the reset when the window is used up, else 0.

    A wait longer than ``retry_max_wait`` raises NairiRateLimitError at once instead of sleeping (its
    ``retry_after`` at most :data:`MAX_SERVER_WAIT`).
    """
    if rate_limit is None or rate_limit.remaining != 0 or rate_limit.reset is None:
        return 0.0
    wait = min(rate_limit.reset - (time.time() if now is None else now), MAX_SERVER_WAIT)
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
    """``Retry-After`` in seconds, from ``120`` or an HTTP date, at most :data:`MAX_SERVER_WAIT`; None when
    absent or unreadable (``nan``, negative, garbage)."""
    if value is None:
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        try:
            when = parsedate_to_datetime(text)
        except (TypeError, ValueError, OverflowError):
            return None
        if when.tzinfo is None:
            return None
        return min(max(0.0, when.timestamp() - (time.time() if now is None else now)), MAX_SERVER_WAIT)
    if not seconds >= 0:  # nan, negative
        return None
    return min(seconds, MAX_SERVER_WAIT)


def echoed(config: ClientConfig, value: Any, limit: int = MAX_ECHOED_ID) -> str | None:
    """Something the server sent back that goes into an error or a log line (request id, error code):
    text, the key redacted, at most ``limit`` characters; None when empty."""
    if value is None or value == "":
        return None
    text = config.redact(str(value))
    return text if len(text) <= limit else text[: limit - 3] + "..."


def request_id_of(config: ClientConfig, headers: Mapping[str, str], body: Any = None) -> str | None:
    """``meta.request_id``, else ``X-Request-Id``: redacted and bounded (:func:`echoed`)."""
    if isinstance(body, dict):  # (parsed JSON: an object is a dict)
        meta = body.get("meta")
        if isinstance(meta, dict) and isinstance(meta.get("request_id"), str):
            return echoed(config, meta["request_id"])
    return echoed(config, headers.get("X-Request-Id"))


#: Most bytes one decompression step makes: the cap is checked after each, so inflating never holds much more.
_INFLATE_STEP = 1 << 20


class AnswerBody:
    """The bytes of one JSON answer, decoded (``gzip``, ``deflate``) and counted while they arrive.

    Both clients read the raw (still compressed) body chunk by chunk into :meth:`feed`; decoding inflates
    1 MiB at a time (never past ``max_answer_bytes`` + 1), so a small gzip that inflates to gigabytes
    stops at the cap with :class:`~airflow_provider_nairi.exceptions.NairiAnswerTooLargeError` (so does
    a ``Content-Length`` above the cap, before any byte is read). Another ``Content-Encoding`` (the clients
    ask for gzip and deflate only) or a corrupt or truncated compressed body is a malformed answer.
    """

    __slots__ = ("_cap", "_chunks", "_context", "_decoder", "_encoding", "size")

    def __init__(
        self,
        config: ClientConfig,
        headers: Mapping[str, str],
        *,
        status: int,
        method: str,
        path: str,
    ) -> None:
        self._cap = config.max_answer_bytes
        self._chunks: list[bytes] = []
        self._context: dict[str, Any] = {"status": status, "method": method, "path": path}
        self.size = 0
        self._encoding = (headers.get("Content-Encoding") or "identity").strip().lower()
        self._decoder: Any = None
        if self._encoding in ("gzip", "x-gzip"):
            self._decoder = zlib.decompressobj(16 + zlib.MAX_WBITS)
        elif self._encoding not in ("identity", "deflate"):
            raise NairiServerError(
                f"the answer came in Content-Encoding {echoed(config, self._encoding)!r}; only "
                f"{ACCEPT_ENCODING} were asked for.",
                code="malformed_answer",
                **self._context,
            )
        length = header_number(headers.get("Content-Length"))
        if self._encoding == "identity" and length is not None:  # a plain body too long: before any byte
            self._check_size(int(length))

    @classmethod
    def whole(
        cls,
        config: ClientConfig,
        headers: Mapping[str, str],
        data: bytes,
        *,
        status: int,
        method: str,
        path: str,
    ) -> bytes:
        """The decoded bytes of a body that came whole (a poll's answer, with its headers): checked like one
        fed in chunks, without the bookkeeping when it is plain and within the cap."""
        if "Content-Encoding" not in headers and len(data) <= config.max_answer_bytes:
            return data
        answer = cls(config, headers, status=status, method=method, path=path)
        answer.feed(data)
        return answer.body()

    def _check_size(self, size: int) -> None:
        if size > self._cap:
            raise NairiAnswerTooLargeError(
                f"the answer is larger than max_answer_bytes ({self._cap} bytes"
                f"{'' if self._encoding == 'identity' else ' after ' + self._encoding + ' decoding'}); "
                "stopped reading it. A Nairi answer is far smaller: check that the connection's host is the "
                "Nairi API (not a proxy or another service); if the answer is genuine, raise the connection "
                "extra max_answer_bytes.",
                code="answer_too_large",
                **self._context,
            )

    def _add(self, data: bytes) -> None:
        if data:
            self.size += len(data)
            self._check_size(self.size)
            self._chunks.append(data)

    def feed(self, data: bytes) -> None:
        """Take the next raw chunk of the body."""
        if self._encoding == "identity":
            self._add(data)
            return
        if self._decoder is None:  # deflate: zlib-wrapped as the RFC says, or raw as some servers send it
            wrapped = len(data) >= 2 and data[0] & 0x0F == 8 and (data[0] << 8 | data[1]) % 31 == 0
            self._decoder = zlib.decompressobj(zlib.MAX_WBITS if wrapped else -zlib.MAX_WBITS)
        try:
            while data:
                self._add(self._decoder.decompress(data, min(self._cap - self.size + 1, _INFLATE_STEP)))
                data = self._decoder.unconsumed_tail
                if self._decoder.eof and self._decoder.unused_data:  # another gzip member follows
                    data = self._decoder.unused_data
                    self._decoder = zlib.decompressobj(16 + zlib.MAX_WBITS)
        except zlib.error as exc:
            raise self._corrupt(str(exc)) from None

    def _corrupt(self, why: str) -> NairiServerError:
        return NairiServerError(
            f"the {self._encoding} body of the answer is corrupt ({why}).",
            code="malformed_answer",
            **self._context,
        )

    def body(self) -> bytes:
        """All decoded bytes, once the body has ended."""
        if self._decoder is not None and not self._decoder.eof:
            raise self._corrupt("it ends before its compressed stream does")
        return b"".join(self._chunks)


def deadline_error(
    config: ClientConfig, *, method: str, path: str, received: int | None = None
) -> NairiConnectionError:
    """A try that outlived ``request_timeout`` (a server that trickles or never ends its body, a pool that
    stays full). Retryable like any timeout."""
    what = "" if received is None else f" (it had sent {received} bytes)"
    return NairiConnectionError(
        f"no complete answer within request_timeout ({config.request_timeout:g} s){what}: the server or the "
        "network is too slow, or the connection pool stayed busy. Raise the connection extra "
        "request_timeout if answers are genuinely this slow.",
        code="request_timeout",
        method=method,
        path=path,
    )


#: The answers' JSON decoder. An answer is UTF-8 (RFC 8259; a leading byte-order mark is skipped): another
#: encoding is a malformed answer.
_JSON = json.JSONDecoder()


def parse_response(
    config: ClientConfig,
    status: int,
    headers: Mapping[str, str],
    body: bytes,
    *,
    method: str,
    path: str,
    expect: Shape | None = None,
) -> Envelope:
    """Turn one answer into an :class:`Envelope`, or raise the error it stands for.

    3xx: refused (see :func:`redirect_error`). Non-JSON (nested too deep, invalid encoding...) or not the
    contract's envelope: NairiServerError for a 2xx or 5xx, the status's class for a 4xx (an HTML 401 from a
    proxy is still an auth failure). ``expect``: the shape ``data`` must have ("object", or "list" of
    objects); another one, a 204 or an empty body included, is a NairiServerError (retried).
    """
    if 300 <= status < 400:
        raise redirect_error(config, status, headers.get("Location"), method=method, path=path)
    if status == 204 or (not body and status < 300):
        envelope = Envelope(None, None, request_id_of(config, headers))
    else:
        try:
            parsed = _JSON.decode(body.decode().removeprefix("\ufeff"))  # json.loads without encoding guess
        except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
            parsed = None
        request_id = request_id_of(config, headers, parsed)
        if status >= 400 or not (
            isinstance(parsed, dict) and parsed.get("success") is True and "data" in parsed
        ):
            context: dict[str, Any] = {
                "status": status,
                "request_id": request_id,
                "method": method,
                "path": path,
            }
            if status >= 400:
                raise _error_from_body(
                    config, status, headers=headers, parsed=parsed, body=body, context=context
                )
            raise NairiServerError(
                f"the answer is not a Nairi envelope ({_describe_body(config, headers, body)}).",
                code="malformed_answer",
                **context,
            )
        pagination = parsed.get("pagination")
        envelope = Envelope(parsed["data"], pagination if isinstance(pagination, dict) else None, request_id)
    if expect is not None:
        _check_shape(envelope, expect, status=status, method=method, path=path)
    return envelope


def _check_shape(envelope: Envelope, expect: Shape, *, status: int, method: str, path: str) -> None:
    data = envelope.data
    if expect == "object":
        if isinstance(data, dict):
            return
    elif isinstance(data, list) and all(isinstance(item, dict) for item in data):
        return
    if status == 204 or data is None:
        got = "no content (204)" if status == 204 else "data null or an empty body"
    elif isinstance(data, list):
        got = f"a list of {len(data)}" + (" items, not all of them objects" if expect == "list" else "")
    else:
        got = f"a JSON {type(data).__name__}".replace("dict", "object").replace("str", "string")
    wanted = "a JSON object" if expect == "object" else "a list of objects"
    raise NairiServerError(
        f"the endpoint answers {wanted}, the server sent {got}.",
        code="malformed_answer",
        status=status,
        request_id=envelope.request_id,
        method=method,
        path=path,
    )


def _describe_body(config: ClientConfig, headers: Mapping[str, str], body: bytes) -> str:
    content_type = echoed(config, headers.get("Content-Type")) or "no content type"
    return f"{content_type}, {len(body)} bytes"


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
        code = echoed(config, error.get("code"))
        message = echoed(config, error.get("message") or "no message", MAX_ECHOED_MESSAGE) or ""
        raw_details = error.get("details")
        details = [
            {echoed(config, k) or "": echoed(config, v, MAX_ECHOED_MESSAGE) for k, v in d.items()}
            for d in (raw_details if isinstance(raw_details, list) else [])
            if isinstance(d, Mapping)
        ]
    else:
        code, details = None, []
        message = f"non-JSON error answer ({_describe_body(config, headers, body)})"
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
    another host (requests and aiohttp forward ``X-API-Key`` across hosts). The error says what the redirect
    changes: nothing but the path (a wrong base URL), the scheme or the port of the same host, or the host."""
    configured = origin(config.base_url)
    if not location:
        message = (
            f"the server answered {status} with a redirect without Location; the Nairi API does not "
            f"redirect, so the connection's base URL is probably wrong (it is {config.base_url})."
        )
    else:
        absolute = urljoin(config.base_url + path, location)
        target = origin(absolute)
        where = urlsplit(absolute).netloc
        if target[1] != configured[1]:
            message = (
                f"the server answered {status} redirecting to another host, {where} (configured host: "
                f"{urlsplit(config.base_url).netloc}); redirects are not followed so that the API key never "
                "reaches another host. Point the connection's host at the API itself."
            )
        elif target[0] != configured[0]:
            message = (
                f"the server answered {status} redirecting from {configured[0]} to {target[0]} on the same "
                f"host ({where}); redirects are not followed. Set the connection's host to the {target[0]} "
                "URL if that is where the API lives."
            )
        elif target[2] != configured[2]:
            message = (
                f"the server answered {status} redirecting to port {target[2]} of the same host (configured: "
                f"port {configured[2]}); redirects are not followed. Put the port the API uses in the "
                "connection's host."
            )
        else:
            message = (
                f"the server answered {status} with a redirect to {urlsplit(absolute).path or '/'} on the "
                "same host; the Nairi API does not redirect, so the connection's base URL is probably wrong "
                f"(it is {config.base_url})."
            )
    return NairiError(
        config.redact(message), status=status, code="redirect_refused", method=method, path=path
    )


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


async def aretry_after(
    config: ClientConfig,
    failure: NairiError,
    attempt: Callable[[], Awaitable[T]],
    sleep: Callable[[float], Awaitable[Any]],
) -> T:
    """:func:`call_with_retries` for coroutines, called by the caller's own first try when it failed with
    ``failure`` (an answer's first try is awaited directly: no closure, no extra coroutine per poll): raises
    ``failure`` when it is not retried, else retries ``attempt`` (``AsyncRetrying``, awaited sleeps)."""
    if not should_retry(failure, config):
        raise failure
    first: NairiError | None = failure
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

    Pages advance ``offset`` by the items received. The walk ends at a page with ``has_more`` false, or once
    ``offset`` reaches the ``total`` the server announced (whatever ``has_more`` says), without another
    request. A server that would make it loop for ever raises NairiServerError naming what it did:
    ``has_more`` with an empty page, a page that repeats the previous one or holds only items received before
    (it ignores ``offset``), or more than :data:`MAX_PAGES` pages. (Pages are checked to be lists of objects
    by the client: ``expect="list"``.)
    """

    def __init__(self, params: Mapping[str, Any] | None, page_size: int) -> None:
        if not 1 <= page_size <= MAX_PAGE_SIZE:
            raise NairiConfigurationError(
                f"page_size must be 1 to {MAX_PAGE_SIZE}, got {page_size}.", code="invalid_page_size"
            )
        self._params = {k: v for k, v in (params or {}).items() if v is not None}
        self._page_size = page_size
        self._seen: set[Any] = set()
        self._previous: list[Any] | None = None
        self.pages = 0
        self.offset = 0
        self.done = False

    def params(self) -> dict[str, Any]:
        return {**self._params, "limit": self._page_size, "offset": self.offset}

    def accept(self, envelope: Envelope, *, method: str, path: str) -> list[Any]:
        """Record one page; return its items not seen before."""
        items: list[Any] = envelope.data
        pagination = envelope.pagination or {}
        context: dict[str, Any] = {"request_id": envelope.request_id, "method": method, "path": path}
        has_more = pagination.get("has_more") is True
        total = pagination.get("total")
        if isinstance(total, bool) or not isinstance(total, int) or total < 0:
            total = None  # absent or unusable: only has_more and MAX_PAGES end the walk
        start = self.offset
        self.pages += 1
        if has_more and not items:
            raise NairiServerError(
                f"the server claims more items after offset {start} but sent an empty page.",
                code="malformed_pagination",
                **context,
            )
        if has_more and items == self._previous:
            raise NairiServerError(
                f"the server repeats the previous page for offset {start} and claims more: it ignores "
                "offset; stopping instead of looping for ever.",
                code="malformed_pagination",
                **context,
            )
        self._previous = items
        self.offset += len(items)
        self.done = not has_more or (total is not None and self.offset >= total)
        fresh = []
        for item in items:
            item_id = item.get("id")
            if isinstance(item_id, str | int):  # an item without a usable id is kept as it is
                if item_id in self._seen:
                    continue
                self._seen.add(item_id)
            fresh.append(item)
        if not self.done and not fresh:
            raise NairiServerError(
                f"the server repeats items already received (page at offset {start}) "
                "and claims more: it ignores offset; stopping instead of looping for ever.",
                code="malformed_pagination",
                **context,
            )
        if not self.done and self.pages >= MAX_PAGES:
            raise NairiServerError(
                f"the server still claims more items after {self.pages} pages ({self.offset} items, "
                f"announced total: {'none' if total is None else total}); stopping at the limit of "
                f"{MAX_PAGES} pages per list.",
                code="malformed_pagination",
                **context,
            )
        return fresh


# -- logging -------------------------------------------------------------------------------------------------


#: Level of the line of a successful read; a wait lowers it to DEBUG while it polls (:func:`polling`).
_READ_LOG_LEVEL: ContextVar[int] = ContextVar("nairi_read_log_level", default=logging.INFO)


class polling:  # (lower case: used as ``with polling():``, like the function it was)
    """Within it (this thread or asyncio task only), a successful read logs its answer line at DEBUG: a wait
    that polls every few seconds would otherwise log hundreds of identical lines an hour; its own lines say
    what changed (``WaitLog`` in ``resources/waiting.py``). A class, not a generator: it wraps every poll."""

    __slots__ = ("_token",)

    def __enter__(self) -> None:
        self._token = _READ_LOG_LEVEL.set(logging.DEBUG)

    def __exit__(self, *exc: object) -> None:
        _READ_LOG_LEVEL.reset(self._token)


def log_answer(
    config: ClientConfig, method: str, path: str, status: int, *, started: float, headers: Mapping[str, str]
) -> None:
    """One line per answer: call, status, time, request id (redacted, bounded). Never a body, never a request
    header.

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
        echoed(config, headers.get("X-Request-Id")) or "-",
        " (idempotent replay)" if headers.get("Idempotent-Replayed") == "true" else "",
    )
