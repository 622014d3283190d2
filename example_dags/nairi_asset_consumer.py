"""Data-aware scheduling on what Nairi produced, the consumer: runs on the producer's asset events.

``nairi_asset_consumer`` is scheduled on the folder ``nairi_asset_producer`` (``nairi_asset_producer.py``)
downloads into: it reads the extras of the asset events from ``triggering_asset_events`` and checks each
file against its sha256 before using it. Run without events (``airflow dags test``) it checks nothing.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pendulum
from airflow.sdk import Asset, dag, task

DESTINATION = os.environ.get("NAIRI_EXAMPLE_DOWNLOADS", "/tmp/nairi-asset-example")
DOWNLOADS = Asset(name="nairi_example_downloads", uri=f"file://{DESTINATION}")  # as the producer names it


@dag(
    schedule=[DOWNLOADS],
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    tags=["nairi", "example"],
)
def nairi_asset_consumer():
    @task
    def verify(triggering_asset_events=None):
        """Each downloaded file, checked against the sha256 its asset event carries."""
        checked = []
        for event in (triggering_asset_events or {}).get(DOWNLOADS, []):
            for item in event.extra.get("items", []):
                digest = hashlib.sha256(Path(item["path"]).read_bytes()).hexdigest()
                status = "ok" if digest == item["sha256"] else "CHANGED"
                print(f"{item['path']} (artifact {item['id']}): {status}")
                checked.append({"path": item["path"], "artifact_id": item["id"], "ok": status == "ok"})
        return checked

    verify()


nairi_asset_consumer()
