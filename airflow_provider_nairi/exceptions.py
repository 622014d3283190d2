"""The one error hierarchy of the provider.

Every failure the client sees becomes one of these classes, in one place (the client core). Operators, sensors
and triggers translate them into Airflow outcomes in one other place (:mod:`airflow_provider_nairi.outcomes`).

``str(error)`` names the call, the status, the code and the message, and ends with the request id when the
server gave one, as ``(request id req_...)``: in parentheses, because Airflow's CLI prints through rich, which
deletes text in square brackets. It never contains the API key: the client redacts it from everything it puts
into an error.

This module imports nothing from Airflow.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any


class NairiError(Exception):
    """Base class: any failure to get a valid answer from the Nairi API.

    :param message: what went wrong, in words a user can act on.
    :param status: HTTP status, or ``None`` when no answer arrived.
    :param code: the API's error code (``validation_error``, ``rate_limited``...), or a client-side code.
    :param request_id: ``meta.request_id`` / ``X-Request-Id`` of the failed answer, when there was one.
    :param details: the API's ``details`` list (for 422: ``{"field", "message"}`` items).
    :param method: HTTP method of the call that failed.
    :param path: API path of the call that failed (relative to the base URL, no query string).
    """

    #: Whether retrying the same call later can succeed (429, 5xx, network). Airflow retries apply to these;
    #: the others fail the task at once.
    retryable: bool = False

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: str | None = None,
        request_id: str | None = None,
        details: Sequence[Mapping[str, Any]] | None = None,
        method: str | None = None,
        path: str | None = None,
    ) -> None:
        self.message = message
        self.status = status
        self.code = code
        self.request_id = request_id
        self.details: list[dict[str, Any]] = [dict(d) for d in details or ()]
        self.method = method
        self.path = path
        super().__init__(message)

    @property
    def call(self) -> str | None:
        """``"POST /conversations"``: the call that failed, when known."""
        if self.method and self.path:
            return f"{self.method} {self.path}"
        return None

    def __str__(self) -> str:
        parts: list[str] = []
        if self.call:
            parts.append(f"{self.call}:")
        if self.status is not None or self.code:
            parts.append(" ".join(str(p) for p in (self.status, self.code) if p is not None) + ":")
        parts.append(self.message)
        for detail in self.details:
            field, text = detail.get("field"), detail.get("message")
            if field or text:
                parts.append(f"({field}: {text})" if field else f"({text})")
        if self.request_id:
            # In parentheses, not brackets: rich (airflow connections test) deletes "[...]" as markup.
            parts.append(f"(request id {self.request_id})")
        return " ".join(parts)

    def __reduce__(self) -> tuple[Any, ...]:
        # Keep keyword-only fields across pickling (multiprocessing, some executors).
        return (_rebuild, (type(self), self.message, self.__dict__))


def _rebuild(cls: type[NairiError], message: str, state: dict[str, Any]) -> NairiError:
    error = cls.__new__(cls)
    Exception.__init__(error, message)
    error.__dict__.update(state)
    return error


class NairiConfigurationError(NairiError):
    """The connection or a parameter is wrong before any request is sent (no key, agent key, bad URL...)."""


class NairiParameterError(NairiConfigurationError, ValueError):
    """An operator, sensor or trigger parameter out of range or of the wrong type (``nan``, ``inf``, zero
    or negative seconds, a count below 0, a string where a flag is expected), refused when the DAG file is
    parsed.

    Also a ``ValueError``, which is what these parameters raised before.
    """


class NairiXComSizeError(NairiConfigurationError):
    """A result too large for XCom (the metadata database); the message names the parameter that writes it
    elsewhere (``output_path``)."""


class NairiDestinationExistsError(NairiConfigurationError):
    """A download's destination already holds other content (or is a file where a folder is needed); nothing
    was written. The message names what exists and how to replace it (``overwrite=True``)."""


class NairiAuthError(NairiError):
    """401 (missing, invalid, revoked or agent key) or 403 (scope or workspace denied)."""


class NairiNotFoundError(NairiError):
    """404: no such resource in this org."""


class NairiConflictError(NairiError):
    """409: ``conversation_busy``, ``idempotency_key_reused`` or ``conflict``."""


class NairiValidationError(NairiError):
    """400 or 422: the request was malformed or a field is invalid; ``details`` names the fields."""

    @property
    def fields(self) -> list[str]:
        """Names of the fields the API rejected."""
        return [str(d["field"]) for d in self.details if d.get("field")]


class NairiPayloadTooLargeError(NairiError):
    """413: an upload over the server's size limit."""


class NairiRateLimitError(NairiError):
    """429 left after the client's own retries, or a ``Retry-After`` longer than the client will wait."""

    retryable = True

    def __init__(self, message: str, *, retry_after: float | None = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.retry_after = retry_after


class NairiServerError(NairiError):
    """5xx, or an answer that is not the contract's envelope (HTML from a proxy, truncated JSON...)."""

    retryable = True


class NairiConnectionError(NairiError):
    """No answer: DNS, refused or reset connection, TLS failure, timeout."""

    retryable = True


class NairiTLSError(NairiConnectionError):
    """TLS verification failed (unknown CA, wrong host name, expired certificate). Not retried: a retry fails
    alike. ``code`` is ``tls_error``; fix the CA bundle (``ca_bundle`` extra) or the host."""

    retryable = False


class NairiChecksumError(NairiError):
    """A download's bytes do not match the sha256 the API announced."""

    retryable = True


class NairiAnswerTooLargeError(NairiError):
    """A JSON answer larger than the connection's ``max_answer_bytes`` (counted after decoding): reading
    stopped at the cap. Not retried: the same call gets the same answer. The message says what to check."""


class NairiOutputError(NairiError):
    """The agent's reply is still not what ``output_type`` (or the branch choices) asks for after the repair
    turns: ``errors`` are the last validation errors (bounded), ``conversation_id`` and ``turn`` locate the
    reply. Final: Airflow retries do not apply (a retry would find the same conversation and its spent repair
    budget; see docs/ai-workflows.md). Raised by the operators and decorators with ``output_type`` or
    branch choices (:mod:`airflow_provider_nairi.resources.replies`)."""

    def __init__(
        self,
        message: str,
        *,
        errors: Sequence[str] = (),
        conversation_id: str | None = None,
        turn: int | None = None,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("code", "invalid_output")
        super().__init__(message, **kwargs)
        self.errors = list(errors)
        self.conversation_id = conversation_id
        self.turn = turn
