"""Typed replies and branch choices: what an agent is told, how its reply is read, what a repair turn says."""

from __future__ import annotations

import datetime
import enum
import json
from typing import Literal

import pydantic
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typing_extensions import TypedDict

from airflow_provider_nairi.exceptions import NairiError, NairiParameterError
from airflow_provider_nairi.resources.replies import (
    MAX_ERROR_CHARS,
    MAX_ERRORS,
    BranchReply,
    NairiOutputError,
    TypedReply,
    bounded,
    repair_message,
)


class Kind(enum.Enum):
    INVOICE = "invoice"
    CONTRACT = "contract"


class Line(pydantic.BaseModel):
    sku: str
    quantity: int = pydantic.Field(ge=1)


class Invoice(pydantic.BaseModel):
    kind: Kind
    total: float
    due: datetime.date
    lines: list[Line] = []


class Point(TypedDict):
    x: int
    y: int


INVOICE_SCHEMA = {
    "type": "object",
    "properties": {"total": {"type": "number"}, "lines": {"type": "array", "items": {"type": "string"}}},
    "required": ["total"],
    "additionalProperties": False,
}

# Replies ------


def test_a_model_reply_is_validated_and_returned_as_json():
    reply = '{"kind": "invoice", "total": 12.5, "due": "2026-03-01", "lines": [{"sku": "A", "quantity": 2}]}'
    check = TypedReply(Invoice).check(reply)
    assert check.valid
    assert check.value == {
        "kind": "invoice",
        "total": 12.5,
        "due": "2026-03-01",
        "lines": [{"sku": "A", "quantity": 2}],
    }
    json.dumps(check.value)  # plain JSON: what XCom stores


def test_the_first_fenced_json_block_is_read_when_the_whole_reply_is_not_json():
    reply = (
        "Here is some code:\n```python\nprint('{not this}')\n```\nand the answer:\n"
        '```JSON\n{"x": 1, "y": 2}\n```\nthen ```json\n{"x": 9, "y": 9}\n```'
    )
    assert TypedReply(Point).check(reply).value == {"x": 1, "y": 2}


def test_a_fence_inside_a_json_string_does_not_end_the_block():
    reply = 'Answer:\n```json\n{\n  "sku": "```",\n  "quantity": 1\n}\n```'
    assert TypedReply(Line).check(reply).value == {"sku": "```", "quantity": 1}


def test_a_whole_reply_that_is_json_wins_even_when_a_string_in_it_holds_a_fence():
    reply = json.dumps({"x": 1, "y": 2, "note": '```json\n{"x": 5}\n```'})
    assert TypedReply(dict).check(reply).value["x"] == 1


@pytest.mark.parametrize(
    ("output_type", "reply", "value"),
    [
        (list[int], "[1, 2, 3]", [1, 2, 3]),
        (Literal["yes", "no"], '"yes"', "yes"),
        (int, " 42 \n", 42),
        (Kind, '"contract"', "contract"),
        (datetime.datetime, '"2026-01-02T03:04:05Z"', "2026-01-02T03:04:05Z"),
        (INVOICE_SCHEMA, '{"total": 3, "lines": ["a"]}', {"total": 3, "lines": ["a"]}),
    ],
)
def test_any_type_adapter_type_or_json_schema(output_type, reply, value):
    check = TypedReply(output_type).check(reply)
    assert check.errors == ()
    assert check.value == value


def test_a_strict_model_accepts_the_json_forms_of_its_fields():
    class Strict(pydantic.BaseModel):
        model_config = pydantic.ConfigDict(strict=True)
        when: datetime.datetime
        kind: Kind

    check = TypedReply(Strict).check('{"when": "2026-01-01T00:00:00Z", "kind": "invoice"}')
    assert check.value == {"when": "2026-01-01T00:00:00Z", "kind": "invoice"}


@pytest.mark.parametrize(
    ("reply", "error"),
    [
        ("", "the reply is empty; reply with the JSON only"),
        (None, "the reply is empty; reply with the JSON only"),
        (
            "Sure! The total is 3.",
            "the reply is not JSON (Expecting value: line 1 column 1 (char 0)) and holds no",
        ),
        ('```json\n{"total": \n```', "the ```json block is not valid JSON (Expecting value"),
        ('```json\n{"total": 3}', "the reply is not JSON"),  # a block that is never closed is no block
        ('{"total": NaN}', "the reply is not JSON (NaN is not JSON)"),
        ('{"total": Infinity}', "the reply is not JSON (Infinity is not JSON)"),
    ],
)
def test_replies_that_are_not_json_say_why(reply, error):
    check = TypedReply(INVOICE_SCHEMA).check(reply)
    assert not check.valid
    assert check.errors[0].startswith(error)


