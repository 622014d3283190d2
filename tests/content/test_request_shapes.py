"""The exact HTTP requests the content operators send, through the real hook and client (requests-mock)."""

from __future__ import annotations

import json

import pytest

from airflow_provider_nairi.idempotency import task_idempotency_key
from airflow_provider_nairi.operators.content import (
    NairiChatOperator,
    NairiRecallOperator,
    NairiReprocessVideoOperator,
    NairiSearchOperator,
    NairiUploadArtifactsOperator,
)
from airflow_provider_nairi.sources import resolve_sources
from airflow_provider_nairi.testing import connection_env_var, connection_json

KEY = "nr_live_ContentShapes0001"
BASE = "https://api.nairi.test/api/public/v1"


def envelope(data):
    return {"success": True, "data": data, "meta": {"request_id": "req_1"}}


@pytest.fixture(autouse=True)
def connection(monkeypatch):
    monkeypatch.setenv(connection_env_var("nairi_default"), connection_json(BASE, KEY))


def body_bytes(request) -> bytes:
    body = request.body
    if isinstance(body, (bytes, str)):
        return body.encode() if isinstance(body, str) else body
    if hasattr(body, "read"):
        return body.read()
    return b"".join(body)


def test_upload_is_one_multipart_post_per_file_with_its_key(requests_mock, tmp_path, ti):
    (tmp_path / "notes.txt").write_text("hello notes")
    requests_mock.post(
        f"{BASE}/artifacts",
        status_code=201,
        json=envelope({"id": "art_1", "name": "notes.txt", "size_bytes": 11, "sha256": "ab" * 32}),
    )
    op = NairiUploadArtifactsOperator(
        task_id="upload", sources=str(tmp_path / "notes.txt"), conversation_id="c_1"
    )
    assert op.execute({"ti": ti})[0]["id"] == "art_1"
    (request,) = requests_mock.request_history
    identity = resolve_sources(str(tmp_path / "notes.txt"))[0].identity
    assert request.headers["Idempotency-Key"] == task_idempotency_key(ti, "upload", identity)
    assert request.headers["Content-Type"].startswith("multipart/form-data; boundary=")
    body = body_bytes(request)
    assert b'name="file"; filename="notes.txt"' in body
    assert b"hello notes" in body
    assert b'name="conversation_id"\r\n\r\nc_1' in body
    assert KEY.encode() not in body


@pytest.mark.parametrize(
    ("operator", "path"), [(NairiSearchOperator, "search"), (NairiRecallOperator, "recall")]
)
def test_search_and_recall_post_their_json_body(requests_mock, ti, operator, path):
    requests_mock.post(f"{BASE}/{path}", json=envelope([]))
    op = operator(task_id="q", query="refunds", limit=3, video_ids=["vid_1"])
    assert op.execute({"ti": ti}) == []
    assert requests_mock.last_request.json() == {"query": "refunds", "limit": 3, "video_ids": ["vid_1"]}


def test_chat_sends_only_what_was_given(requests_mock, ti):
    requests_mock.post(f"{BASE}/chat", json=envelope({"answer": "a", "citations": []}))
    NairiChatOperator(task_id="c", message="Why?").execute({"ti": ti})
    assert requests_mock.last_request.json() == {"message": "Why?"}


def test_reprocess_posts_with_a_key_per_try_and_returns_without_waiting(requests_mock, ti):
    video = {"id": "vid_1", "status": "processing", "error": None}
    requests_mock.post(f"{BASE}/videos/vid_1/reprocess", status_code=202, json=envelope(video))
    op = NairiReprocessVideoOperator(task_id="r", video_ids="vid_1", wait_until_ready=False)
    assert op.execute({"ti": ti}) == [video]
    request = requests_mock.last_request
    assert request.headers["Idempotency-Key"] == task_idempotency_key(ti, "reprocess", "vid_1", 1)
    assert json.loads(request.body or b"null") in (None, {})
