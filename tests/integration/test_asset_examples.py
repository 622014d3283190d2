"""The asset example pair under ``airflow dags test``: the producer's Nairi operators attach extras to their
asset events (stored in the metadata DB), and the consumer, run on those events, reads them from
``triggering_asset_events``.

The scheduler's part (creating the consumer's asset-triggered run with the events it consumes) is done by
hand, as ``test_example_dags.py`` does for a retry: ``dags test`` creates the run, and a one-line patch gives
it the producer's events, as the scheduler would.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from pathlib import Path

import pytest
from airflow_home import airflow_output, migrated_env

from airflow_provider_nairi.emulator import run_emulator
from airflow_provider_nairi.testing import connection_env_var, connection_json

pytestmark = pytest.mark.integration

EXAMPLE_DAGS = Path(__file__).parent.parent.parent / "example_dags"
TRANSCRIPTS = EXAMPLE_DAGS / "data" / "transcripts"

CONSUME = """
from sqlalchemy import select
import airflow.models.dagrun as dagrun_module
from airflow.dag_processing.dagbag import DagBag
from airflow.models.asset import AssetEvent

create = dagrun_module.get_or_create_dagrun


def asset_triggered(**kwargs):  # what the scheduler does for a run scheduled on assets
    run = create(**kwargs)
    session = kwargs["session"]
    run.consumed_asset_events.extend(session.scalars(select(AssetEvent)).all())
    session.commit()
    return run


dagrun_module.get_or_create_dagrun = asset_triggered
DagBag().get_dag("nairi_asset_consumer").test()
"""


def extras(home):
    with sqlite3.connect(Path(home) / "airflow.db", timeout=10) as db:
        rows = db.execute(
            "SELECT asset.uri, asset_event.extra FROM asset_event"
            " JOIN asset ON asset.id = asset_event.asset_id"
        ).fetchall()
    return {uri: json.loads(extra) for uri, extra in rows}


def test_the_consumer_reads_the_extras_of_the_producers_asset_events(tmp_path):
    downloads = tmp_path / "downloads"
    env = migrated_env(tmp_path / "airflow", EXAMPLE_DAGS)
    env["NAIRI_EXAMPLE_DOWNLOADS"] = str(downloads)
    with run_emulator() as emulator:
        env[connection_env_var("nairi_default")] = connection_json(emulator.base_url, emulator.api_key)
        log = airflow_output(env, "dags", "test", "nairi_asset_producer")
        assert "state=success" in log, log[-5000:]

        stored = extras(env["AIRFLOW_HOME"])
        files = sorted(TRANSCRIPTS.iterdir())
        sha = {f.name: hashlib.sha256(f.read_bytes()).hexdigest() for f in files}
        uploads = stored["nairi://artifacts/example-transcripts"]
        assert uploads["count"] == len(files)
        assert {(i["name"], i["sha256"]) for i in uploads["items"]} == set(sha.items())
        assert all(i["id"].startswith("art_") for i in uploads["items"])
        written = stored[f"file://{downloads}"]
        assert sorted((Path(i["path"]).name, i["sha256"]) for i in written["items"]) == sorted(sha.items())
        assert "nr_" not in json.dumps(stored) and emulator.api_key not in json.dumps(stored)

        log = airflow_output(env, "python", "-c", CONSUME)
    assert "state=success" in log, log[-5000:]
    for name in sha:
        assert f"{downloads / name} (artifact art_" in log and "): ok" in log
    assert "CHANGED" not in log
