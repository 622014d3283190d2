"""DAGs of the end-to-end harness's fault scenarios (``make e2e``; not examples).

Each asks the agent one question whose turn lasts ``params.delay`` seconds (the emulator's ``[[delay:S]]``
directive), titled with the run id so the harness can count that run's conversations in the emulator:

- ``nairi_e2e_deferred``: the wait runs in the triggerer (kill the triggerer, clear, mark failed);
- ``nairi_e2e_on_worker``: ``deferrable=False``, the wait polls on the worker, one retry (kill the worker).
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import Param, dag

from airflow_provider_nairi.operators.agents import NairiAgentOperator
from airflow_provider_nairi.operators.conversation import NairiStartConversationOperator

AGENT = "nairi-e2e-agent"
DEFAULTS = {
    "schedule": None,
    "start_date": pendulum.datetime(2026, 1, 1, tz="UTC"),
    "catchup": False,
    "tags": ["nairi", "e2e"],
    "params": {"delay": Param(20, type="integer", minimum=1, maximum=600)},
}


def conversation(deferrable: bool) -> None:
    agent = NairiAgentOperator(task_id="ensure_agent", name=AGENT, instructions="Answer in one line.")
    ask = NairiStartConversationOperator(
        task_id="ask",
        agent_name=AGENT,
        message="Take your time. [[delay:{{ params.delay }}]]",
        title="{{ run_id }}",
        deferrable=deferrable,
        poll_interval=1,
        timeout=600,
        retries=0 if deferrable else 1,
        retry_delay=timedelta(seconds=1),
    )
    agent >> ask


@dag(**DEFAULTS)
def nairi_e2e_deferred():
    conversation(deferrable=True)


@dag(**DEFAULTS)
def nairi_e2e_on_worker():
    conversation(deferrable=False)


nairi_e2e_deferred()
nairi_e2e_on_worker()
