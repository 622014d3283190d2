"""DAG of the end-to-end harness's event-trigger scenario (``make e2e``; not an example).

``nairi_e2e_events`` is scheduled on an asset watched by ``NairiEventTrigger``: each completed run of the
Nairi scheduled job ``nairi-e2e-events`` is one asset event. The scenario (``scripts/e2e/events_scenario.py``)
kills the triggerer between runs and checks that no run is announced twice and none is lost.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import Asset, AssetWatcher, dag, task

from airflow_provider_nairi.triggers.events import NairiEventTrigger

JOB = "nairi-e2e-events"
RUNS = Asset(
    "nairi://e2e/jobs/nairi-e2e-events",
    watchers=[
        AssetWatcher(name="nairi_e2e_events", trigger=NairiEventTrigger(job_name=JOB, poll_interval=5))
    ],
)


@dag(
    schedule=[RUNS], start_date=pendulum.datetime(2026, 1, 1, tz="UTC"), catchup=False, tags=["nairi", "e2e"]
)
def nairi_e2e_events():
    @task
    def record(triggering_asset_events=None):
        ids = [e.extra["payload"]["conversation_id"] for e in (triggering_asset_events or {}).get(RUNS, [])]
        print("E2E EVENT RUNS", ids)
        return ids

    record()


nairi_e2e_events()
