"""The first flow over real HTTP: a conversation from creation to the agent's reply."""

from __future__ import annotations

import time


def wait_for(api, conversation_id, statuses=("completed", "failed", "cancelled"), timeout=5.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        conversation = api.get(f"/conversations/{conversation_id}").json()["data"]
        if conversation["status"] in statuses:
            return conversation
        time.sleep(0.01)
    raise AssertionError(f"conversation {conversation_id} never reached {statuses}")


def test_conversation_runs_to_a_deterministic_reply(api, agent):
    created = api.post("/conversations", json={"agent_id": agent["id"], "message": "hello there"})
    assert created.status_code == 201
    assert created.json()["data"]["status"] == "queued"
    done = wait_for(api, created.json()["data"]["id"])
    assert done["status"] == "completed"
    assert done["last_message"]["role"] == "assistant"
    assert done["last_message"]["content"].startswith("Reply to turn 1: hello there\n")
