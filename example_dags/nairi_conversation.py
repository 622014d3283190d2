"""Ask a Nairi agent, continue the thread, use the reply downstream.

1. make sure the agent exists (``NairiAgentOperator``: created once, left alone when it already matches);
2. start a conversation with it, found by name, and wait for its reply;
3. send a follow-up in the same thread and wait for that reply;
4. hand both replies to a Python task.

Whether the waits free the worker slot (deferrable, in the triggerer) or poll on the worker follows
``[operators] default_deferrable``. Run it offline: ``make demo`` (the local emulator) or
``airflow dags test nairi_conversation`` with ``nairi_default`` pointing at Nairi or at the emulator.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import Param, dag, task

from airflow_provider_nairi.operators.agents import NairiAgentOperator
from airflow_provider_nairi.operators.conversation import (
    NairiSendMessageOperator,
    NairiStartConversationOperator,
)

AGENT = "airflow-example-helper"


@dag(
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    tags=["nairi", "example"],
    params={"question": Param("Why is my nightly load late?", type="string")},
)
def nairi_conversation():
    agent = NairiAgentOperator(
        task_id="ensure_agent",
        name=AGENT,
        instructions="You help data engineers. Answer in three short bullet points.",
    )
    ask = NairiStartConversationOperator(
        task_id="ask",
        agent_name=AGENT,
        message="{{ params.question }}",
        title="Example run {{ run_id }}",
        metadata={"dag_run": "{{ run_id }}"},
        poll_interval=1,
        timeout=600,
    )
    follow_up = NairiSendMessageOperator(
        task_id="follow_up",
        conversation_id="{{ ti.xcom_pull(task_ids='ask', key='conversation_id') }}",
        message="Which one should I check first?",
        poll_interval=1,
        timeout=600,
    )

    @task
    def report(first: dict | None, second: dict | None) -> str:
        # A task a user marked success while it waited returned nothing: its result is None here.
        replies = [
            result["reply"] if result else "(no reply: marked success by hand)" for result in (first, second)
        ]
        text = "\n---\n".join(replies)
        print(f"=== Nairi agent replied ===\n{text}\n=== end of reply ===")
        return text

    agent >> ask >> follow_up
    report(ask.output, follow_up.output)


nairi_conversation()
