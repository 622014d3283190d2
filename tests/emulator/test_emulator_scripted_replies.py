"""``[[replies:[...]]]``: a conversation's replies scripted turn by turn (in a message or in instructions)."""

from __future__ import annotations

import hashlib
import json

import pytest
from emulator_helpers import client_for, wait_for
from hypothesis import given
from hypothesis import strategies as st

from airflow_provider_nairi.emulator import run_emulator
from airflow_provider_nairi.emulator.agent import MAX_SCRIPTED, SCRIPT_OPEN, split_script


def script(*replies) -> str:
    return f"[[replies:{json.dumps(list(replies))}]]"


def start(api, agent, message):
    response = api.post("/conversations", json={"agent_id": agent["id"], "message": message})
    assert response.status_code == 201, response.text
    return response.json()["data"]["id"]


def send(api, conversation_id, content):
    response = api.post(f"/conversations/{conversation_id}/messages", json={"content": content})
    assert response.status_code == 201, response.text
    return wait_for(api, f"/conversations/{conversation_id}")


def reply_of(done: dict) -> str:
    assert done["status"] == "completed"
    return done["last_message"]["content"]


def test_a_message_scripts_this_turn_and_the_next_then_replies_go_back_to_normal(api, agent):
    conversation_id = start(api, agent, "Give me JSON " + script("not json {", {"total": 3}))
    assert reply_of(wait_for(api, f"/conversations/{conversation_id}")) == "not json {"
    assert reply_of(send(api, conversation_id, "That was not JSON.")) == '{"total": 3}'
    digest = hashlib.sha256(agent["instructions"].encode()).hexdigest()[:12]
    assert (
        reply_of(send(api, conversation_id, "thanks")) == f"Reply to turn 3: thanks\nInstructions: {digest}"
    )


def test_a_later_message_replaces_the_script_from_its_own_turn(api, agent):
    conversation_id = start(api, agent, "first " + script("one", "two", "three"))
    wait_for(api, f"/conversations/{conversation_id}")
    assert reply_of(send(api, conversation_id, "second " + script("TWO"))) == "TWO"
    third = reply_of(send(api, conversation_id, "third"))
    assert third.startswith("Reply to turn 3: third\n")


def test_items_are_json_so_they_may_hold_brackets_and_directive_lookalikes(api, agent):
    tricky = 'chose ["a", "b"]] then [[fail]] and [[artifact:x.txt]] | done'
    conversation_id = start(api, agent, "route " + script(tricky, ["route.a", "route.b"]))
    done = wait_for(api, f"/conversations/{conversation_id}")
    assert reply_of(done) == tricky  # nothing in a scripted reply acts as a directive
    assert done["last_message"]["artifact_ids"] == []
    assert reply_of(send(api, conversation_id, "again")) == '["route.a", "route.b"]'


def test_other_directives_of_the_message_still_apply(api, agent):
    conversation_id = start(api, agent, "x [[artifact:notes.md:hi]] " + script("scripted"))
    done = wait_for(api, f"/conversations/{conversation_id}")
    assert reply_of(done) == "scripted"
    assert len(done["last_message"]["artifact_ids"]) == 1
    failed_id = start(api, agent, "x [[fail:bad:no]] " + script("never seen"))
    failed = wait_for(api, f"/conversations/{failed_id}")
    assert failed["status"] == "failed"
    assert failed["error"] == {"code": "bad", "message": "no"}


def test_agent_instructions_script_every_conversation_and_a_message_script_wins(api):
    scripted = api.post(
        "/agents", json={"name": "scripted", "instructions": "Be terse. " + script("first", "second")}
    ).json()["data"]
    for _ in range(2):
        conversation_id = start(api, scripted, "hello")
        assert reply_of(wait_for(api, f"/conversations/{conversation_id}")) == "first"
        assert reply_of(send(api, conversation_id, "more")) == "second"
        assert reply_of(send(api, conversation_id, "more")).startswith("Reply to turn 3: more\n")
    own = start(api, scripted, "mine " + script("own"))
    assert reply_of(wait_for(api, f"/conversations/{own}")) == "own"
    assert reply_of(send(api, own, "next")) == "second"  # past its own script: the instructions' turn 2


def test_malformed_scripts_are_ordinary_text(api, agent):
    for message in ("[[replies:not json]]", '[[replies:["a"]', '[[replies:{"a": 1}]]', "[[replies: []]]"):
        conversation_id = start(api, agent, message)
        assert reply_of(wait_for(api, f"/conversations/{conversation_id}")).startswith(
            f"Reply to turn 1: {' '.join(message.split())}\n"
        )


def test_the_script_is_not_part_of_the_conversation_a_client_sees(api, agent):
    conversation_id = start(api, agent, "hidden " + script("x"))
    done = wait_for(api, f"/conversations/{conversation_id}")
    assert not [key for key in done if key.startswith("_")]
    listed = api.get("/conversations", params={"agent_id": agent["id"]}).json()["data"]
    assert not [key for item in listed for key in item if key.startswith("_")]


def test_the_script_survives_a_restart(tmp_path):
    keys = [("nr_scripted_key", ["read", "write"])]
    with run_emulator(state_dir=tmp_path, keys=keys) as emu, client_for(emu, "nr_scripted_key") as api:
        agent = api.post("/agents", json={"name": "a", "instructions": ""}).json()["data"]
        conversation_id = start(api, agent, "go " + script("one", "two"))
        wait_for(api, f"/conversations/{conversation_id}")
    with run_emulator(state_dir=tmp_path, keys=keys) as emu, client_for(emu, "nr_scripted_key") as api:
        assert reply_of(send(api, conversation_id, "on")) == "two"


def test_a_list_longer_than_the_limit_is_ordinary_text():
    too_long = "[[replies:" + json.dumps(["x"] * (MAX_SCRIPTED + 1)) + "]]"
    assert split_script(too_long) == (too_long, None)
    assert split_script("[[replies:" + "[" * 100_000 + "]]") == ("[[replies:" + "[" * 100_000 + "]]", None)


plain_text = st.text().filter(lambda text: SCRIPT_OPEN not in text)


@given(plain_text, st.lists(st.text(), max_size=5), plain_text)
def test_any_list_of_strings_round_trips_and_the_rest_is_kept(before, replies, after):
    text, found = split_script(f"{before}[[replies:{json.dumps(replies)}]]{after}")
    assert found == tuple(replies)
    assert text == f"{before} {after}"


@pytest.mark.parametrize("value", [1, 2.5, None, True, {"a": [1, 2]}, ["x", "y"]])
def test_non_string_items_are_replied_as_their_json(value):
    assert split_script(script(value)) == (" ", (json.dumps(value),))
