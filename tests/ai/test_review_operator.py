"""NairiReviewOperator and nairi_review without a metadata DB: the group's shape, the form a reviewer sees
(bounded, fenced, never a template), the decisions, and the refusal before Airflow 3.1."""

from __future__ import annotations

import time
from datetime import timedelta

import pendulum
import pytest
from airflow.providers.common.compat.sdk import DAG, AirflowFailException

from airflow_provider_nairi.exceptions import NairiConfigurationError, NairiOutputError, NairiParameterError
from airflow_provider_nairi.operators import review
from airflow_provider_nairi.operators.review import (
    MAX_SHOWN_CHARS,
    NairiReviewOperator,
    fenced,
    nairi_review,
)

START = pendulum.datetime(2026, 1, 1, tz="UTC")
#: Airflow 3.1+ has the human-in-the-loop operators; before, only the refusal can be tested.
needs_hitl = pytest.mark.skipif(review.HITLOperator is review.BaseOperator, reason="Airflow 3.1+")
RESULT = {
    "conversation_id": "conv_1",
    "status": "completed",
    "turn": 2,
    "reply": "Done.",
    "reply_message_id": "msg_1",
    "artifact_ids": [],
    "url": "https://app.nairi.ai/conversations/conv_1",
}


@needs_hitl
def test_the_group_has_one_review_task_per_round_and_the_last_cannot_ask_again():
    with DAG(dag_id="reviewed", schedule=None, start_date=START) as dag:
        nairi_review(conversation_id="conv_1", max_iterations=3, timeout=60, poll_interval=1)
    reviews = [dag.task_dict[f"review.review_{n}"] for n in (1, 2, 3)]
    assert [r.options for r in reviews] == [
        ["Approve", "Request changes", "Reject"],
        ["Approve", "Request changes", "Reject"],
        ["Approve", "Reject"],
    ]
    assert [r.request_changes_to for r in reviews] == ["review.revise_1", "review.revise_2", None]
    assert reviews[0].response_timeout == timedelta(seconds=60)
    assert dag.task_dict["review.review_2"].upstream_task_ids == {"review.revise_1"}
    approved = dag.task_dict["review.approved"]
    assert approved.upstream_task_ids == {r.task_id for r in reviews}
    assert approved.trigger_rule == "none_failed_min_one_success"
    revise = dag.task_dict["review.revise_1"]
    assert revise.message == "{{ ti.xcom_pull(task_ids='review.review_1')['changes'] }}"
    assert (revise.instruct_output, revise.poll_interval) == (False, 1)
    assert list(reviews[0].params) == ["changes"]  # the form shows the task's own field only


@needs_hitl
def test_one_round_is_a_plain_gate():
    with DAG(dag_id="gate", schedule=None, start_date=START) as dag:
        nairi_review(group_id="gate", conversation_id="conv_1", max_iterations=1)
    assert sorted(dag.task_dict) == ["gate.approved", "gate.review_1"]
    assert dag.task_dict["gate.review_1"].options == ["Approve", "Reject"]


@needs_hitl
@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"max_iterations": 0}, "at least 1 review round"),
        ({"timeout": "soon"}, "timeout: 'soon' is neither a timedelta nor seconds"),
        ({"message": "x"}, "their message is the reviewer's"),
        ({"output_type": 5}, "output_type: 5 is neither"),
    ],
)
def test_parameters_are_checked_when_the_dag_is_parsed(kwargs, error):
    with DAG(dag_id="bad", schedule=None, start_date=START), pytest.raises(NairiParameterError, match=error):
        nairi_review(conversation_id="conv_1", **kwargs)


def operator(**kwargs):
    with DAG(dag_id="one", schedule=None, start_date=START):
        return NairiReviewOperator(task_id="review", conversation_id="conv_1", **kwargs)


@needs_hitl
def test_the_form_fences_the_reply_so_no_agent_text_becomes_markup():
    text = "```\n# not a heading\n````` [link](javascript:x) {{ var }}"
    body = operator(request_changes_to="revise").review_body({**RESULT, "reply": text})
    assert "``````text\n" + text + "\n``````" in body
    assert body.startswith("Turn 2 of [conversation conv_1](https://app.nairi.ai/conversations/conv_1)")
    assert body.endswith("round 2 then shows its reply.")
    assert fenced("no ticks") == "```text\nno ticks\n```"


