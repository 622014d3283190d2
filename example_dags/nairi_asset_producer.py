"""Data-aware scheduling on what Nairi produced, the producer: its download's destination is its asset.

``nairi_asset_producer`` uploads the example transcripts as Nairi artifacts, then downloads them into a folder
that it names as its asset (``outlets=[DOWNLOADS]``). Every Nairi operator attaches an ``extra`` to the asset
events of its outlets: here, per written file, its path, the artifact id and the sha256 the download verified
(ids, sha256s and counts only: never a text, never a secret). ``nairi_asset_consumer``
(``nairi_asset_consumer.py``) runs on those events.

The folder is ``$NAIRI_EXAMPLE_DOWNLOADS`` (default ``/tmp/nairi-asset-example``). Run it offline with
``nairi_default`` pointing at the emulator (``make demo`` sets one up).
"""

from __future__ import annotations

import os
from pathlib import Path

import pendulum
from airflow.sdk import Asset, dag

from airflow_provider_nairi.operators.content import (
    NairiDownloadArtifactsOperator,
    NairiUploadArtifactsOperator,
)

DATA = Path(__file__).parent / "data" / "transcripts"
DESTINATION = os.environ.get("NAIRI_EXAMPLE_DOWNLOADS", "/tmp/nairi-asset-example")
UPLOADS = Asset("nairi://artifacts/example-transcripts")
DOWNLOADS = Asset(name="nairi_example_downloads", uri=f"file://{DESTINATION}")


@dag(
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    tags=["nairi", "example"],
)
def nairi_asset_producer():
    upload = NairiUploadArtifactsOperator(task_id="upload", sources=f"{DATA}/*", outlets=[UPLOADS])
    NairiDownloadArtifactsOperator(
        task_id="download",
        artifact_ids=upload.output,
        destination=DESTINATION,
        overwrite=True,
        outlets=[DOWNLOADS],  # the destination is the asset
    )


nairi_asset_producer()
