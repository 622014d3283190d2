"""The synchronous Nairi client: one reused ``requests.Session``, retries by tenacity, streaming transfers.

What a caller can rely on:

- Every call is retried after 429, 5xx, malformed answers, connection errors and timeouts, at most
  ``max_retries`` times and within ``retry_total_timeout`` seconds, waiting ``Retry-After`` when the server
  sends one (a longer one than ``retry_max_wait`` fails at once with NairiRateLimitError) and else backing off
  exponentially with jitter. 400/401/403/404/409/413/422 are never retried.
- Every POST carries an ``Idempotency-Key`` chosen before the first try; all retries reuse it.
- Redirects are never followed (the key must not reach another host): a 3xx raises NairiError naming the
  hosts.
- Every client of one key in the process shares its rate budget (:mod:`.budget`): calls are spaced by the
  ``X-RateLimit-*`` headers, and a 429 or a used-up window holds them all until ``Retry-After`` or the reset
  (a longer hold than ``retry_max_wait`` fails at once with NairiRateLimitError).
- Each try has a total deadline, ``request_timeout``: a JSON answer whose body trickles or never ends is
  cut off (a retryable NairiConnectionError), and its size is capped at ``max_answer_bytes`` after
  decoding (NairiAnswerTooLargeError), while it is read.
- Nothing logs a body or a header that holds the key; the key is redacted from every error.

Imports no Airflow.
"""

from __future__ import annotations

import hashlib
import http.cookiejar
import logging
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import requests
import urllib3

from airflow_provider_nairi.client.api import DownloadTarget, NairiApi, UploadSource
from airflow_provider_nairi.client.budget import PROCESS_BUDGETS, SHORTEST_WAIT, BudgetedClient, RateBudget
from airflow_provider_nairi.client.config import ClientConfig
from airflow_provider_nairi.client.protocol import (
    DEFAULT_PAGE_SIZE,
    AnswerBody,
    Envelope,
    PageCursor,
    RateLimit,
    Shape,
    api_url,
    call_with_retries,
    deadline_error,
    log_answer,
    parse_response,
    rate_limit_wait,
    request_headers,
    transport_error,
)
from airflow_provider_nairi.client.transfer import (
    CHUNK_SIZE,
    MultipartBody,
    body_position,
    download_target,
    etag_sha256,
    verify_sha256,
)
from airflow_provider_nairi.exceptions import NairiConnectionError, NairiError, NairiServerError

log = logging.getLogger("airflow_provider_nairi.client")

#: Seconds a thread waits before asking again while another one's first request probes the key's budget.
PROBE_WAIT = 0.05

#: requests exceptions after which no answer arrived and a retry can succeed.
_TRANSIENT = (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError)


class _OwnHeadersOnly(requests.auth.AuthBase):
    """requests' auth hook, left empty: the key travels in each call's own headers. Passing it with every
    request keeps requests (``trust_env``) from putting ``~/.netrc`` credentials for the API host into
    ``Authorization``, over a bearer key or beside an X-API-Key."""

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        return request


_OWN_HEADERS_ONLY = _OwnHeadersOnly()


def new_session(config: ClientConfig) -> requests.Session:
    """A session with the config's TLS verification, proxies and User-Agent (the key is added per request).
    It keeps no cookies, as the async client's shared session (the API uses none)."""
    session = requests.Session()
    session.cookies.set_policy(http.cookiejar.DefaultCookiePolicy(allowed_domains=[]))
    session.verify = config.verify
    if config.proxies:
        session.proxies.update(config.proxies)
    session.headers["User-Agent"] = config.user_agent
    return session


@dataclass
class _Progress:
    """How far one download got: bytes written, their running sha256, the ETag and file size announced
    (``expected_size``: what the caller announced, kept across a restart)."""

    expected_size: int | None = None
    written: int = 0
    digest: Any = field(default_factory=hashlib.sha256)
    etag: str | None = None
    size: int | None = None

    def __post_init__(self) -> None:
        self.size = self.expected_size

    def restart(self, file: Any, start: int) -> None:
        """Forget what was written (``file`` back to ``start``): the next try asks for the whole file."""
        file.seek(start)
        file.truncate()
        self.written, self.digest, self.etag, self.size = 0, hashlib.sha256(), None, self.expected_size


