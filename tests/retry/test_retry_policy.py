"""NairiRetryPolicy (Airflow 3.3+, AIP-105): final errors fail at once, Retry-After becomes the delay
(capped), other transient errors retry with the task's own delay; absent before 3.3 with a clear error."""

from __future__ import annotations

from datetime import timedelta

import pytest
from airflow.providers.common.compat.sdk import AirflowException, AirflowOptionalProviderFeatureException

from airflow_provider_nairi import exceptions as nx
from airflow_provider_nairi import retry_policy
from airflow_provider_nairi.outcomes import outcome_for_error


def chained(error):
    """What the provider's operators raise for ``error``: its Airflow outcome, chained to it."""
    try:
        raise outcome_for_error(error) from error
    except AirflowException as raised:
        return raised


@pytest.mark.skipif(retry_policy.RETRY_POLICIES, reason="Airflow 3.3+ has retry policies")
def test_before_airflow_3_3_the_policy_says_what_it_needs():
    with pytest.raises(AirflowOptionalProviderFeatureException, match=r"Airflow 3\.3"):
        retry_policy.NairiRetryPolicy()


needs_policies = pytest.mark.skipif(not retry_policy.RETRY_POLICIES, reason="retry policies are Airflow 3.3+")


@needs_policies
@pytest.mark.parametrize(
    ("error", "action", "delay"),
    [
        (chained(nx.NairiRateLimitError("slow down", retry_after=120)), "retry", timedelta(seconds=120)),
        (nx.NairiRateLimitError("slow down", retry_after=10**6), "retry", timedelta(minutes=15)),
        (chained(nx.NairiRateLimitError("slow down")), "retry", None),
        (chained(nx.NairiServerError("503", status=503)), "retry", None),
        (nx.NairiConnectionError("reset"), "retry", None),
        (nx.NairiAuthError("revoked", status=401), "fail", None),
        (nx.NairiNotFoundError("gone", status=404), "fail", None),
        (nx.NairiValidationError("bad", status=422), "fail", None),
        (nx.NairiConfigurationError("no key"), "fail", None),
        (ValueError("not ours"), "default", None),
        (AirflowException("not ours either"), "default", None),
    ],
)
def test_decisions(error, action, delay):
    decision = retry_policy.NairiRetryPolicy().evaluate(error, try_number=1, max_tries=5)
    assert (decision.action.value.lower(), decision.retry_delay) == (action, delay)


@needs_policies
def test_common_ai_terminal_errors_fail_and_the_cap_is_yours():
    cai = pytest.importorskip("airflow.providers.common.ai.exceptions")
    policy = retry_policy.NairiRetryPolicy(max_delay=timedelta(seconds=30))
    assert policy.evaluate(cai.ManagedAgentInvocationError("x"), 1, 3).action.value.lower() == "fail"
    assert policy.evaluate(nx.NairiRateLimitError("x", retry_after=90), 1, 3).retry_delay == timedelta(
        seconds=30
    )
    with pytest.raises(ValueError, match="positive"):
        retry_policy.NairiRetryPolicy(max_delay=timedelta(0))


@needs_policies
def test_an_operator_takes_it():
    from airflow_provider_nairi.operators.agents import NairiAgentOperator  # noqa: PLC0415

    policy = retry_policy.NairiRetryPolicy()
    operator = NairiAgentOperator(task_id="a", name="n", instructions="i", retries=3, retry_policy=policy)
    assert operator.retry_policy is policy
