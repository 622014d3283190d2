"""Search, recall and chat: request shapes, and the XCom size rule (results to XCom or to ``output_path``)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from airflow.providers.common.compat.sdk import AirflowFailException, ObjectStoragePath

from airflow_provider_nairi.exceptions import NairiXComSizeError
from airflow_provider_nairi.operators.content import (
    XCOM_MAX_BYTES,
    NairiChatOperator,
    NairiRecallOperator,
    NairiSearchOperator,
)


def run(operator, hook, ti):
    operator.__dict__["hook"] = hook
    return operator.execute({"ti": ti})


HITS = [{"video_id": "vid_1", "start_s": 1.0, "end_s": 4.5, "text": "hello", "score": 0.9}]


@pytest.mark.parametrize(
    ("operator", "method"), [(NairiSearchOperator, "search"), (NairiRecallOperator, "recall")]
)
def test_search_and_recall_send_query_limit_and_video_ids(hook, ti, operator, method):
    hook.results = HITS
    op = operator(
        task_id="q", query="refund policy", limit=5, video_ids=[{"id": "vid_1", "title": "t"}, "vid_2"]
    )
    assert run(op, hook, ti) == HITS
    assert hook.calls == [(method, ("refund policy",), {"limit": 5, "video_ids": ["vid_1", "vid_2"]})]


def test_chat_sends_the_message_and_returns_the_answer(hook, ti):
    hook.results = {"answer": "Yes.", "citations": [{"video_id": "vid_1", "start_s": 0, "end_s": 2}]}
    assert run(NairiChatOperator(task_id="c", message="Is it?"), hook, ti) == hook.results
    assert hook.calls == [("chat", ("Is it?",), {"video_ids": None})]


def test_results_over_the_xcom_size_without_output_path_fail_naming_it(hook, ti):
    hook.results = [dict(HITS[0], text="x" * XCOM_MAX_BYTES)]
    with pytest.raises(AirflowFailException, match=r"output_path.*over the 49152 bytes") as caught:
        run(NairiSearchOperator(task_id="q", query="q"), hook, ti)
    assert isinstance(caught.value.__cause__, NairiXComSizeError)


def test_results_just_under_the_size_stay_in_xcom(hook, ti):
    overhead = len(json.dumps([dict(HITS[0], text="")]))
    hook.results = [dict(HITS[0], text="x" * (XCOM_MAX_BYTES - overhead))]
    assert run(NairiSearchOperator(task_id="q", query="q"), hook, ti) == hook.results


def test_output_path_always_receives_the_results_and_xcom_holds_the_path(tmp_path: Path, hook, ti):
    hook.results = HITS
    target = tmp_path / "runs" / "hits.json"
    assert run(NairiSearchOperator(task_id="q", query="q", output_path=str(target)), hook, ti) == str(target)
    assert json.loads(target.read_text()) == HITS
    big = {"answer": "é" * XCOM_MAX_BYTES, "citations": []}
    hook.results = big
    assert run(NairiChatOperator(task_id="c", message="m", output_path=str(target)), hook, ti) == str(target)
    assert json.loads(target.read_text(encoding="utf-8")) == big


def test_output_path_in_object_storage(memory_store, hook, ti):
    hook.results = HITS
    op = NairiRecallOperator(task_id="q", query="q", output_path="memory://bucket/recall.json")
    assert run(op, hook, ti).replace(":///", "://") == "memory://bucket/recall.json"  # Airflow 2: memory:///
    assert json.loads(ObjectStoragePath("memory://bucket/recall.json").read_text()) == HITS


@pytest.mark.parametrize(
    ("operator", "expected"),
    [
        (NairiSearchOperator(task_id="q", query="q", limit=51), "limit: 51 is not between 1 and 50"),
        (NairiSearchOperator(task_id="q", query="q", limit=0), "limit: 0"),
        (NairiRecallOperator(task_id="q", query="  "), "query: give a non-empty query"),
        (NairiChatOperator(task_id="c", message=""), "message: give a non-empty message"),
        (NairiChatOperator(task_id="c", message="m", video_ids=[{"title": "no id"}]), "video_ids"),
        (NairiChatOperator(task_id="c", message="m", video_ids=7), "video_ids: 7 is not an id"),
    ],
)
def test_bad_parameters_fail_before_any_request(hook, ti, operator, expected):
    with pytest.raises(AirflowFailException, match=expected):
        run(operator, hook, ti)
    assert hook.calls == []


def test_template_fields_cover_the_text_ids_and_output_path():
    assert set(NairiSearchOperator.template_fields) == {"query", "video_ids", "output_path"}
    assert set(NairiChatOperator.template_fields) == {"message", "video_ids", "output_path"}
