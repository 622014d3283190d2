"""Artifacts (streamed upload, Range downloads, ETag), videos (processing rule) and the corpus calls."""

from __future__ import annotations

import hashlib

import httpx
import pytest
from emulator_helpers import assert_error, client_for, wait_for

from airflow_provider_nairi.emulator import run_emulator

SRT = (
    b"1\n00:00:01,000 --> 00:00:04,000\nThe cat sat on the mat.\n\n"
    b"2\n00:00:05,000 --> 00:00:09,500\nDogs chase <i>cats</i> in the park.\n"
)
VTT = (
    b"WEBVTT\n\n00:01.000 --> 00:03.000\n<v Bob>Rockets need fuel.\n\n"
    b"NOTE aside\n\n00:03.000 --> 00:06.000\nFuel is costly.\n"
)
TXT = b"[00:10] intro to cooking\n[00:20] boil pasta in salted water\nserve with cheese\n"
MP4 = b"\x00\x00\x00\x18ftypmp42" + bytes(300)


def test_upload_then_download_whole_and_ranges(api):
    data = bytes(range(256)) * 40
    created = api.post(
        "/artifacts", files={"file": ("blob.bin", data, "application/x-thing")}, data={"name": "renamed.bin"}
    )
    assert created.status_code == 201
    artifact = created.json()["data"]
    assert artifact["name"] == "renamed.bin"
    assert artifact["content_type"] == "application/x-thing"
    assert artifact["size_bytes"] == len(data)
    assert artifact["sha256"] == hashlib.sha256(data).hexdigest()
    assert artifact["created_by"] == "user"
    assert artifact["conversation_id"] is None
    whole = api.get(f"/artifacts/{artifact['id']}/content")
    assert whole.status_code == 200
    assert whole.content == data
    assert whole.headers["ETag"] == f'"{artifact["sha256"]}"'
    part = api.get(f"/artifacts/{artifact['id']}/content", headers={"Range": "bytes=100-"})
    assert part.status_code == 206
    assert part.content == data[100:]
    assert part.headers["Content-Range"] == f"bytes 100-{len(data) - 1}/{len(data)}"
    assert api.get(f"/artifacts/{artifact['id']}").json()["data"] == artifact
    assert api.delete(f"/artifacts/{artifact['id']}").status_code == 204
    assert_error(api.get(f"/artifacts/{artifact['id']}/content"), 404, "not_found")


def test_upload_into_a_conversation_and_unknown_conversation(api, agent):
    conversation = api.post("/conversations", json={"agent_id": agent["id"], "message": "m"}).json()["data"]
    linked = api.post(
        "/artifacts", files={"file": ("a.txt", b"x")}, data={"conversation_id": conversation["id"]}
    )
    assert linked.json()["data"]["conversation_id"] == conversation["id"]
    missing = api.post("/artifacts", files={"file": ("a.txt", b"x")}, data={"conversation_id": "conv_none"})
    assert assert_error(missing, 404, "not_found")["details"][0]["field"] == "conversation_id"


def test_upload_over_the_limit_is_413_and_leaves_nothing():
    with run_emulator(upload_limit=1000) as emu, client_for(emu, emu.api_key) as client:
        assert_error(
            client.post("/artifacts", files={"file": ("big", bytes(1001))}), 413, "payload_too_large"
        )
        assert client.post("/artifacts", files={"file": ("ok", bytes(1000))}).status_code == 201
        assert emu.admin.counts()["artifacts"] == 1
        assert [p.name for p in emu.core.store.files_dir.iterdir() if p.name.startswith("upload-")] == []


@pytest.mark.parametrize(
    ("content", "content_type", "status", "code"),
    [
        (b"plain", "text/plain", 400, "bad_request"),
        (b"--b\r\nno headers here", "multipart/form-data; boundary=b", 400, "bad_request"),
        (
            b'--b\r\nContent-Disposition: form-data; name="file"\r\n\r\ntruncated',
            "multipart/form-data; boundary=b",
            400,
            "bad_request",
        ),
        (
            b'--b\r\nContent-Disposition: form-data; name="name"\r\n\r\nx\r\n--b--\r\n',
            "multipart/form-data; boundary=b",
            422,
            "validation_error",
        ),
        (
            b'--b\r\nContent-Disposition: form-data; name="colour"\r\n\r\nx\r\n--b--\r\n',
            "multipart/form-data; boundary=b",
            422,
            "validation_error",
        ),
        (b"", "multipart/form-data", 400, "bad_request"),
    ],
)
def test_bad_multipart_gets_contract_errors(api, content, content_type, status, code):
    assert_error(
        api.post("/artifacts", content=content, headers={"Content-Type": content_type}), status, code
    )


