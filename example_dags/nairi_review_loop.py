"""A human reviews the agent's draft: approve, request changes (the next turn of the conversation), reject.

1. ``@task.nairi`` asks the agent for a draft;
2. ``nairi_review(...)`` (Airflow 3.1+) shows a reviewer the latest reply in Airflow's Required Actions page,
   with Approve, Request changes (free text) and Reject: "Request changes" sends the text to the agent as the
   next turn, waits for the revised reply and asks again (at most ``max_iterations`` rounds, each its own task
   showing the reply it asks about); "Reject" skips ``publish``; no worker slot is held while a human thinks;
3. ``publish`` gets the approved turn's conversation result.

Answer the review in the UI (Required Actions), or through the REST API
(``PATCH /api/v2/dags/nairi_review_loop/dagRuns/{run_id}/taskInstances/review.review_1/-1/hitlDetails``
with ``{"chosen_options": ["Request changes"], "params_input": {"changes": "Shorter, please."}}``).
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import Param, dag, task

from airflow_provider_nairi.operators.agents import NairiAgentOperator
from airflow_provider_nairi.operators.review import nairi_review

AGENT = "airflow-example-writer"


@dag(
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    tags=["nairi", "example"],
    params={"topic": Param("the provider's new typed replies", type="string")},
)
def nairi_review_loop():
    agent = NairiAgentOperator(
        task_id="ensure_agent",
        name=AGENT,
        instructions="You write short, friendly release notes.",
    )

    @task.nairi(agent_name=AGENT, poll_interval=1, timeout=600)
    def draft(params: dict | None = None) -> str:
        return f"Write a three-sentence release note about {params['topic']}."

    drafted = draft()
    review = nairi_review(
        conversation_id=drafted["conversation_id"],
        max_iterations=3,
        timeout=timedelta(days=1),
        poll_interval=1,
        reply_timeout=600,
    )

    @task
    def publish(approved: dict | None) -> None:
        if approved is not None:
            print(f"=== publishing turn {approved['turn']}: {approved['reply']} ===")

    agent >> drafted >> review
    publish(review.get_child_by_label("approved").output)


nairi_review_loop()
