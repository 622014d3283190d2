"""Typed replies on the conversation operators, against the emulator: repair turns in the same conversation,
on the worker and across deferral, within the budget, and never repeated by a retry."""

from __future__ import annotations

import json

import pydantic
import pytest
from airflow.providers.common.compat.sdk import AirflowFailException, TaskDeferred
from conversation_fakes import durable_only
from test_conversation_flows import follow_up, resume, start

from airflow_provider_nairi.exceptions import NairiOutputError, NairiParameterError
from airflow_provider_nairi.hooks.nairi import NairiHook

pytestmark = pytest.mark.nairi_emulator(turn_latency=0.05)


class Total(pydantic.BaseModel):
    total: int


def script(*replies) -> str:
    return f"[[replies:{json.dumps(list(replies))}]]"


@pytest.fixture
def no_sleep():
    """Real sleeps here: the emulator's agents take real time."""


@pytest.fixture
def agent_id(nairi_emulator):
    return NairiHook().client.create_agent("typed", "Answer in JSON.")["id"]


def messages(conversation_id):
    return [(m["role"], m["turn"], m["content"]) for m in NairiHook().client.list_messages(conversation_id)]


def sends(nairi_emulator):
    """Idempotency keys of the message sends the emulator answered (201), in order."""
    return [
        r["idempotency_key"]
        for r in nairi_emulator.admin.requests_log()
        if r["path"].endswith("/messages") and r["method"] == "POST" and r["status"] == 201
    ]


def test_an_invalid_reply_is_repaired_in_the_same_conversation_on_turn_2(agent_id, context):
    message = "Count the lines. " + script("About three, I think.", {"total": 3})
    result = start(agent_id, message=message, output_type=Total).execute(context)
    assert result["output"] == {"total": 3}
    assert (result["turn"], result["reply"]) == (2, '{"total": 3}')
    thread = messages(result["conversation_id"])
    assert [(role, turn) for role, turn, _ in thread] == [
        ("user", 1),
        ("assistant", 1),
        ("user", 2),
        ("assistant", 2),
    ]
    first, repair = thread[0][2], thread[2][2]
    assert first.startswith(message + "\n\nReply with JSON only")
    assert '"total"' in first  # the schema
    assert repair == (
        "Your previous reply could not be used:\n"
        "- the reply is not JSON (Expecting value: line 1 column 1 (char 0)) and holds no ```json block; "
        "reply with the JSON only\n"
        "Reply again with the corrected answer only, in the format asked for."
    )


def test_a_valid_first_reply_needs_no_repair_and_reply_stays_raw(agent_id, context, nairi_emulator):
    fenced = 'Here you go:\n```json\n{"total": 7}\n```'
    result = start(agent_id, message="Count. " + script(fenced), output_type=Total).execute(context)
    assert (result["output"], result["reply"], result["turn"]) == ({"total": 7}, fenced, 1)
    assert sends(nairi_emulator) == []


def test_repairs_work_across_deferral_each_turn_deferred(agent_id, context):
    operator = start(
        agent_id, message="Count. " + script("nope", '{"total": "x"}', '{"total": 5}'), output_type=Total
    )
    operator.deferrable = True
    with pytest.raises(TaskDeferred) as first:
        operator.execute(context)
    with pytest.raises(TaskDeferred) as second:
        resume(operator, context, first.value)
    assert second.value.trigger.turn == 2
    assert not second.value.kwargs  # the job rides in XCom: `airflow dags test` drops a deferral's kwargs
    assert context["ti"].xcom["nairi_job"]["repairs"] == 1
    with pytest.raises(TaskDeferred) as third:
        resume(start(agent_id, output_type=Total, deferrable=True), context, second.value)  # a fresh worker
    assert (third.value.trigger.turn, context["ti"].xcom["nairi_job"]["repairs"]) == (3, 2)
    result = resume(start(agent_id, output_type=Total, deferrable=True), context, third.value)
    assert (result["turn"], result["output"]) == (3, {"total": 5})
    repair_2 = messages(result["conversation_id"])[4][2]
    assert "- $.total: Input should be a valid integer, unable to parse string as an integer" in repair_2


def test_the_budget_spent_fails_the_task_at_once_with_the_errors_and_the_conversation(agent_id, context):
    operator = start(agent_id, message="Count. " + script("a", "b", "c", "d"), output_type=Total)
    with pytest.raises(AirflowFailException) as failed:
        operator.execute(context)
    error = failed.value.__cause__
    assert isinstance(error, NairiOutputError)
    assert (error.turn, error.code) == (3, "invalid_output")
    assert error.conversation_id == context["ti"].xcom["conversation_id"]
    assert error.errors[0].startswith("the reply is not JSON")
    assert "still not valid after 2 repair turn(s) (max_repair_turns=2)" in str(failed.value)
    assert len(messages(error.conversation_id)) == 6  # 1 question + 2 repairs, 3 replies; no 4th turn