def test_video_processing_rule(api):
    uploads = {
        name: api.post("/videos", files={"file": (name, data)}, data={"title": f"T {name}"})
        for name, data in [
            ("a.srt", SRT),
            ("b.vtt", VTT),
            ("c.txt", TXT),
            ("d.mp4", MP4),
            ("e.bin", b"junk"),
            ("f.srt", b"\xff\xfe\x00bad"),
            ("g.txt", b""),
        ]
    }
    assert {r.status_code for r in uploads.values()} == {202}
    assert {r.json()["data"]["status"] for r in uploads.values()} == {"processing"}
    final = {
        name: wait_for(api, f"/videos/{r.json()['data']['id']}", ("ready", "failed"))
        for name, r in uploads.items()
    }
    assert {n: (v["status"], v["duration_s"]) for n, v in final.items()} == {
        "a.srt": ("ready", 9.5),
        "b.vtt": ("ready", 6.0),
        "c.txt": ("ready", 30.0),
        "d.mp4": ("ready", None),
        "e.bin": ("failed", None),
        "f.srt": ("failed", None),
        "g.txt": ("failed", None),
    }
    assert final["e.bin"]["error"]["code"] == "unreadable_file"
    listed = {v["id"]: v for v in api.get("/videos", params={"limit": 200}).json()["data"]}
    assert all(listed[v["id"]] == v for v in final.values())
    assert final["a.srt"]["title"] == "T a.srt"
    assert final["a.srt"]["size_bytes"] == len(SRT)
    reprocessed = api.post(f"/videos/{final['a.srt']['id']}/reprocess")
    assert reprocessed.status_code == 202
    assert reprocessed.json()["data"]["status"] == "processing"
    assert wait_for(api, f"/videos/{final['a.srt']['id']}", ("ready",))["duration_s"] == 9.5
    for video in final.values():
        assert api.delete(f"/videos/{video['id']}").status_code == 204
    assert_error(api.get(f"/videos/{final['a.srt']['id']}"), 404, "not_found")


def test_search_recall_chat_score_real_transcripts():
    with run_emulator(video_delay=0.01) as emu, client_for(emu, emu.api_key) as api:
        ids = {}
        for name, data in [("a.srt", SRT), ("b.vtt", VTT), ("c.txt", TXT)]:
            ids[name] = api.post("/videos", files={"file": (name, data)}).json()["data"]["id"]
            wait_for(api, f"/videos/{ids[name]}", ("ready",))
        hits = api.post("/search", json={"query": "cats fuel"}).json()["data"]
        assert {(h["video_id"], h["start_s"], h["end_s"]) for h in hits} == {
            (ids["a.srt"], 5.0, 9.5),
            (ids["b.vtt"], 1.0, 3.0),
            (ids["b.vtt"], 3.0, 6.0),
        }
        assert hits == sorted(hits, key=lambda h: -h["score"])
        assert all(h["score"] > 0 for h in hits)
        assert hits[0]["text"] == "Dogs chase cats in the park."  # tags dropped; 'cats' is rarer than 'fuel'
        only = api.post("/search", json={"query": "fuel", "limit": 1, "video_ids": [ids["b.vtt"]]}).json()[
            "data"
        ]
        assert len(only) == 1
        assert only[0]["video_id"] == ids["b.vtt"]
        assert api.post("/search", json={"query": "zebra"}).json()["data"] == []
        recall = api.post("/recall", json={"query": "pasta"}).json()["data"]
        assert recall == [
            {
                "video_id": ids["c.txt"],
                "start_s": 10.0,
                "end_s": 30.0,
                "score": recall[0]["score"],
                "summary": "intro to cooking boil pasta in salted water serve with cheese",
            }
        ]
        chat = api.post("/chat", json={"message": "how to boil pasta?"}).json()["data"]
        assert "boil pasta in salted water" in chat["answer"]
        assert chat["citations"][0] == {"video_id": ids["c.txt"], "start_s": 20.0, "end_s": 25.0}
        nothing = api.post("/chat", json={"message": "zebra"}).json()["data"]
        assert nothing["citations"] == []
        assert_error(api.post("/search", json={"query": "x", "limit": 51}), 422, "validation_error")
        assert_error(api.post("/search", json={"query": "x", "video_ids": ["vid_x"]}), 404, "not_found")


def test_download_is_streamed_not_enveloped(emulator):
    with client_for(emulator, emulator.api_key) as api:
        artifact = api.post("/artifacts", files={"file": ("x.json", b'{"a": 1}')}).json()["data"]
        raw = httpx.get(
            f"{emulator.base_url}/artifacts/{artifact['id']}/content", headers={"X-API-Key": emulator.api_key}
        )
        assert raw.content == b'{"a": 1}'
        assert raw.headers["content-type"].startswith("application/json")
        assert raw.headers["X-Request-Id"].startswith("req_")
