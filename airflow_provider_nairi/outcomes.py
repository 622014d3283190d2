"""The one translation layer: Nairi errors, remote states and trigger events ─► Airflow outcomes.

Every operator, sensor and trigger of the provider goes through this module, so a given failure ends a task
the same way wherever it happens:

=================================================  ==============================================  =======
what happened                                      Airflow outcome                                 retries
=================================================  ==============================================  =======
401, 403, 404, 409, 413, 400/422, bad config       ``AirflowFailException`` (code, message, id)    no
429, 5xx, network (after the client's retries)     ``AirflowException``                            yes
remote work ``failed`` (agent turn, video)         ``AirflowException`` with the remote error      yes [#]_
remote work ``cancelled`` by someone else          ``AirflowFailException`` saying so              no
deadline passed                                    ``AirflowException`` saying how long it waited  yes [#]_
=================================================  ==============================================  =======

.. [#] ``final_on_failure=True`` makes it ``AirflowFailException``.
.. [#] sensors pass ``timeout_exception=AirflowSensorTimeout``.

Trigger events are plain JSON dicts built by :func:`make_event` (a ``status`` from :data:`EVENT_STATUSES`,
the resource ``kind`` and ``id``, a ``message``, the last ``resource`` snapshot, an ``error`` summary) and
checked by :func:`validate_event` before anything reads them. The same functions serve the synchronous
paths: a poll loop turns a snapshot into an event with :func:`event_for_resource` and the event into an
outcome with :func:`raise_for_event`, exactly as a deferred task does when it resumes.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NoReturn

from airflow.providers.common.compat.sdk import AirflowException, AirflowFailException

from airflow_provider_nairi.exceptions import NairiError

#: Event statuses. ``success``: the remote work ended well; ``failed``: it ended in error (the remote error is
#: in ``error``); ``cancelled``: someone cancelled it; ``timeout``: the deadline passed first; ``error``:
#: polling itself failed (API error, or too many transient errors in a row; summary in ``error``).
SUCCESS = "success"
FAILED = "failed"
CANCELLED = "cancelled"
TIMEOUT = "timeout"
ERROR = "error"
EVENT_STATUSES = frozenset({SUCCESS, FAILED, CANCELLED, TIMEOUT, ERROR})

#: Terminal remote states of each resource kind and the event status each one maps to. A state not listed
#: (``queued``, ``running``, ``processing``) means "still working".
TERMINAL_STATES: Mapping[str, Mapping[str, str]] = {
    "conversation": {"completed": SUCCESS, "failed": FAILED, "cancelled": CANCELLED},
    "video": {"ready": SUCCESS, "failed": FAILED},
}


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


def outcome_for_error(error: NairiError) -> AirflowException:
    """The Airflow exception for ``error``: ``AirflowFailException`` unless ``error.retryable``."""
    exception_class = AirflowException if error.retryable else AirflowFailException
    return exception_class(f"Nairi: {error}")


def raise_for_error(error: NairiError) -> NoReturn:
    """Raise the Airflow outcome of ``error`` (see the table above), chained to it."""
    raise outcome_for_error(error) from error


def make_event(
    status: str,
    *,
    kind: str,
    resource_id: str,
    message: str,
    resource: Mapping[str, Any] | None = None,
    error: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
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


def error_event(kind: str, resource_id: str, error: NairiError) -> dict[str, Any]:
    """The ``error`` event for a poll that failed with ``error``."""
    return make_event(
        ERROR,
        kind=kind,
        resource_id=resource_id,
        message=f"polling {kind} {resource_id} failed: {error}",
        error=error_summary(error),
    )


def event_for_resource(kind: str, resource: Mapping[str, Any]) -> dict[str, Any] | None:
    """The event a resource snapshot ends in, or ``None`` while it is still working.

    ``resource`` is the API's object (a Conversation, a Video): its ``status`` is looked up in
    :data:`TERMINAL_STATES`; its ``error`` (``{code, message}``) is carried into a ``failed`` event.
    """
    state = str(resource.get("status"))
    status = TERMINAL_STATES[kind].get(state)
    if status is None:
        return None
    resource_id = str(resource.get("id"))
    remote_error = resource.get("error") or None
    if remote_error is not None and not isinstance(remote_error, Mapping):  # a server's slip: keep its text
        remote_error = {"message": str(remote_error)}
    if status == FAILED:
        code = remote_error.get("code") if remote_error else None
        text = remote_error.get("message") if remote_error else "no error given"
        message = f"{kind} {resource_id} failed: {code or 'error'}: {text}"
    elif status == CANCELLED:
        message = f"{kind} {resource_id} was cancelled (by someone else than this task)"
    else:
        message = f"{kind} {resource_id} is {state}"
    return make_event(
        status, kind=kind, resource_id=resource_id, message=message, resource=resource, error=remote_error
    )


def validate_event(event: Any) -> dict[str, Any]:
    """Check that a trigger event is what :func:`make_event` builds; return it.

    :raises AirflowException: ``event`` is missing, not a dict, or has an unknown ``status`` (a trigger of
        another version, or a bug): the task fails, Airflow's retries apply.
    """
    if not isinstance(event, dict) or event.get("status") not in EVENT_STATUSES:
        raise AirflowException(
            f"Nairi: invalid trigger event {event!r}; expected a dict with a status in "
            f"{sorted(EVENT_STATUSES)}"
        )
    checked: dict[str, Any] = event
    return checked


def raise_for_event(
    event: Any,
    *,
    final_on_failure: bool = False,
    timeout_exception: type[AirflowException] = AirflowException,
) -> dict[str, Any]:
    """Return a ``success`` event; raise the Airflow outcome of any other (see the table above).

    :param final_on_failure: a ``failed`` remote work fails the task without Airflow retries.
    :param timeout_exception: what a ``timeout`` raises (sensors: ``AirflowSensorTimeout``).
    """
    checked = validate_event(event)
    status = checked["status"]
    if status == SUCCESS:
        return checked
    message = f"Nairi: {checked.get('message')}"
    if status == FAILED:
        raise (AirflowFailException if final_on_failure else AirflowException)(message)
    if status == CANCELLED:
        raise AirflowFailException(message)
    if status == TIMEOUT:
        raise timeout_exception(message)
    error = checked.get("error") or {}
    raise (AirflowException if error.get("retryable") else AirflowFailException)(message)
