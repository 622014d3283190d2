"""Trigger events: the JSON dicts every wait of the provider ends in, and the statuses of remote work.

An event is ``{"status", "kind", "id", "message", "resource", "error"}`` (:func:`make_event`): ``status`` is
one of :data:`EVENT_STATUSES`, ``resource`` the last snapshot (slimmed by the resource's module), ``error`` an
error summary (:func:`error_summary`) or the API's ``{code, message}`` of failed work. The Airflow outcome of
an event is :func:`airflow_provider_nairi.outcomes.raise_for_event`'s business.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import Enum
from typing import Any, TypeVar

from airflow_provider_nairi.exceptions import NairiError, NairiServerError

#: Event statuses. ``success``: the remote work ended well; ``failed``: it ended in error (the remote error is
#: in ``error``); ``cancelled``: someone cancelled it; ``timeout``: the deadline passed first; ``error``:
#: polling itself failed (API error, or too many transient errors in a row; summary in ``error``).
SUCCESS = "success"
FAILED = "failed"
CANCELLED = "cancelled"
TIMEOUT = "timeout"
ERROR = "error"
EVENT_STATUSES = frozenset({SUCCESS, FAILED, CANCELLED, TIMEOUT, ERROR})

#: An event: a JSON dict built by :func:`make_event`.
Event = dict[str, Any]
S = TypeVar("S", bound="RemoteStatus")


class RemoteStatus(str, Enum):
    """Base of a resource's status enum. Each member is the API's status string and the event status it ends
    in (``None``: still working), so the member knows :attr:`is_terminal` and :attr:`is_success`."""

    event_status: str | None

    def __new__(cls: type[S], value: str, event_status: str | None = None) -> S:
        member = str.__new__(cls, value)
        member._value_ = value
        member.event_status = event_status
        return member

    @property
    def is_terminal(self) -> bool:
        """The remote work has ended (well or not)."""
        return self.event_status is not None

    @property
    def is_success(self) -> bool:
        """The remote work has ended well."""
        return self.event_status == SUCCESS

    @classmethod
    def kind(cls) -> str:
        """The resource kind these statuses belong to (``ConversationStatus`` → ``conversation``)."""
        return cls.__name__.removesuffix("Status").lower()

    @classmethod
    def of(cls: type[S], snapshot: Mapping[str, Any]) -> S:
        """The status of an API snapshot.

        :raises NairiServerError: the status is not one the contract names (never trust the server): a
            malformed answer, retryable, so a wait spends its transient-error budget on it, then ends in an
            ``error`` event.
        """
        value = snapshot.get("status")
        member = cls._value2member_map_.get(value) if isinstance(value, str) else None
        if member is None:
            raise NairiServerError(
                f"unknown {cls.kind()} status {str(value)[:64]!r} for {cls.kind()} "
                f"{str(snapshot.get('id'))[:64]}; expected one of {', '.join(m.value for m in cls)}",
                code="malformed_answer",
            )
        return member  # type: ignore[return-value]  # (a member of cls; no cast(): a call per poll)

    @classmethod
    def terminal_states(cls) -> dict[str, str]:
        """``{API status: event status}`` of the terminal members."""
        return {member.value: member.event_status for member in cls if member.event_status is not None}


def error_summary(error: NairiError) -> dict[str, Any]:
    """A JSON summary of ``error`` for events and logs: type, HTTP status, code, text, request id, retryable.

    ``message`` is ``str(error)``, which the client has already redacted (it never holds the API key).
    """
    return {
        "type": type(error).__name__,
        "status": error.status,
        "code": error.code,
        "message": str(error),
        "request_id": error.request_id,
        "retryable": error.retryable,
    }


def make_event(
    status: str,
    *,
    kind: str,
    resource_id: str,
    message: str,
    resource: Mapping[str, Any] | None = None,
    error: Mapping[str, Any] | None = None,
) -> Event:
    """Build an event payload (JSON only); ``status`` must be one of :data:`EVENT_STATUSES`."""
    if status not in EVENT_STATUSES:
        raise ValueError(f"unknown event status {status!r}; expected one of {sorted(EVENT_STATUSES)}")
    return {
        "status": status,
        "kind": kind,
        "id": resource_id,
        "message": message,
        "resource": dict(resource) if resource is not None else None,
        "error": dict(error) if error is not None else None,
    }


def error_event(kind: str, resource_id: str, error: NairiError) -> Event:
    """The ``error`` event for a poll that failed with ``error``."""
    return make_event(
        ERROR,
        kind=kind,
        resource_id=resource_id,
        message=f"polling {kind} {resource_id} failed: {error}",
        error=error_summary(error),
    )


def timeout_event(kind: str, resource_id: str, message: str | None = None) -> Event:
    """The ``timeout`` event of a wait whose deadline passed first."""
    return make_event(
        TIMEOUT,
        kind=kind,
        resource_id=resource_id,
        message=message or f"{kind} {resource_id} had not ended at its deadline",
    )


def snapshot_event(status: RemoteStatus, resource: Mapping[str, Any]) -> Event | None:
    """The event a snapshot in ``status`` ends in, or ``None`` while it is still working.

    A ``failed`` snapshot's ``error`` (``{code, message}``) is carried into the event.
    """
    if status.event_status is None:
        return None
    kind, resource_id = status.kind(), str(resource.get("id"))
    remote_error = resource.get("error") or None
    if remote_error is not None and not isinstance(remote_error, Mapping):  # a server's slip: keep its text
        remote_error = {"message": str(remote_error)}
    if status.event_status == FAILED:
        code = remote_error.get("code") if remote_error else None
        text = remote_error.get("message") if remote_error else "no error given"
        message = f"{kind} {resource_id} failed: {code or 'error'}: {text}"
    elif status.event_status == CANCELLED:
        message = f"{kind} {resource_id} was cancelled (by someone else than this task)"
    else:
        message = f"{kind} {resource_id} is {status.value}"
    return make_event(
        status.event_status,
        kind=kind,
        resource_id=resource_id,
        message=message,
        resource=resource,
        error=remote_error,
    )
