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

Trigger events are plain JSON dicts built by :mod:`airflow_provider_nairi.resources.events` (re-exported here
under their old names: ``make_event``, ``error_event``, ``EVENT_STATUSES``...) and checked by
:func:`validate_event` before anything reads them. A wait on a worker ends in the same event as one in the
triggerer, and :func:`raise_for_event` turns either into the same outcome.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from typing import Any, NoReturn, TypeVar

from airflow.providers.common.compat.sdk import AirflowException, AirflowFailException, AirflowSkipException

from airflow_provider_nairi.exceptions import NairiError
from airflow_provider_nairi.resources.conversation import ConversationStatus
from airflow_provider_nairi.resources.events import (
    CANCELLED,
    ERROR,
    EVENT_STATUSES,
    FAILED,
    SUCCESS,
    TIMEOUT,
    RemoteStatus,
    error_event,
    error_summary,
    make_event,
    snapshot_event,
)
from airflow_provider_nairi.resources.video import VideoStatus

__all__ = [  # the event names moved to resources.events; their old import path keeps working
    "CANCELLED",
    "ERROR",
    "EVENT_STATUSES",
    "FAILED",
    "SUCCESS",
    "TERMINAL_STATES",
    "TIMEOUT",
    "airflow_outcome",
    "error_event",
    "error_summary",
    "event_for_resource",
    "make_event",
    "outcome_for_error",
    "raise_for_error",
    "raise_for_event",
    "validate_event",
]

#: The status enum of each resource kind.
STATUSES: dict[str, type[RemoteStatus]] = {"conversation": ConversationStatus, "video": VideoStatus}
#: Terminal remote states of each resource kind and the event status each one maps to (from the enums). A
#: state not listed (``queued``, ``running``, ``processing``) means "still working".
TERMINAL_STATES = {kind: statuses.terminal_states() for kind, statuses in STATUSES.items()}


def outcome_for_error(error: NairiError) -> AirflowException:
    """The Airflow exception for ``error``: ``AirflowFailException`` unless ``error.retryable``."""
    exception_class = AirflowException if error.retryable else AirflowFailException
    return exception_class(f"Nairi: {error}")


def raise_for_error(error: NairiError) -> NoReturn:
    """Raise the Airflow outcome of ``error`` (see the table above), chained to it."""
    raise outcome_for_error(error) from error


F = TypeVar("F", bound=Callable[..., Any])


def airflow_outcome(method: F) -> F:
    """Make a task method end the way the table above says; the one place a ``NairiError`` is translated.

    A :class:`~airflow_provider_nairi.exceptions.NairiError` becomes :func:`outcome_for_error`'s exception;
    with the task's ``soft_fail`` (sensors) any ``AirflowException`` becomes ``AirflowSkipException``.
    ``AirflowSkipException`` and ``TaskDeferred`` pass through. The bases apply it to ``execute``,
    ``resume_execution`` and ``poke``; a class applies it to its own resume targets (``execute_complete``...).
    Never apply it around Airflow's own poke/reschedule loop: it would turn a reschedule into a failure.
    """

    @functools.wraps(method)
    def translated(self: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            try:
                return method(self, *args, **kwargs)
            except NairiError as error:
                raise outcome_for_error(error) from error
        except AirflowSkipException:
            raise
        except AirflowException as error:
            if getattr(self, "soft_fail", False):
                raise AirflowSkipException(f"soft_fail: {error}") from error
            raise

    return translated  # type: ignore[return-value]


def event_for_resource(kind: str, resource: Mapping[str, Any]) -> dict[str, Any] | None:
    """The event a resource snapshot ends in, or ``None`` while it is still working.

    ``resource`` is the API's object (a Conversation, a Video): its ``status`` is read with the kind's enum
    (:data:`STATUSES`; an unknown status is a ``NairiServerError``); a ``failed`` one carries its ``error``.
    """
    return snapshot_event(STATUSES[kind].of(resource), resource)


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