class NairiClient(BudgetedClient, NairiApi):
    """Synchronous client of the Nairi API; see the module docstring for retries, redirects and rate limits.

    :param config: a validated :class:`ClientConfig`.
    :param session: a session to use instead of a new one (tests, connection sharing).
    :param sleep: how to wait between tries (tests pass a recorder).
    :param budget: the key's rate budget; by default the one this process's clients of the key share.
    """

    def __init__(
        self,
        config: ClientConfig,
        *,
        session: requests.Session | None = None,
        sleep: Callable[[float], None] = time.sleep,
        budget: RateBudget | None = None,
    ) -> None:
        self.config = config
        self.session = session or new_session(config)
        self._sleep = sleep
        self._rate_limit: RateLimit | None = None
        self.budget = budget or PROCESS_BUDGETS.for_key(config.base_url, config.api_key)
        self._waited_until = 0.0  # the end of the pause this client's own 429 caused (its retry waits it out)

    def close(self) -> None:
        self.session.close()

    def __enter__(self) -> NairiClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def rate_limit(self) -> RateLimit | None:
        return self._rate_limit

    # -- primitives ------------------------------------------------------------------------------------------

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        idempotency_key: str | None = None,
        expect: Shape | None = None,
    ) -> Any:
        return self._call(
            method, path, params=params, json=json, idempotency_key=idempotency_key, expect=expect
        ).data

    def paginate(
        self, path: str, params: Mapping[str, Any] | None = None, page_size: int = DEFAULT_PAGE_SIZE
    ) -> Iterator[dict[str, Any]]:
        cursor = PageCursor(params, page_size)  # validates page_size now, not at the first next()
        return self._pages(path, cursor)

    def _pages(self, path: str, cursor: PageCursor) -> Iterator[dict[str, Any]]:
        while not cursor.done:
            envelope = self._call("GET", path, params=cursor.params(), expect="list")
            yield from cursor.accept(envelope, method="GET", path=path)

    def upload(
        self,
        path: str,
        source: UploadSource,
        fields: Mapping[str, str],
        *,
        idempotency_key: str | None = None,
    ) -> Any:
        body = MultipartBody(source, fields, fields.get("name"))
        return self._call(
            "POST",
            path,
            data=body,
            extra_headers={"Content-Type": body.content_type},
            idempotency_key=idempotency_key,
            expect="object",
        ).data

    def download(
        self,
        path: str,
        destination: DownloadTarget,
        *,
        expected_sha256: str | None = None,
        expected_size: int | None = None,
    ) -> int:
        with download_target(destination) as file:
            return self._download_into(path, file, expected_sha256, expected_size)

    # -- internals -------------------------------------------------------------------------------------------

    def _call(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        data: Any = None,
        extra_headers: Mapping[str, str] | None = None,
        idempotency_key: str | None = None,
        expect: Shape | None = None,
    ) -> Envelope:
        headers = {**request_headers(self.config, method, idempotency_key), **(extra_headers or {})}

        def attempt() -> Envelope:
            response, deadline = self._exchange(method, path, headers, params=params, json=json, data=data)
            return parse_response(
                self.config,
                response.status_code,
                response.headers,
                self._read_answer(response, deadline, method, path),
                method=method,
                path=path,
                expect=expect,
            )

        envelope = call_with_retries(self.config, attempt, self._sleep)
        self.last_answer = (method, path, envelope.request_id)
        return envelope

    def _exchange(
        self,
        method: str,
        path: str,
        headers: Mapping[str, str],
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        data: Any = None,
    ) -> tuple[requests.Response, float]:
        """One try up to the answer's headers: wait for this call's turn in the key's budget, send, record
        the rate limit, log; no status check. Returns the answer, its body not read yet, and the try's
        deadline (``request_timeout`` from the send; until the headers, each wait is at most ``read_timeout``
        and the deadline)."""
        rate_limit_wait(self._rate_limit, self.config)  # raises if the window resets after retry_max_wait
        self._take_turn()
        started, sent_at = time.monotonic(), time.time()
        deadline = started + self.config.request_timeout
        answered = False
        try:
            response = self.session.request(
                method,
                api_url(self.config, path),
                params=params,
                json=json,
                data=data,
                headers=headers,
                auth=_OWN_HEADERS_ONLY,
                timeout=(
                    min(self.config.connect_timeout, self.config.request_timeout),
                    min(self.config.read_timeout, self.config.request_timeout),
                ),
                # Per request, not only on the session: requests lets REQUESTS_CA_BUNDLE and HTTPS_PROXY from
                # the environment override a session's settings.
                verify=self.config.verify,
                # A copy: requests adds the environment's proxies into the dict it is given.
                proxies=dict(self.config.proxies) if self.config.proxies else None,
                allow_redirects=False,
                stream=True,
            )
        except requests.exceptions.SSLError as exc:
            raise transport_error(self.config, exc, method=method, path=path, tls=True) from None
        except _TRANSIENT as exc:
            if time.monotonic() >= deadline:
                raise deadline_error(self.config, method=method, path=path) from None
            raise transport_error(self.config, exc, method=method, path=path) from None
        except requests.RequestException as exc:
            raise NairiError(
                self.config.redact(str(exc)), code="request_error", method=method, path=path
            ) from None
        else:
            answered = True
        finally:
            if not answered:
                self.budget.record(time.time(), None, answered=False)
        self._record_in(self.budget, response.status_code, response.headers, sent_at)
        log_answer(self.config, method, path, response.status_code, started=started, headers=response.headers)
        return response, deadline

    def _read_answer(self, response: requests.Response, deadline: float, method: str, path: str) -> bytes:
        """The body of a JSON answer, read by :class:`AnswerBody` (decoded, capped) before ``deadline``.

        Reads what each ``recv`` brings (``read1``), with the socket's timeout lowered to the time left, so
        a trickling body ends at the deadline, give or take one read. The connection goes back to the pool
        once the body has ended; it is closed on any error."""
        raw = response.raw
        try:
            answer = AnswerBody(
                self.config, response.headers, status=response.status_code, method=method, path=path
            )
            sock = getattr(raw.connection, "sock", None)
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise deadline_error(self.config, method=method, path=path, received=answer.size)
                if sock is not None:
                    sock.settimeout(min(self.config.read_timeout, left))
                try:
                    chunk = raw.read1(CHUNK_SIZE, decode_content=False)
                except urllib3.exceptions.HTTPError as exc:
                    if time.monotonic() >= deadline:
                        raise deadline_error(
                            self.config, method=method, path=path, received=answer.size
                        ) from None
                    raise transport_error(self.config, exc, method=method, path=path) from None
                if not chunk:
                    return answer.body()
                answer.feed(chunk)
        except BaseException:
            response.close()
            raise

    def _take_turn(self) -> None:
        """Wait for this call's slot in the key's budget (and any pause recorded meanwhile)."""
        if not self._waited_until and self.budget.go_now(time.time()):  # a key with headroom: go at once
            return
        while (ticket := self.budget.reserve(now := max(time.time(), self._waited_until))) is None:
            # another thread's first request is learning the key's limit
            self._sleep(min(PROBE_WAIT, self.budget.probe_wait(time.time())) or PROBE_WAIT)
        self._waited_until = 0.0
        self.budget.check_pause(now, self.config.retry_max_wait)
        while (wait := self.budget.due(ticket) - now) > SHORTEST_WAIT:
            if wait >= 1:
                log.info("Nairi rate limit: waiting %.1f s for this key's turn.", wait)
            self._sleep(wait)
            now = max(time.time(), now + wait)  # (a test's recorded sleep takes no time)

    def _download_into(
        self, path: str, file: Any, expected_sha256: str | None, expected_size: int | None
    ) -> int:
        """Stream into ``file``; after a broken connection, ask for the rest with ``Range`` (retry rules
        apply)."""
        start = file.tell() if file.seekable() else 0
        state = _Progress(expected_size)
        headers = request_headers(self.config, "GET", None)
        headers["Accept"] = "*/*"
        headers["Accept-Encoding"] = "identity"  # byte counts and ranges are those of the file itself
        call_with_retries(
            self.config, lambda: self._download_once(path, file, start, headers, state), self._sleep
        )
        verify_sha256(state.digest, [state.etag, expected_sha256], method="GET", path=path)
        return state.written

    def _download_once(
        self, path: str, file: Any, start: int, headers: dict[str, str], state: _Progress
    ) -> None:
        asked = state.written
        range_headers = {**headers, "Range": f"bytes={asked}-"} if asked else headers
        response, deadline = self._exchange("GET", path, range_headers)
        with response:
            if response.status_code >= 300:
                parse_response(
                    self.config,
                    response.status_code,
                    response.headers,
                    self._read_answer(response, deadline, "GET", path),
                    method="GET",
                    path=path,
                )
            try:
                offset, size = body_position(
                    response.status_code, response.headers, asked, state.size, path=path
                )
            except NairiServerError:
                if file.seekable():  # the next try starts from zero
                    state.restart(file, start)
                raise
            if offset != asked:
                # The server sent the whole file again: start over.
                if not file.seekable():
                    raise NairiServerError(
                        "the server ignored Range on a resumed download into an unseekable file.",
                        code="range_ignored",
                        method="GET",
                        path=path,
                    )
                state.restart(file, start)
            state.size = size
            state.etag = state.etag or etag_sha256(response.headers.get("ETag"))
            try:
                for chunk in response.iter_content(CHUNK_SIZE):
                    if state.size is not None and state.written + len(chunk) > state.size:
                        if file.seekable():
                            state.restart(file, start)
                        raise NairiServerError(
                            f"the body is longer than the {state.size} bytes announced.",
                            code="size_mismatch",
                            method="GET",
                            path=path,
                        )
                    file.write(chunk)
                    state.digest.update(chunk)
                    state.written += len(chunk)
            except _TRANSIENT as exc:
                error: NairiConnectionError = transport_error(self.config, exc, method="GET", path=path)
                log.warning("Nairi download broke after %d bytes; resuming with Range.", state.written)
                raise error from None
            if state.size is not None and state.written < state.size:
                log.warning("Nairi download ended after %d of %d bytes; resuming.", state.written, state.size)
                raise NairiServerError(
                    f"the body ended after {state.written} of the {state.size} bytes announced.",
                    code="incomplete_body",
                    method="GET",
                    path=path,
                )
