"""The "your own operators" example of docs/operators.md, run as written against the emulator."""

from __future__ import annotations

import re
from pathlib import Path
from unittest import mock

import pytest
from airflow.providers.common.compat.sdk import AirflowException, AirflowFailException

from airflow_provider_nairi.exceptions import NairiNotFoundError, NairiServerError
from airflow_provider_nairi.hooks.nairi import NairiHook

DOC = Path(__file__).parents[2] / "docs" / "operators.md"
SECTION = DOC.read_text().split("## Your own operators")[1]


def documented_operator() -> type:
    (code,) = re.findall(r"```python\n(.*?)```", SECTION, re.DOTALL)
    namespace: dict = {}
    exec(code, namespace)
    return namespace["CountAgentsOperator"]


def test_the_documented_operator_counts_the_agents(nairi_emulator):
    hook = NairiHook()
    for name in ("alpha", "beta"):
        hook.client.create_agent(name, "be brief")
    operator = documented_operator()(task_id="count_agents")
    assert operator.execute(context={}) == 2


@pytest.mark.parametrize(
    ("error", "outcome"),
    [
        (NairiNotFoundError("no such agent", status=404, code="not_found"), AirflowFailException),
        (NairiServerError("bad gateway", status=502, code="server_error"), AirflowException),
    ],
)
def test_errors_of_run_become_airflow_outcomes(error, outcome):
    operator = documented_operator()(task_id="count_agents", conn_id="unused")
    with mock.patch.object(type(operator), "run", side_effect=error), pytest.raises(outcome) as info:
        operator.execute(context={})
    assert type(info.value) is outcome  # AirflowFailException is an AirflowException: pin the exact class
    assert str(error) in str(info.value)
