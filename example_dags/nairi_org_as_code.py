"""A Nairi org as code: a vault, env vars, an agent and its scheduled job deployed by a DAG; the job runs now.

1. ``support_vault``: the vault ``support`` holds ``DB_PASSWORD`` (the password of the Airflow connection
   ``nairi_example_db``) and ``CRM_TOKEN`` (the Airflow Variable ``nairi_example_crm_token``);
2. ``env_vars``: the org's env vars, one of them secret (from the same Variable);
3. ``triage_agent``: the agent ``support-triage``, allowed to read the vault;
4. ``morning_triage``: its scheduled job (07:00 on weekdays, Paris time);
5. ``run_now``: runs the job now and waits for the agent's reply (deferred: the wait runs in the triggerer);
6. ``report``: writes the reply and what each step did to ``<output_dir>/<run id>.json``.

Every step is declarative: run the DAG twice and the second run reports every resource ``unchanged`` (secret
values are re-sent each time, since the API never returns them; they are listed under ``rewritten``). Secret
values never appear in logs, XCom, rendered fields or errors (see docs/org-as-code.md).

Set up: the Nairi connection ``nairi_default``, a connection ``nairi_example_db`` with a password, and the
Variable ``nairi_example_crm_token``. Offline, point ``nairi_default`` at the emulator (``nairi-emulator``).
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import pendulum
from airflow.sdk import Param, dag, task

from airflow_provider_nairi.operators.agents import NairiAgentOperator
from airflow_provider_nairi.operators.scheduled_jobs import (
    NairiRunScheduledJobOperator,
    NairiScheduledJobOperator,
)
from airflow_provider_nairi.operators.secrets import (
    FromConnection,
    FromVariable,
    NairiEnvVarsOperator,
    NairiVaultSecretsOperator,
)


@dag(
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    tags=["nairi", "example"],
    params={"output_dir": Param(str(Path(tempfile.gettempdir()) / "nairi_org_as_code"), type="string")},
)
def nairi_org_as_code():
    vault = NairiVaultSecretsOperator(
        task_id="support_vault",
        vault_name="support",
        secrets={
            "DB_PASSWORD": FromConnection("nairi_example_db", "password"),
            "CRM_TOKEN": FromVariable("nairi_example_crm_token"),
        },
    )
    env_vars = NairiEnvVarsOperator(
        task_id="env_vars",
        env_vars={
            "SUPPORT_LOG_LEVEL": "info",
            "SUPPORT_REGION": {"value": "eu-west-1", "secret": False},
            "SUPPORT_CRM_TOKEN": FromVariable("nairi_example_crm_token"),  # secret: it comes from a Variable
        },
    )
    agent = NairiAgentOperator(
        task_id="triage_agent",
        name="support-triage",
        instructions="Triage new support tickets: label each one and flag the urgent ones.",
        vault_ids=[vault.output["id"]],
    )
    job = NairiScheduledJobOperator(
        task_id="morning_triage",
        name="support-morning-triage",
        agent_id=agent.output["id"],
        message="Triage the tickets that arrived overnight.",
        cron="0 7 * * 1-5",
        timezone="Europe/Paris",
    )
    run_now = NairiRunScheduledJobOperator(
        task_id="run_now", job_id=job.output["id"], deferrable=True, poll_interval=1, timeout=600
    )
    env_vars >> run_now

    @task
    def report(
        reply: dict[str, Any] | None, *plans: dict[str, Any] | None, params=None, run_id=None
    ) -> dict[str, Any]:
        """Use the reply: write it, with what each step did, to ``<output_dir>/<run id>.json``.

        A task a user marked success returned nothing: its value is None here, and the summary says so."""
        summary = {
            "reply": reply["reply"] if reply else None,
            "conversation_id": reply["conversation_id"] if reply else None,
            "actions": {plan["kind"]: plan["action"] for plan in plans if plan},
        }
        out = Path(params["output_dir"]) / f"{run_id.replace(':', '-').replace('+', '-')}.json"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(summary, indent=2))
        return summary

    report(run_now.output, vault.output, env_vars.output, agent.output, job.output)


nairi_org_as_code()
