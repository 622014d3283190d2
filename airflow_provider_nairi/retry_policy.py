"""A ready retry policy for Airflow 3.3+ (AIP-105): :class:`NairiRetryPolicy`.

Airflow 3.3 lets a task decide, per exception, whether to retry and after how long
(``BaseOperator(retry_policy=...)``, also in ``default_args``). This policy decides from the provider's error
classes (``docs/errors-and-retries.md#retry-policy-airflow-33``)::

    from airflow_provider_nairi.retry_policy import NairiRetryPolicy

    default_args = {"retries": 5, "retry_policy": NairiRetryPolicy()}

It is evaluated in the worker (Airflow never serializes it: the worker re-parses the DAG). On Airflow
before 3.3 there is no such API: building the policy raises ``AirflowOptionalProviderFeatureException``.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from airflow.providers.common.compat.sdk import AirflowOptionalProviderFeatureException

from airflow_provider_nairi.exceptions import NairiError, NairiRateLimitError

try:
    from airflow.sdk.definitions.retry_policy import RetryDecision, RetryPolicy

    RETRY_POLICIES = True
except ImportError:  # Airflow < 3.3
    RetryPolicy = object  # type: ignore[assignment,misc]
    RETRY_POLICIES = False

#: The longest ``Retry-After`` the policy waits by default: Airflow applies the delay it returns exactly,
#: without ``max_retry_delay``.
DEFAULT_MAX_DELAY = timedelta(minutes=15)
#: common.ai's terminal managed-agent errors (``docs/common-ai.md``), matched by name: no import of common.ai.
TERMINAL_BY_NAME = frozenset({"ManagedAgentInvocationError", "ManagedAgentRejected"})


def nairi_error_of(exception: BaseException, depth: int = 5) -> NairiError | None:
    """The :class:`NairiError` behind ``exception``: itself, or the cause an operator chained it to (the
    provider's operators raise ``AirflowException(...) from error``)."""
    for _ in range(depth):
        if isinstance(exception, NairiError):
            return exception
        cause = exception.__cause__ or exception.__context__
        if cause is None:
            return None
        exception = cause
    return None


class NairiRetryPolicy(RetryPolicy):
    """Retry what can succeed later, fail at once what cannot, and wait what the server asks.

    - A Nairi error that retrying cannot fix (``retryable`` false: 400, 401, 403, 404, 409, 413, 422, TLS,
      configuration; common.ai's ``ManagedAgentInvocationError`` and ``ManagedAgentRejected``): **fail**, no
      retries spent. (The provider's operators already fail these with ``AirflowFailException``; the policy
      adds the same for Nairi errors raised by your own ``@task`` code with ``NairiHook``.)
    - 429 with ``Retry-After``: **retry after that delay**, at most ``max_delay``.
    - Any other retryable Nairi error (429 without ``Retry-After``, 5xx, network, checksum): **retry** with
      the task's own ``retry_delay`` / exponential backoff.
    - Anything else: Airflow's default behaviour.

    A retry never goes beyond the task's ``retries``.

    :param max_delay: the longest ``Retry-After`` honoured (default 15 minutes); a longer one is cut to it.
    """

    def __init__(self, max_delay: timedelta = DEFAULT_MAX_DELAY) -> None:
        if not RETRY_POLICIES:
            raise AirflowOptionalProviderFeatureException(
                "NairiRetryPolicy needs Airflow 3.3+ (retry policies, AIP-105); before 3.3 the provider's "
                "operators already fail final errors at once and let Airflow retry the others."
            )
        if max_delay <= timedelta(0):
            raise ValueError(f"max_delay must be positive, got {max_delay!r}")
        self.max_delay = max_delay

    def evaluate(
        self, exception: BaseException, try_number: int, max_tries: int, context: Any = None
    ) -> RetryDecision:
        error = nairi_error_of(exception)
        if error is None:
            if type(exception).__name__ in TERMINAL_BY_NAME:
                return RetryDecision.fail(f"{type(exception).__name__}: retrying cannot fix it")
            return RetryDecision.default()
        if not error.retryable:
            return RetryDecision.fail(f"Nairi {type(error).__name__} ({error.code}): retrying cannot fix it")
        if isinstance(error, NairiRateLimitError) and error.retry_after:
            delay = min(timedelta(seconds=float(error.retry_after)), self.max_delay)
            return RetryDecision.retry(delay, f"Nairi rate limit: Retry-After {error.retry_after:g} s")
        return RetryDecision.retry(None, f"transient Nairi {type(error).__name__}")

    def serialize(self) -> dict[str, Any]:
        return {"max_delay": self.max_delay.total_seconds()}

    @classmethod
    def deserialize(cls, data: dict[str, Any]) -> NairiRetryPolicy:
        return cls(timedelta(seconds=float(data["max_delay"])))
