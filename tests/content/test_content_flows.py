"""Flows against the emulator over loopback HTTP: the real hook, client, multipart, faults and videos."""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from pathlib import Path

import pytest
from airflow.providers.common.compat.sdk import AirflowFailException, ObjectStoragePath

from airflow_provider_nairi.hooks.nairi import NairiHook
from airflow_provider_nairi.operators.content import (
    NairiChatOperator,
    NairiDownloadArtifactsOperator,
    NairiSearchOperator,
    NairiUploadArtifactsOperator,
    NairiUploadVideoOperator,
)
from airflow_provider_nairi.sensors.content import NairiVideoReadySensor
from airflow_provider_nairi.triggers.video import NairiVideoTrigger

TRANSCRIPT = (
    "[00:00] Welcome to the quarterly review.\n[00:05] Refunds rose by four percent.\n[00:11] Thanks.\n"
)


def requests_to(emulator, method: str, suffix: str) -> list[dict]:
    return [r for r in emulator.admin.requests_log() if r["method"] == method and r["path"].endswith(suffix)]


def test_upload_survives_faults_with_one_key_per_file_and_a_rerun_creates_nothing(
    nairi_emulator, tmp_path, ti
):
    (tmp_path / "a.txt").write_bytes(b"alpha " * 1000)
    (tmp_path / "b.txt").write_bytes(b"beta")
    nairi_emulator.admin.set_faults(sequence=["500", "reset", "ok", "503"], paths=["/artifacts"])
    op = NairiUploadArtifactsOperator(task_id="upload", sources=str(tmp_path / "*.txt"))
    uploaded = op.execute({"ti": ti})
    assert [(u["name"], u["size_bytes"]) for u in uploaded] == [("a.txt", 6000), ("b.txt", 4)]
    assert uploaded[0]["sha256"] == hashlib.sha256(b"alpha " * 1000).hexdigest()
    posts = requests_to(nairi_emulator, "POST", "/artifacts")
    assert [p["status"] for p in posts] == [500, "reset", 201, 503, 201]
    assert len({p["idempotency_key"] for p in posts[:3]}) == 1
    assert len({p["idempotency_key"] for p in posts}) == 2
    assert op.execute({"ti": ti}) == uploaded  # the task retried: replayed, nothing new
    assert nairi_emulator.admin.counts()["artifacts"] == 2


def test_upload_from_object_storage_streams_each_object(nairi_emulator, memory_store, ti):
    ObjectStoragePath("memory://bucket/in/x.csv").write_bytes(b"1,2,3")
    ObjectStoragePath("memory://bucket/in/y.csv").write_bytes(b"4,5")
    op = NairiUploadArtifactsOperator(task_id="upload", sources="memory://bucket/in/*.csv")
    uploaded = op.execute({"ti": ti})
    assert [(u["name"], u["sha256"]) for u in uploaded] == [
        ("x.csv", hashlib.sha256(b"1,2,3").hexdigest()),
        ("y.csv", hashlib.sha256(b"4,5").hexdigest()),
    ]


@pytest.fixture
def produced(nairi_emulator):
    """A conversation whose agent produced two artifacts; returns its id and the expected bytes."""
    hook = NairiHook()
    agent = hook.client.create_agent("writer", "write reports")
    conversation = hook.client.create_conversation(
        agent["id"], "go [[artifact:report.md:# Q3 report]] [[artifact:data.csv:q,refunds]]"
    )
    deadline = time.monotonic() + 10
    while hook.client.get_conversation(conversation["id"])["status"] != "completed":
        assert time.monotonic() < deadline, "the emulated agent did not finish"
        time.sleep(0.02)
    return conversation["id"], {"report.md": b"# Q3 report", "data.csv": b"q,refunds"}


def test_download_survives_faults_and_a_retry_keeps_what_is_there(nairi_emulator, produced, tmp_path, ti):
    conversation_id, expected = produced
    nairi_emulator.admin.set_faults(sequence=["reset", "502", "ok", "500"], paths=["/artifacts/*/content"])
    op = NairiDownloadArtifactsOperator(
        task_id="dl", conversation_id=conversation_id, destination=str(tmp_path)
    )
    paths = op.execute({"ti": ti})
    assert {Path(p).name: Path(p).read_bytes() for p in paths} == expected
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(expected)  # no temporary file left
    nairi_emulator.admin.clear_log()
    assert op.execute({"ti": ti}) == paths
    assert requests_to(nairi_emulator, "GET", "/content") == []  # same bytes already there: nothing fetched


def test_download_refuses_to_replace_a_different_file(nairi_emulator, produced, tmp_path, ti):
    conversation_id, _ = produced
    (tmp_path / "data.csv").write_text("mine")
    op = NairiDownloadArtifactsOperator(
        task_id="dl", conversation_id=conversation_id, destination=str(tmp_path)
    )
    with pytest.raises(AirflowFailException, match=r"data\.csv"):
        op.execute({"ti": ti})
    assert requests_to(nairi_emulator, "GET", "/content") == []
    assert (tmp_path / "data.csv").read_text() == "mine"


@pytest.mark.nairi_emulator(video_delay=0.2)
def test_transcripts_become_searchable_videos(nairi_emulator, tmp_path, ti):
    (tmp_path / "q3.txt").write_text(TRANSCRIPT)
    videos = NairiUploadVideoOperator(
        task_id="v", sources=str(tmp_path / "q3.txt"), poll_interval=0.05
    ).execute({"ti": ti})
    assert [(v["title"], v["status"]) for v in videos] == [("q3", "ready")]
    hits = NairiSearchOperator(task_id="s", query="refunds", video_ids=videos).execute({"ti": ti})
    assert hits[0]["video_id"] == videos[0]["id"]
    assert "Refunds rose" in hits[0]["text"]
    target = tmp_path / "answer.json"
    chat = NairiChatOperator(task_id="c", message="What rose?", video_ids=videos, output_path=str(target))
    assert chat.execute({"ti": ti}) == str(target)
    assert json.loads(target.read_text())["citations"]


def test_an_unreadable_video_fails_the_task_with_the_api_reason(nairi_emulator, tmp_path, ti):
    (tmp_path / "broken.bin").write_bytes(b"\x00\x01 not a video")
    op = NairiUploadVideoOperator(task_id="v", sources=str(tmp_path / "broken.bin"), poll_interval=0.05)
    with pytest.raises(AirflowFailException, match="unreadable_file"):
        op.execute({"ti": ti})


@pytest.mark.nairi_emulator(video_delay=0.3)
def test_sensor_and_trigger_wait_for_the_real_video(nairi_emulator, tmp_path, ti):
    (tmp_path / "t.txt").write_text(TRANSCRIPT)
    (video,) = NairiUploadVideoOperator(
        task_id="v", sources=str(tmp_path / "t.txt"), wait_until_ready=False
    ).execute({"ti": ti})
    sensor = NairiVideoReadySensor(task_id="s", video_ids=video["id"])
    assert sensor.poke({"ti": ti}) is False
    trigger = NairiVideoTrigger(
        conn_id="nairi_default", video_ids=[video["id"]], deadline=time.time() + 10, poll_interval=0.05
    )
    assert nairi_emulator.api_key not in json.dumps(trigger.serialize())  # the triggerer reads the connection

    async def first_event():
        async for event in trigger.run():
            return event.payload
        return None

    event = asyncio.run(asyncio.wait_for(first_event(), 15))
    assert event["status"] == "success"
    assert event["resource"]["videos"][0]["status"] == "ready"
    assert sensor.poke({"ti": ti}).xcom_value[0]["id"] == video["id"]