def test_model_errors_name_each_location_without_quoting_the_input():
    reply = '{"kind": "memo", "total": "lots", "due": "soon", "lines": [{"sku": "A", "quantity": 0}]}'
    errors = TypedReply(Invoice).check(reply).errors
    assert errors == (
        "$.kind: Input should be 'invoice' or 'contract'",
        "$.total: Input should be a valid number, unable to parse string as a number",
        "$.due: Input should be a valid date or datetime, input is too short",
        "$.lines[0].quantity: Input should be greater than or equal to 1",
    )


def test_json_schema_errors_name_each_location():
    errors = TypedReply(INVOICE_SCHEMA).check('{"lines": [1, "b"], "extra": true}').errors
    assert errors == (
        "$: 'total' is a required property",
        "$: Additional properties are not allowed ('extra' was unexpected)",
        "$.lines[0]: 1 is not of type 'string'",
    )


@pytest.mark.parametrize(
    ("output_type", "message"),
    [
        (5, "output_type: 5 is neither a type pydantic can validate nor a JSON Schema dict"),
        (object(), "is neither a type pydantic can validate"),
        ({"type": "nope"}, "output_type: the JSON Schema is invalid: 'nope' is not valid under any"),
        (
            {"$ref": "https://example.com/s.json"},
            "refers to 'https://example.com/s.json'; only references inside",
        ),
        ({"items": {"$ref": "file:///etc/passwd"}}, "refers to 'file:///etc/passwd'"),
    ],
)
def test_an_output_type_that_cannot_validate_is_refused_when_the_dag_is_parsed(output_type, message):
    with pytest.raises(NairiParameterError, match="output_type") as raised:
        TypedReply(output_type)
    assert message in str(raised.value)


def test_a_local_reference_that_resolves_to_nothing_is_a_parameter_error_when_checked():
    schema = {"$ref": "#/$defs/missing"}
    with pytest.raises(NairiParameterError, match="reference that cannot be resolved"):
        TypedReply(schema).check("1")


def test_the_instruction_shows_the_schema_as_json():
    text = TypedReply(Point).instruction()
    assert text.startswith("Reply with JSON only: one JSON value and no other text")
    schema = text.split("```json\n", 1)[1].rsplit("\n```", 1)[0]
    assert json.loads(schema) == pydantic.TypeAdapter(Point).json_schema()
    assert (
        json.loads(TypedReply(INVOICE_SCHEMA).instruction().split("```json\n", 1)[1][:-4]) == INVOICE_SCHEMA
    )


@settings(max_examples=50, deadline=None)
@given(
    st.builds(
        Invoice,
        kind=st.sampled_from(Kind),
        total=st.floats(allow_nan=False, allow_infinity=False),
        due=st.dates(),
        lines=st.lists(st.builds(Line, sku=st.text(), quantity=st.integers(min_value=1)), max_size=3),
    ),
    st.text(alphabet=st.characters(blacklist_characters="`"), max_size=40),
)
def test_any_valid_value_round_trips_bare_or_fenced_in_prose(invoice, prose):
    expected = invoice.model_dump(mode="json")
    typed = TypedReply(Invoice)
    assert typed.check(invoice.model_dump_json()).value == expected
    assert (
        typed.check(f"{prose}\n```json\n{invoice.model_dump_json(indent=2)}\n```\n{prose}").value == expected
    )


# Bounds: never trust the reply ------


def test_a_huge_reply_makes_a_small_repair_message():
    huge = json.dumps({"kind": "x" * 5_000_000, "lines": [{"sku": 1}] * 10_000})
    errors = TypedReply(Invoice).check(huge).errors
    assert len(errors) == MAX_ERRORS
    assert errors[-1] == f"... and {3 + 2 * 10_000 - MAX_ERRORS + 1} more"
    message = repair_message(errors)
    assert len(message) < 2_000
    schema_errors = TypedReply({"type": "array", "items": {"type": "integer"}}).check(
        json.dumps(["y" * 10**6] * 50)
    )
    assert all(len(error) <= MAX_ERROR_CHARS for error in schema_errors.errors)
    assert len(repair_message(schema_errors.errors)) <= MAX_ERRORS * (MAX_ERROR_CHARS + 3) + 200


def test_deeply_nested_replies_are_errors_not_crashes():
    deep = "[" * 100_000 + "]" * 100_000
    assert not TypedReply(list).check(deep).valid
    assert not BranchReply(["a"]).check(deep).valid


