"""The waiting options every waiting operator and sensor shares, and their one default policy.

========================  ================================================================================
``deferrable``            wait in the triggerer. ``None`` (the default): ``[operators] default_deferrable``,
                          read when the task is built (:func:`resolve_deferrable`), in every class alike.
``poll_interval``         seconds between two checks. Default: the resource's (conversation 5, video 30).
                          Sensors: an alias of ``poke_interval``.
``timeout``               seconds the wait may take from its start, absolute across deferral. Operators:
                          ``None`` (no bound of its own; ``execution_timeout`` still applies). Sensors:
                          Airflow's ``timeout``.
``max_transient_errors``  retryable errors in a row, after the client's own retries, that the provider's own
                          waits (worker and trigger) tolerate. Default 5. A sensor's poke/reschedule loop is
                          Airflow's: a poke that fails fails the try, and ``retries`` apply.
``keep_on_timeout``       leave the remote work running at ``timeout``. Only where the task owns cancellable
                          work (start, send, run a scheduled job); videos cannot be cancelled.
========================  ================================================================================

The table is ``docs/operators.md#waiting``; the checks are
:class:`~airflow_provider_nairi.resources.waiting.WaitOptions`.
"""

from __future__ import annotations

from airflow.providers.common.compat.sdk import conf

from airflow_provider_nairi.validation import check_flag

#: The resource's default ``poll_interval``, in seconds.
CONVERSATION_POLL_INTERVAL = 5.0
VIDEO_POLL_INTERVAL = 30.0


def default_deferrable() -> bool:
    """``[operators] default_deferrable`` of the Airflow configuration (``False`` when unset)."""
    return bool(conf.getboolean("operators", "default_deferrable", fallback=False))


def resolve_deferrable(deferrable: bool | None) -> bool:
    """``deferrable`` as given, or, for ``None``, ``[operators] default_deferrable`` read now: when the task
    is built (in the DAG processor and again on the worker, so both see the deployment's setting)."""
    return default_deferrable() if deferrable is None else check_flag("deferrable", deferrable)