def test_max_repair_turns_0_fails_on_the_first_invalid_reply(agent_id, context, nairi_emulator):
    with pytest.raises(AirflowFailException, match="after 0 repair turn"):
        start(agent_id, message=script("no"), output_type=Total, max_repair_turns=0).execute(context)
    assert sends(nairi_emulator) == []


def test_instruct_output_false_sends_the_message_as_written(agent_id, context):
    result = start(
        agent_id,
        message="Reply {total: n}. " + script('{"total": 1}'),
        output_type=Total,
        instruct_output=False,
    ).execute(context)
    assert messages(result["conversation_id"])[0][2] == "Reply {total: n}. " + script('{"total": 1}')


def test_a_json_schema_output_type_and_a_send_operator(agent_id, context):
    started = start(agent_id, message="hi").execute(context)
    schema = {"type": "array", "items": {"type": "string"}, "minItems": 1}
    result = follow_up(
        started["conversation_id"], message="List tags. " + script("[]", '["a", "b"]'), output_type=schema
    ).execute({**context, "task_state_store": None})
    assert (result["turn"], result["output"]) == (3, ["a", "b"])
    assert "- $: [] should be non-empty" in messages(started["conversation_id"])[4][2]


@durable_only
def test_a_retry_reattaches_to_the_repair_turn_and_never_repeats_a_repair(context, nairi_emulator):
    agent_id = NairiHook().client.create_agent("slow", "Take your time. [[delay:0.3]]")["id"]
    operator = start(agent_id, message="Count. " + script("nope", '{"total": 2}'), output_type=Total)
    operator.deferrable = True
    with pytest.raises(TaskDeferred) as first:
        operator.execute(context)
    with pytest.raises(TaskDeferred):
        resume(operator, context, first.value)  # repair 1 sent; the worker dies while it is deferred
    assert len(sends(nairi_emulator)) == 1
    result = start(agent_id, output_type=Total).execute(context)  # the retry, on the worker
    assert (result["output"], result["turn"]) == ({"total": 2}, 2)
    assert len(sends(nairi_emulator)) == 1  # reattached to turn 2, no second repair
    assert nairi_emulator.admin.counts()["conversations"] == 1


@durable_only
def test_a_crash_between_the_repair_send_and_storing_it_replays_the_same_send(agent_id, context, store):
    result = start(
        agent_id, message="Count. " + script("nope", "no", '{"total": 4}'), output_type=Total
    ).execute(context)
    assert result["turn"] == 3
    stored = store.get("nairi_conversation")
    assert stored == {
        "conversation_id": result["conversation_id"],
        "turn": 3,
        "submission": 1,
        "first_turn": 1,
        "repairs": 2,
    }
    store.set(
        "nairi_conversation", {"conversation_id": result["conversation_id"], "turn": 1, "submission": 1}
    )
    again = start(agent_id, output_type=Total).execute(context)  # the store lost both repairs
    assert (again["turn"], again["output"]) == (3, {"total": 4})
    assert len(messages(result["conversation_id"])) == 6


@durable_only
def test_a_retry_after_the_budget_is_spent_fails_again_without_sending(agent_id, context, nairi_emulator):
    with pytest.raises(AirflowFailException):
        start(agent_id, message=script("a", "b", "c"), output_type=Total).execute(context)
    before = len(sends(nairi_emulator))
    with pytest.raises(AirflowFailException, match="still not valid after 2 repair turn"):
        start(agent_id, output_type=Total).execute(context)
    assert len(sends(nairi_emulator)) == before


def test_each_repair_turn_has_its_own_idempotency_key(agent_id, context, nairi_emulator):
    start(agent_id, message=script("a", "b", '{"total": 0}'), output_type=Total).execute(context)
    keys = sends(nairi_emulator)
    assert len(keys) == 2 and len(set(keys)) == 2 and all(key.startswith("airflow-") for key in keys)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"output_type": 5}, "output_type: 5 is neither a type pydantic can validate"),
        ({"output_type": {"type": "nope"}}, "the JSON Schema is invalid"),
        ({"output_type": Total, "wait_for_reply": False}, "a typed reply needs wait_for_reply=True"),
        ({"max_repair_turns": -1}, "max_repair_turns"),
        ({"instruct_output": "yes"}, "instruct_output"),
    ],
)
def test_parameters_are_checked_when_the_dag_is_parsed(kwargs, message):
    with pytest.raises(NairiParameterError, match=message):
        start("agt_1", **kwargs)
