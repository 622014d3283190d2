"""Conversations run for real: statuses, the deterministic reply, directives, busy, cancel, multi-turn."""

from __future__ import annotations

import datetime
import hashlib
import time

from emulator_helpers import assert_error, wait_for


def start(api, agent, message, **extra):
    response = api.post("/conversations", json={"agent_id": agent["id"], "message": message, **extra})
    assert response.status_code == 201, response.text
    return response.json()["data"]


def test_turn_goes_queued_running_completed_with_documented_reply(api, agent):
    conversation = start(api, agent, "  hello   there ", title="t", metadata={"team": "data"})
    assert conversation["status"] == "queued"
    assert conversation["turns"] == 1
    assert conversation["metadata"] == {"team": "data"}
    assert conversation["last_message"]["role"] == "user"
    done = wait_for(api, f"/conversations/{conversation['id']}")
    assert done["status"] == "completed"
    digest = hashlib.sha256(agent["instructions"].encode()).hexdigest()[:12]
    assert done["last_message"]["content"] == f"Reply to turn 1: hello there\nInstructions: {digest}"
    messages = api.get(f"/conversations/{conversation['id']}/messages").json()["data"]
    assert [(m["role"], m["turn"]) for m in messages] == [("user", 1), ("assistant", 1)]


def test_running_is_observable(api):
    slow = api.post("/agents", json={"name": "slow", "instructions": "Think. [[delay:0.5]]"}).json()["data"]
    conversation = start(api, slow, "take your time")
    assert wait_for(api, f"/conversations/{conversation['id']}", ("running",))["status"] == "running"
    busy = api.post(f"/conversations/{conversation['id']}/messages", json={"content": "again"})
    assert_error(busy, 409, "conversation_busy")
    cancelled = api.post(f"/conversations/{conversation['id']}/cancel")
    assert cancelled.status_code == 200
    assert cancelled.json()["data"]["status"] == "cancelled"
    time.sleep(0.6)
    after = api.get(f"/conversations/{conversation['id']}").json()["data"]
    assert after["status"] == "cancelled"  # the cancelled turn never replies
    assert after["last_message"]["role"] == "user"


def test_cancel_of_an_ended_conversation_changes_nothing(api, agent):
    conversation = start(api, agent, "quick")
    done = wait_for(api, f"/conversations/{conversation['id']}")
    again = api.post(f"/conversations/{conversation['id']}/cancel", json={}).json()["data"]
    assert again == done


def test_fail_directives(api, agent):
    plain = wait_for(api, f"/conversations/{start(api, agent, 'please [[fail]]')['id']}")
    assert plain["status"] == "failed"
    assert plain["error"]["code"] == "agent_error"
    coded = wait_for(
        api, f"/conversations/{start(api, agent, 'x [[fail:quota_exceeded:Out of credits]]')['id']}"
    )
    assert coded["error"] == {"code": "quota_exceeded", "message": "Out of credits"}
    assert coded["last_message"]["role"] == "user"


def test_artifact_directives_and_attachment_names(api, agent):
    upload = api.post("/artifacts", files={"file": ("brief.pdf", b"%PDF-1.4 tiny")}).json()["data"]
    conversation = start(
        api,
        agent,
        "summarise [[artifact:summary.md:# Done]] [[artifact:data.csv]]",
        artifact_ids=[upload["id"]],
    )
    done = wait_for(api, f"/conversations/{conversation['id']}")
    reply = done["last_message"]
    assert "Attachments: brief.pdf" in reply["content"]
    assert "Artifacts: summary.md, data.csv" in reply["content"]
    produced = [api.get(f"/artifacts/{i}").json()["data"] for i in reply["artifact_ids"]]
    assert [(a["name"], a["created_by"], a["conversation_id"]) for a in produced] == [
        ("summary.md", "agent", conversation["id"]),
        ("data.csv", "agent", conversation["id"]),
    ]
    assert api.get(f"/artifacts/{produced[0]['id']}/content").content == b"# Done"
    default = api.get(f"/artifacts/{produced[1]['id']}/content").content
    assert default == f"artifact data.csv of {conversation['id']} turn 1\n".encode()
    listed = api.get("/artifacts", params={"conversation_id": conversation["id"]}).json()["data"]
    assert {a["id"] for a in listed} == set(reply["artifact_ids"])


def test_delay_directive_overrides_latency(api, agent):
    started = time.monotonic()
    conversation = start(api, agent, "wait [[delay:0.3]]")
    wait_for(api, f"/conversations/{conversation['id']}")
    assert time.monotonic() - started >= 0.3


def test_next_turn_after_completion_and_failure(api, agent):
    conversation = start(api, agent, "first [[fail]]")
    wait_for(api, f"/conversations/{conversation['id']}")
    message = api.post(f"/conversations/{conversation['id']}/messages", json={"content": "second"})
    assert message.status_code == 201
    assert message.json()["data"]["turn"] == 2
    done = wait_for(api, f"/conversations/{conversation['id']}")
    assert done["status"] == "completed"
    assert done["error"] is None
    assert done["turns"] == 2
    assert done["last_message"]["content"].startswith("Reply to turn 2: second")


def test_list_filters(api, agent):
    conversation = start(api, agent, "listed")
    wait_for(api, f"/conversations/{conversation['id']}")
    mine = api.get("/conversations", params={"agent_id": agent["id"], "status": "completed"}).json()["data"]
    assert [c["id"] for c in mine] == [conversation["id"]]
    assert_error(api.get("/conversations", params={"status": "done"}), 422, "validation_error")


def test_unknown_attachment_is_404_naming_the_field(api, agent):
    response = api.post(
        "/conversations", json={"agent_id": agent["id"], "message": "m", "artifact_ids": ["art_x"]}
    )
    assert assert_error(response, 404, "not_found")["details"][0]["field"] == "artifact_ids"


def test_admin_finish_ends_a_turn_now_as_its_delay_would(api, agent, emulator):
    waiting = start(api, agent, "slow [[delay:3600]] [[artifact:notes.txt:n]]")
    failing = start(api, agent, "slow [[delay:3600]] [[fail:quota:Out]]")
    ended = wait_for(api, f"/conversations/{start(api, agent, 'quick')['id']}")
    before = time.time()
    finished = emulator.admin.finish_turns([waiting["id"], failing["id"], ended["id"], "conv_unknown"])
    assert set(finished) == {waiting["id"], failing["id"]}  # nothing under way in the others
    done = api.get(f"/conversations/{waiting['id']}").json()["data"]
    assert done["status"] == "completed"
    assert done["updated_at"] == finished[waiting["id"]]
    assert done["last_message"]["content"].startswith("Reply to turn 1: slow")
    assert len(done["last_message"]["artifact_ids"]) == 1
    failed = api.get(f"/conversations/{failing['id']}").json()["data"]
    assert failed["error"] == {"code": "quota", "message": "Out"}
    assert api.get(f"/conversations/{ended['id']}").json()["data"] == ended
    stamp = datetime.datetime.fromisoformat(finished[waiting["id"]].replace("Z", "+00:00")).timestamp()
    assert before - 0.001 <= stamp <= time.time()
