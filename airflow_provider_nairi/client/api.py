"""The two API objects: :class:`NairiApi` (sync) and :class:`AsyncNairiApi`, the same endpoints over two I/O
stacks.

Both take their endpoints from one table, :class:`~airflow_provider_nairi.client.endpoints.Endpoints` (see
there for what every endpoint shares: answers, retries, idempotency keys); each says only how a
:class:`~airflow_provider_nairi.client.endpoints.Call` is sent, over a few primitives its client implements:
``NairiClient`` (requests) and ``AsyncNairiClient`` (aiohttp, imported only where it is used).

Pure: imports no Airflow.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Iterator, Mapping
from typing import Any, TypeVar

from airflow_provider_nairi.client.endpoints import (
    AsyncTransport,
    Call,
    DownloadTarget,
    Endpoints,
    SyncTransport,
    UploadSource,
)
from airflow_provider_nairi.client.protocol import DEFAULT_PAGE_SIZE, Envelope, RateLimit, Shape

__all__ = ["AsyncNairiApi", "DownloadTarget", "NairiApi", "UploadSource"]

T = TypeVar("T")


class NairiApi(Endpoints, SyncTransport):
    """Every endpoint of ``nairi-api.md`` (:class:`~airflow_provider_nairi.client.endpoints.Endpoints`), sent
    over ``request``, ``paginate``, ``upload`` and ``download``; list endpoints are lazy iterators."""

    #: ``(method, path, request id)`` of the latest answer read, for errors about what it held.
    last_answer: tuple[str, str, str | None] | None = None

    def send(self, call: Call[T]) -> T:
        if call.pages:
            return self.paginate(call.path, call.params)  # type: ignore[return-value]
        if call.upload is not None:
            data = self.upload(
                call.path, call.upload.source, call.upload.fields, idempotency_key=call.idempotency_key
            )
            return call.result(data)
        if call.download is not None:
            target = call.download
            written = self.download(
                call.path,
                target.target,
                expected_sha256=target.expected_sha256,
                expected_size=target.expected_size,
            )
            return written  # type: ignore[return-value]
        return call.result(self.request(call.method, call.path, **call.request_options()))

    # -- primitives ------------------------------------------------------------------------------------------

    @abstractmethod
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
        """Send one call and return the envelope's ``data`` (None for a 204).

        Errors are ``NairiError`` subclasses. Retried on 429, 5xx, connection errors, timeouts and malformed
        answers (``docs/errors-and-retries.md``). A POST carries an Idempotency-Key (``idempotency_key`` or a
        fresh uuid4) reused by all its retries; PUT, PATCH, DELETE and GET carry none. ``expect``: the shape
        ``data`` must have, ``"object"`` or ``"list"`` (of objects); another one (a 204 included) is a
        malformed answer, ``NairiServerError``.
        """

    @abstractmethod
    def paginate(
        self, path: str, params: Mapping[str, Any] | None = None, page_size: int = DEFAULT_PAGE_SIZE
    ) -> Iterator[dict[str, Any]]:
        """Lazy iterator over every item of a list endpoint, de-duplicated by ``id``.

        Nothing is sent until the first item is asked for; pages of ``page_size`` (1 to 200) advance
        ``offset`` by the items received, so N items cost ceil(N / page_size) requests. Each page is
        retried on 429, 5xx and connection errors (``docs/errors-and-retries.md``). A page claiming
        ``has_more`` but empty raises ``NairiServerError``.
        """

    @abstractmethod
    def upload(
        self,
        path: str,
        source: UploadSource,
        fields: Mapping[str, str],
        *,
        idempotency_key: str | None = None,
    ) -> Any:
        """POST ``source`` (path, seekable binary file or ``ObjectStoragePath``) as the multipart part
        ``file`` with ``fields``; return ``data``.

        Streamed in 1 MiB chunks with a precomputed ``Content-Length`` (constant memory). Retried on 429,
        5xx and connection errors (``docs/errors-and-retries.md``). Each retry re-reads the source from its
        start and reuses the same Idempotency-Key (``idempotency_key`` or a fresh one); for uploads the key
        and path alone decide a replay.
        """

    @abstractmethod
    def download(
        self,
        path: str,
        destination: DownloadTarget,
        *,
        expected_sha256: str | None = None,
        expected_size: int | None = None,
    ) -> int:
        """Stream the raw bytes of ``path`` to ``destination`` (a path or a binary file object); return the
        number of bytes.

        A path is written to a temporary file beside it, renamed over it only once verified, removed on
        failure. After a broken connection the rest is asked for with ``Range``: a 206 continues only when
        its ``Content-Range`` starts at the byte asked for and announces the same file size (anything else
        restarts from zero on the next try); a 200 restarts. The byte count must equal the size announced
        (``expected_size``, ``Content-Length``, the ``Content-Range`` total): a body that ends early is
        resumed, a longer one or sizes that disagree raise ``NairiServerError`` (``size_mismatch``). The
        sha256 of all bytes is checked against ``ETag`` and ``expected_sha256``: a mismatch raises
        ``NairiChecksumError`` (retryable by Airflow). Retried on 429, 5xx and connection errors
        (``docs/errors-and-retries.md``).
        """

    @property
    @abstractmethod
    def rate_limit(self) -> RateLimit | None:
        """``RateLimit(limit, remaining, reset)`` from the latest answer's ``X-RateLimit-*`` headers; None
        before the first call.
        """


class AsyncNairiApi(Endpoints, AsyncTransport):
    """The same endpoints as :class:`NairiApi`, awaited: ``await api.get_conversation(id)``; list endpoints
    return every page as a list. Uploads and downloads are the sync client's only."""

    async def send(self, call: Call[T]) -> T:
        if call.pages:
            return await self.paginate(call.path, call.params)  # type: ignore[return-value]
        envelope = await self.request_envelope(  # (not through request: one coroutine less per poll)
            call.method,
            call.path,
            params=call.params,
            json=call.json,
            idempotency_key=call.idempotency_key,
            expect=call.expect,
        )
        return call.result(envelope.data)

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        idempotency_key: str | None = None,
        expect: Shape | None = None,
    ) -> Any:
        """:meth:`NairiApi.request`, awaited (non-blocking retry waits)."""
        envelope = await self.request_envelope(
            method, path, params=params, json=json, idempotency_key=idempotency_key, expect=expect
        )
        return envelope.data

    @abstractmethod
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
        """:meth:`request`, returning the whole answer: the :class:`Envelope` (``data``, the list's
        ``pagination``, the request id)."""

    @abstractmethod
    async def paginate(
        self, path: str, params: Mapping[str, Any] | None = None, page_size: int = DEFAULT_PAGE_SIZE
    ) -> list[dict[str, Any]]:
        """Every item of a list endpoint, all pages read before returning, de-duplicated by ``id``."""