@needs_hitl
def test_the_form_is_bounded_whatever_the_reply_and_the_artifacts():
    body = operator().review_body(
        {**RESULT, "reply": "x" * 10**6, "artifact_ids": [f"art_{n}" for n in range(500)]}
    )
    assert len(body) < MAX_SHOWN_CHARS + 2_000
    assert f"[... {10**6 - MAX_SHOWN_CHARS} more characters on the conversation's page]" in body
    assert "- ... and 480 more" in body
    assert operator().review_body({**RESULT, "reply": None}).count("(no reply)") == 1


def test_before_airflow_3_1_the_review_is_refused_naming_the_version(monkeypatch):
    monkeypatch.setattr(review, "HITLOperator", review.BaseOperator)
    with pytest.raises(NairiConfigurationError, match=r"needs Airflow 3\.1 or later .*; this is Airflow \d"):
        nairi_review(conversation_id="conv_1")
    with pytest.raises(NairiConfigurationError, match=r"NairiReviewOperator needs Airflow 3\.1"):
        review.require_hitl("NairiReviewOperator")


@needs_hitl
@pytest.mark.nairi_emulator
def test_a_nairi_error_ends_the_review_as_everywhere(nairi_emulator):
    """The review reads the conversation through the provider's one translation: a 404 fails without
    retries (AirflowFailException), naming the API's error."""
    with DAG(dag_id="gate", schedule=None, start_date=START):
        gate = NairiReviewOperator(task_id="gate", conversation_id="conv_gone")
    with pytest.raises(AirflowFailException, match=r"^Nairi: .*conv_gone"):
        gate.execute({"ti": None})


@needs_hitl
def test_typed_replies_and_review_combine_each_revised_reply_is_validated_before_it_is_shown():
    """``nairi_review(output_type=...)``: every revise turn is a typed send (repaired in the conversation,
    ``max_repair_turns``), so the next round only ever shows a reply that passed; the reviewer's text is sent
    as written (no schema appended)."""
    schema = {"type": "object", "required": ["title"], "properties": {"title": {"type": "string"}}}
    with DAG(dag_id="typed_review", schedule=None, start_date=START) as dag:
        nairi_review(conversation_id="conv_1", max_iterations=3, output_type=schema, max_repair_turns=1)
    for number in (1, 2):
        revise = dag.task_dict[f"review.revise_{number}"]
        assert (revise.output_type, revise.max_repair_turns, revise.instruct_output) == (schema, 1, False)
        assert revise.reply_format().check('{"title": "ok"}').valid
        assert not revise.reply_format().check('{"name": "no title"}').valid
        assert dag.task_dict[f"review.review_{number + 1}"].upstream_task_ids == {revise.task_id}


@needs_hitl
@pytest.mark.nairi_emulator(turn_latency=0.02)
def test_a_typed_review_shows_the_validated_output_and_refuses_a_reply_that_never_passed(nairi_emulator):
    """The approved result carries ``output`` as the conversation operators' does; a reply that is not valid
    is never put before a reviewer (NairiOutputError, final)."""
    from airflow_provider_nairi.hooks.nairi import NairiHook  # noqa: PLC0415

    client = NairiHook().client
    agent_id = client.create_agent("writer", "Write.")["id"]
    valid = client.create_conversation(agent_id, '[[replies:[{"title": "Ok"}]]]')["id"]
    invalid = client.create_conversation(agent_id, '[[replies:["no JSON here"]]]')["id"]
    schema = {"type": "object", "required": ["title"], "properties": {"title": {"type": "string"}}}
    with DAG(dag_id="typed_gate", schedule=None, start_date=START):
        shown = NairiReviewOperator(task_id="shown", conversation_id=valid, output_type=schema)
        refused = NairiReviewOperator(task_id="refused", conversation_id=invalid, output_type=schema)
    deadline = time.monotonic() + 30
    while any(client.get_conversation(c)["status"] != "completed" for c in (valid, invalid)):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    result = shown.reviewed()
    assert (result["output"], result["reply"]) == ({"title": "Ok"}, '{"title": "Ok"}')
    with pytest.raises(NairiOutputError, match=r"under review is not valid for output_type") as raised:
        refused.reviewed()
    assert raised.value.conversation_id == invalid and raised.value.errors
