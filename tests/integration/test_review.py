"""The review loop (example DAG ``nairi_review_loop``) under ``airflow dags test`` against the emulator,
answered by a reviewer through Airflow's own human-in-the-loop REST API (``hitl_responder.py``, a second
process on the same metadata DB): approve, request changes twice then approve, reject, and a reviewer who
never answers."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from airflow_home import BIN, emulated_airflow, task_states

from airflow_provider_nairi.operators.review import NO_CHANGES_GIVEN

pytestmark = pytest.mark.integration

HERE = Path(__file__).parent
EXAMPLE = HERE.parent.parent / "example_dags" / "nairi_review_loop.py"
DRAFTS = ["Draft one", "Draft two", "Draft three"]
TIMEOUT_DAG = """
import pendulum
from airflow.sdk import dag

from airflow_provider_nairi.operators.agents import NairiAgentOperator
from airflow_provider_nairi.operators.conversation import NairiStartConversationOperator
from airflow_provider_nairi.operators.review import nairi_review


@dag(schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC"), catchup=False)
def nairi_review_timeout():
    agent = NairiAgentOperator(task_id="ensure_agent", name="timeout-writer", instructions="Write.")
    ask = NairiStartConversationOperator(
        task_id="ask", agent_name="timeout-writer", message="draft", poll_interval=0.5
    )
    agent >> ask >> nairi_review(conversation_id=ask.output["conversation_id"], max_iterations=1, timeout=2)


nairi_review_timeout()
"""


@pytest.fixture(scope="module")
def airflow_env(tmp_path_factory):
    dags = tmp_path_factory.mktemp("dags")
    (dags / EXAMPLE.name).symlink_to(EXAMPLE)
    (dags / "nairi_review_timeout.py").write_text(TIMEOUT_DAG)
    with emulated_airflow(tmp_path_factory.mktemp("airflow"), dags) as (env, emulator):
        env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS"] = "True"
        env["AIRFLOW__OPERATORS__DEFAULT_DEFERRABLE"] = "True"
        yield env, emulator


def review_run(env, answers, dag_id="nairi_review_loop", conf=None):
    """Run the DAG and the reviewer side by side; return the DAG's log and what the reviewer saw."""
    if conf is None:
        conf = {"topic": "typed replies [[replies:" + json.dumps(DRAFTS) + "]]"}
    dags_test = subprocess.Popen(
        [str(BIN / "airflow"), "dags", "test", dag_id, "--conf", json.dumps(conf)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        reviewer = subprocess.run(
            [sys.executable, str(HERE / "hitl_responder.py"), dag_id, json.dumps(answers)],
            env=env,
            capture_output=True,
            text=True,
            timeout=200,
            check=False,
        )
        if reviewer.returncode != 0:
            dags_test.kill()
        log, _ = dags_test.communicate(timeout=60)
    finally:
        dags_test.kill()
    seen = [json.loads(line) for line in reviewer.stdout.splitlines() if line.startswith('{"task_id"')]
    assert len(seen) == len(answers), reviewer.stdout[-3000:] + reviewer.stderr[-3000:] + log[-3000:]
    return log, seen


def states(env, dag_id="nairi_review_loop"):
    """``{task_id: state}`` of the newest run (no task here is mapped)."""
    return {task_id: state for (task_id, _), state in task_states(env, dag_id).items()}


def user_messages(emulator, body):
    """The user messages of the conversation a review form (``body``) names."""
    from airflow_provider_nairi.client import ClientConfig, NairiClient  # noqa: PLC0415

    (conversation_id,) = set(re.findall(r"conv_[0-9a-f]+", body))
    client = NairiClient(ClientConfig(base_url=emulator.base_url, api_key=emulator.api_key))
    return [m["content"] for m in client.list_messages(conversation_id) if m["role"] == "user"]


def test_approve_in_round_1_publishes_turn_1_and_skips_the_other_rounds(airflow_env):
    env, _ = airflow_env
    log, seen = review_run(env, [["review.review_1", "Approve", ""]])
    assert seen[0]["subject"] == "Review the agent's reply (round 1 of 3)"
    assert seen[0]["options"] == ["Approve", "Request changes", "Reject"]
    assert "```text\nDraft one\n```" in seen[0]["body"]
    assert "=== publishing turn 1: Draft one ===" in log, log[-5000:]
    found = states(env)
    assert found["review.approved"] == found["publish"] == "success"
    assert {found[t] for t in ("review.revise_1", "review.review_2", "review.review_3")} == {"skipped"}


def test_request_changes_twice_then_approve_shows_each_round_the_latest_reply(airflow_env):
    env, emulator = airflow_env
    answers = [
        ["review.review_1", "Request changes", "Shorter, please."],
        ["review.review_2", "Request changes", ""],
        ["review.review_3", "Approve", ""],
    ]
    log, seen = review_run(env, answers)
    for round_number, (request, draft) in enumerate(zip(seen, DRAFTS, strict=True), 1):
        assert request["subject"] == f"Review the agent's reply (round {round_number} of 3)"
        assert f"Turn {round_number} of [conversation conv_" in request["body"]
        assert f"```text\n{draft}\n```" in request["body"]  # the latest reply, not round 1's
    assert seen[2]["options"] == ["Approve", "Reject"]  # the last round cannot ask again
    assert "=== publishing turn 3: Draft three ===" in log, log[-5000:]
    assert user_messages(emulator, seen[0]["body"])[1:] == ["Shorter, please.", NO_CHANGES_GIVEN]
    assert states(env)["publish"] == "success"


def test_reject_skips_what_follows_the_review_without_failing(airflow_env):
    env, _ = airflow_env
    log, _ = review_run(
        env, [["review.review_1", "Request changes", "Try again."], ["review.review_2", "Reject", ""]]
    )
    found = states(env)
    assert found["review.review_2"] == "success"
    assert found["review.revise_2"] == found["review.review_3"] == "skipped"
    assert found["review.approved"] == found["publish"] == "skipped"
    assert "DagRun Finished: dag_id=nairi_review_loop" in log and "state=success" in log


def test_a_review_nobody_answers_fails_when_its_time_is_up(airflow_env):
    env, _ = airflow_env
    log, seen = review_run(
        env, [["review.review_1", "TIMEOUT", None]], dag_id="nairi_review_timeout", conf={}
    )
    assert seen[0]["options"] == ["Approve", "Reject"]  # one round: a plain gate
    found = states(env, "nairi_review_timeout")
    assert found["review.review_1"] == "failed", log[-5000:]
    assert found["review.approved"] == "upstream_failed"
