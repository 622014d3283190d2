"""Ask one agent many questions in parallel: dynamic task mapping over prompts.

Each prompt becomes one mapped task instance with its own conversation (and its own idempotency key: the map
index is part of it, so a retried instance never duplicates or steals another's conversation). The replies are
gathered downstream in prompt order.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import dag, task

from airflow_provider_nairi.operators.agents import NairiAgentOperator
from airflow_provider_nairi.operators.conversation import NairiStartConversationOperator

AGENT = "airflow-example-helper"
PROMPTS = [
    "Summarise yesterday's failed tasks.",
    "Which DAG has the longest queue time?",
    "Suggest one pool to resize.",
]


@dag(
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    tags=["nairi", "example"],
)
def nairi_mapped_prompts():
    agent = NairiAgentOperator(
        task_id="ensure_agent",
        name=AGENT,
        instructions="You help data engineers. Answer in three short bullet points.",
    )
    answers = NairiStartConversationOperator.partial(
        task_id="ask", agent_id=agent.output["id"], poll_interval=1, timeout=600
    ).expand(message=PROMPTS)

    @task
    def collect(results: list[dict | None]) -> list[str]:
        # A mapped instance a user marked success while it waited returned nothing: None in the list.
        replies = [result["reply"] if result else "(no reply: marked success by hand)" for result in results]
        for prompt, reply in zip(PROMPTS, replies, strict=True):
            print(f"{prompt} -> {reply.splitlines()[0]}")
        return replies

    collect(answers.output)


nairi_mapped_prompts()
