"""Let an agent choose the path: ``@task.nairi_branch``, unmapped and inside ``.expand()``.

1. ``triage`` (unmapped): the agent reads the batch note and chooses ``urgent`` or ``routine`` (the other is
   skipped);
2. ``route`` (a task group mapped over the documents): for each document, ``classify`` lets the agent choose
   one or several of ``route.invoice``, ``route.contract``, ``route.other``; each mapped instance skips only
   its own tasks that were not chosen (they are mapped with it, in the same group);
3. a reply that names no downstream task gets a repair turn listing the choices (``max_repair_turns``).

The agent is told the choices (the real task ids) in the first message; its reply is exactly one task id or
a JSON list of them. Run it offline against the emulator with documents that script its replies
(``[[replies:["route.invoice"]]]``, docs/emulator.md).
"""

from __future__ import annotations

import pendulum
from airflow.sdk import Param, dag, task, task_group

from airflow_provider_nairi.operators.agents import NairiAgentOperator

AGENT = "airflow-example-router"
DOCUMENTS = [
    "Invoice 42 from ACME: 12.30 EUR due in 30 days.",
    "Master services agreement between ACME and Example Ltd, signed 2026-01-05.",
    "Invoice 43 and the contract amendment it refers to.",
]


@dag(
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    tags=["nairi", "example"],
    params={
        "documents": Param(DOCUMENTS, type="array"),
        "batch_note": Param("Three documents arrived overnight; none is marked urgent.", type="string"),
    },
)
def nairi_agent_branching():
    agent = NairiAgentOperator(
        task_id="ensure_agent",
        name=AGENT,
        instructions="You route business documents to the team that handles them.",
    )

    @task.nairi_branch(agent_name=AGENT, poll_interval=1, timeout=600)
    def triage(params: dict | None = None) -> str:
        return f"Is this batch urgent or routine?\n\n{params['batch_note']}"

    @task
    def urgent() -> None:
        print("=== paging the on-call team ===")

    @task
    def routine() -> None:
        print("=== queued for the morning ===")

    @task
    def documents(params: dict | None = None) -> list[str]:
        return list(params["documents"])

    @task_group
    def route(document: str) -> None:
        @task.nairi_branch(agent_name=AGENT, poll_interval=1, timeout=600)
        def classify(document: str) -> dict:
            return {"message": f"Which team handles this document?\n\n{document}", "title": "routing"}

        @task
        def invoice(document: str) -> None:
            print(f"=== invoice team: {document[:30]} ===")

        @task
        def contract(document: str) -> None:
            print(f"=== contract team: {document[:30]} ===")

        @task
        def other(document: str) -> None:
            print(f"=== other team: {document[:30]} ===")

        classify(document) >> [invoice(document), contract(document), other(document)]

    triaged = triage()
    agent >> triaged >> [urgent(), routine()]
    mapped = route.expand(document=documents())
    agent >> mapped


nairi_agent_branching()