@given(st.lists(st.text(max_size=1000), max_size=40))
def test_bounded_errors_keep_their_limits_and_bounding_twice_changes_nothing(errors):
    once = bounded(errors)
    assert len(once) <= MAX_ERRORS
    assert all(len(line) <= MAX_ERROR_CHARS for line in once)
    assert bounded(once) == once
    if len(errors) > MAX_ERRORS:
        assert once[-1] == f"... and {len(errors) - MAX_ERRORS + 1} more"
    else:
        assert len(once) == len(errors)


@settings(max_examples=30, deadline=None)
@given(st.text(max_size=20_000))
def test_any_reply_gives_a_bounded_repair_message(reply):
    for reply_format in (TypedReply(Invoice), TypedReply(INVOICE_SCHEMA), BranchReply(["a", "b"])):
        check = reply_format.check(reply)
        if not check.valid:
            assert len(repair_message(check.errors)) <= MAX_ERRORS * (MAX_ERROR_CHARS + 3) + 200


def test_the_repair_message_quotes_the_errors_and_asks_again():
    assert repair_message(["$.total: Field required", "$.due: bad"]) == (
        "Your previous reply could not be used:\n- $.total: Field required\n- $.due: bad\n"
        "Reply again with the corrected answer only, in the format asked for."
    )


# Branch choices ------

CHOICES = ["route.invoice", "route.contract", "route.other"]


@pytest.mark.parametrize(
    ("reply", "chosen"),
    [
        ("route.invoice", ["route.invoice"]),
        ("  route.other\n", ["route.other"]),
        ('"route.contract"', ["route.contract"]),
        ('["route.contract", "route.invoice"]', ["route.contract", "route.invoice"]),
        ('["route.other", "route.other"]', ["route.other"]),
        ('Both:\n```json\n["route.invoice", "route.other"]\n```', ["route.invoice", "route.other"]),
    ],
)
def test_a_branch_reply_is_one_task_id_or_a_json_list_of_them(reply, chosen):
    assert BranchReply(CHOICES).check(reply).value == chosen


@pytest.mark.parametrize(
    ("reply", "error"),
    [
        ("route.shipping", "the reply must be exactly one task id or a non-empty JSON list of them"),
        ('["route.invoice", "route.shipping"]', 'not a task to choose: "route.shipping"'),
        ('"invoice"', 'not a task to choose: "invoice"'),
        ("[]", "the reply must be exactly one task id or a non-empty JSON list"),
        ('{"task": "route.invoice"}', "the reply must be exactly one task id or a non-empty JSON list"),
        ("[1, 2]", "the reply must be exactly one task id or a non-empty JSON list"),
        ("I pick route.invoice", "the reply must be exactly one task id"),
        ("", "the reply must be exactly one task id"),
    ],
)
def test_a_branch_reply_naming_no_downstream_task_says_what_the_choices_are(reply, error):
    errors = BranchReply(CHOICES).check(reply).errors
    assert len(errors) == 1
    assert errors[0].startswith(error)
    assert errors[0].endswith("the choices are route.contract, route.invoice, route.other")


def test_branch_errors_stay_small_with_many_choices_and_a_huge_unknown_id():
    choices = [f"task_{n}" for n in range(500)]
    errors = BranchReply(choices).check(json.dumps(["x" * 1_000_000])).errors
    assert len(errors[0]) <= MAX_ERROR_CHARS
    assert "c" * 80 not in BranchReply(["a", "b"]).check(json.dumps(["c" * 100])).errors[0]


def test_the_branch_instruction_lists_the_choices_sorted():
    assert BranchReply(["b", "a", "b"]).instruction() == (
        "Choose which of these tasks run next. Reply with exactly one task id, or with a JSON list of task "
        "ids when several should run, and nothing else:\n- a\n- b"
    )


def test_a_branch_without_downstream_tasks_is_refused():
    with pytest.raises(NairiParameterError, match="at least one downstream task"):
        BranchReply([])


# The typed error ------


def test_the_output_error_is_a_final_nairi_error_carrying_the_errors_and_the_conversation():
    error = NairiOutputError(
        "still invalid after 2 repair turns",
        errors=["$.total: Field required"],
        conversation_id="conv_1",
        turn=3,
    )
    assert isinstance(error, NairiError)
    assert not error.retryable
    assert (error.code, error.errors, error.conversation_id, error.turn) == (
        "invalid_output",
        ["$.total: Field required"],
        "conv_1",
        3,
    )
    assert str(error) == "invalid_output: still invalid after 2 repair turns"
    import pickle  # noqa: PLC0415

    again = pickle.loads(pickle.dumps(error))
    assert (again.errors, again.conversation_id, again.turn) == (error.errors, "conv_1", 3)
