"""``make e2e`` scenario: ``NairiEventTrigger`` across a triggerer restart, under the real triggerer.

What it proves (the guarantee of ``docs/assets-and-events.md``): a run of the Nairi scheduled job that
completed while no triggerer ran is announced once the triggerer is back (not lost), and the runs announced
before the restart are not announced again (no replay): the asset ends with exactly one event per run, and the
DAG scheduled on it ran once per run.

The DAG is ``scripts/e2e/dags/nairi_e2e_events.py``; ``scenarios.run_phase`` runs this scenario in the
LocalExecutor phase.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from stack import E2EError, log, wait_until

from airflow_provider_nairi.client.sync import NairiClient

if TYPE_CHECKING:
    from airflow_api import AirflowApi
    from harness import Context

DAG_ID = "nairi_e2e_events"
JOB = "nairi-e2e-events"
ASSET_URI = "nairi://e2e/jobs/nairi-e2e-events"
#: The watcher's poll interval (the DAG's) and the trigger's settle time before it stores its position.
POLL, SETTLE = 5.0, 5.0


def ensure_job(client: NairiClient) -> str:
    """The job ``JOB`` (created with its agent on first use); its id."""
    for job in client.list_scheduled_jobs():
        if job["name"] == JOB:
            return str(job["id"])
    agent = client.create_agent("nairi-e2e-events-agent", "Answer in one line.")
    return str(client.create_scheduled_job(JOB, agent["id"], "Nightly summary.", "0 2 * * *")["id"])


def run_job(client: NairiClient, job_id: str) -> str:
    conversation_id = str(client.run_scheduled_job(job_id)["id"])
    wait_until(
        f"run {conversation_id} completed",
        lambda: client.get_conversation(conversation_id)["status"] == "completed",
        60,
        0.3,
    )
    return conversation_id


def job_reads(ctx: Context, job_id: str) -> int:
    """How many times the watcher read the job (each of its polls reads it once)."""
    return sum(
        1
        for r in ctx.admin.requests_log()
        if r["method"] == "GET" and r["path"] == f"/scheduled-jobs/{job_id}"
    )


def dag_runs(api: AirflowApi) -> list[dict[str, Any]]:
    return list(api.call("GET", f"/dags/{DAG_ID}/dagRuns", params={"limit": 100})["dag_runs"])


def announced(api: AirflowApi) -> list[str]:
    """The conversation ids of the asset's events, in order (duplicates kept)."""
    assets = api.call("GET", "/assets", params={"uri_pattern": ASSET_URI, "limit": 10})["assets"]
    if not assets:
        return []
    # Airflow 3.3.2 answers 500 while a DAG run the event created has no start_date yet (its response model
    # requires one): ask again for a little while.
    for _ in range(15):
        try:
            events = api.call("GET", "/assets/events", params={"asset_id": assets[0]["id"], "limit": 100})
        except E2EError as error:
            if ": 500 " not in str(error):
                raise
            time.sleep(2)
            continue
        return [e["extra"]["payload"]["conversation_id"] for e in events["asset_events"]]
    raise E2EError("GET /api/v2/assets/events kept answering 500 for 30 s")


def event_trigger_restart(ctx: Context, api: AirflowApi) -> None:
    client = ctx.nairi
    job_id = ensure_job(client)
    before, runs_before = announced(api), len(dag_runs(api))
    reads = job_reads(ctx, job_id)
    wait_until(
        "the watcher polls the job twice (its position stored)",
        lambda: job_reads(ctx, job_id) >= reads + 2,
        180,
        1,
    )

    first = run_job(client, job_id)
    wait_until("the first run announced", lambda: first in announced(api), 60, 1)
    time.sleep(SETTLE + POLL)  # its position moved past the run and was stored

    log("SIGKILL triggerer; two runs complete while it is down")
    ctx.airflow.processes.kill(ctx.airflow.components.pop("triggerer"))
    while_down = [run_job(client, job_id), run_job(client, job_id)]
    ctx.airflow.start("triggerer")

    wait_until("the runs of the outage announced", lambda: set(while_down) <= set(announced(api)), 180, 1)
    time.sleep(3 * POLL)  # room for a replay to show
    events = announced(api)[len(before) :]
    if sorted(events) != sorted([first, *while_down]):
        raise E2EError(f"asset events {events}, expected each of {[first, *while_down]} exactly once")
    # One DAG run may consume several queued events (the two of the outage): at least two new runs, all green.
    wait_until(
        "the DAG ran on the events",
        lambda: len(runs := dag_runs(api)) >= runs_before + 2 and all(r["state"] == "success" for r in runs),
        120,
        2,
    )
