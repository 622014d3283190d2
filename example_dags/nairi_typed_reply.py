"""A typed answer with ``@task.nairi``: the reply is validated JSON, repaired in the same thread if needed.

1. make sure the agent exists;
2. ``@task.nairi(output_type=Invoice)``: the function returns the message; the agent is told the JSON Schema
   of ``Invoice``; a reply that is not valid gets a repair turn in the same conversation (at most
   ``max_repair_turns``), so the task returns ``output``, a dict that validates as ``Invoice``;
3. a plain ``@task`` books the invoice from ``output`` (``reply`` is still the agent's raw text).

Run it offline against the emulator (``airflow dags test nairi_typed_reply``) with a ``document`` that scripts
the emulator's replies, e.g. ``[[replies:["Sure! It is ACME.", {"vendor": "ACME", ...}]]]``
(docs/emulator.md); against Nairi, the default document is a real one.
"""

from __future__ import annotations

import pendulum
import pydantic
from airflow.sdk import Param, dag, task

from airflow_provider_nairi.operators.agents import NairiAgentOperator

AGENT = "airflow-example-extractor"


class Invoice(pydantic.BaseModel):
    vendor: str
    total: float = pydantic.Field(ge=0)
    currency: str = pydantic.Field(pattern=r"^[A-Z]{3}$")


@dag(
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    tags=["nairi", "example"],
    params={
        "document": Param("ACME Corp, invoice 42: 3 widgets at 4.10 EUR, total 12.30 EUR.", type="string")
    },
)
def nairi_typed_reply():
    agent = NairiAgentOperator(
        task_id="ensure_agent",
        name=AGENT,
        instructions="You read business documents and answer with the data asked for, as JSON.",
    )

    @task.nairi(agent_name=AGENT, output_type=Invoice, max_repair_turns=2, poll_interval=1, timeout=600)
    def extract(params: dict | None = None) -> str:
        return f"Extract the vendor, the total and the currency of this invoice:\n\n{params['document']}"

    @task
    def book(result: dict | None) -> None:
        if result is None:  # marked success by hand while it waited
            return
        invoice = Invoice.model_validate(result["output"])
        print(
            f"=== booked: {invoice.vendor} {invoice.total:.2f} {invoice.currency} (turn {result['turn']}) ==="
        )

    extracted = extract()
    agent >> extracted
    book(extracted)


nairi_typed_reply()
