"""Run a DAG whenever the agent's nightly Nairi job finishes: event-driven scheduling (Airflow 3).

The asset ``nairi://jobs/nightly-report`` is watched by a :class:`NairiEventTrigger` in the triggerer: each
run of the Nairi scheduled job ``nightly-report`` that completes becomes one asset event, and each asset
event runs ``nairi_events`` once. The payload names the run (``conversation_id``, ``job_id``,
``agent_id``, ``reply_message_id``...); the DAG reads it from ``triggering_asset_events`` and fetches the
reply itself.

Needs a triggerer (``airflow triggerer``) and the job (``NairiScheduledJobOperator``, see
``nairi_org_as_code``). The watcher keeps its position in the asset's state store (Airflow 3.3+), so a
triggerer restart neither replays nor loses runs (``docs/assets-and-events.md``).
"""

from __future__ import annotations

import pendulum
from airflow.sdk import Asset, AssetWatcher, dag, task

from airflow_provider_nairi.triggers.events import NairiEventTrigger

NIGHTLY_JOB = "nightly-report"

nightly_report_runs = Asset(
    "nairi://jobs/nightly-report",
    watchers=[
        AssetWatcher(
            name="nairi_nightly_report",
            trigger=NairiEventTrigger(job_name=NIGHTLY_JOB, poll_interval=60),
        )
    ],
)


@dag(
    schedule=[nightly_report_runs],
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    tags=["nairi", "example"],
)
def nairi_events():
    @task
    def summarise_run(triggering_asset_events=None):
        """Fetch the reply of each run that triggered this DAG run (usually one)."""
        from airflow_provider_nairi.hooks.nairi import NairiHook  # noqa: PLC0415 (not at DAG parse)

        hook = NairiHook()
        replies = []
        for event in (triggering_asset_events or {}).get(nightly_report_runs, []):
            run = event.extra.get("payload", {})
            conversation_id = run.get("conversation_id")
            if not conversation_id:
                continue
            messages = [
                m for m in hook.client.list_messages(conversation_id) if m["id"] == run["reply_message_id"]
            ]
            reply = messages[0]["content"] if messages else None
            print(f"Nightly run {conversation_id} ({run.get('status')}): {reply}")
            replies.append({"conversation_id": conversation_id, "reply": reply})
        return replies

    summarise_run()


nairi_events()
