"""The review loop (example DAG ``nairi_review_loop``) under ``airflow dags test`` against the emulator,
answered by a reviewer through Airflow's own human-in-the-loop REST API (``hitl_responder.py``, a second
process on the same metadata DB): approve, request changes twice then approve, reject, and a reviewer who
never answers."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest
from airflow_home import (
    Background,
    another_home,
    dags_folder,
    dags_test_in_background,
    emulated_airflow,
    task_states,
)

from airflow_provider_nairi.client import ClientConfig, NairiClient
from airflow_provider_nairi.operators.review import NO_CHANGES_GIVEN

pytestmark = pytest.mark.integration

HERE = Path(__file__).parent
EXAMPLE = HERE.parent.parent / "example_dags" / "nairi_review_loop.py"
DRAFTS = ["Draft one", "Draft two", "Draft three"]
#: The example's conf: the agent's drafts, scripted.
DRAFTED = {"topic": "typed replies [[replies:" + json.dumps(DRAFTS) + "]]"}
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


#: The example's agent, which its concurrent runs would otherwise each create (example_dags).
WRITER = "airflow-example-writer"
#: Every review of the module: ``(dag_id, the reviewer's answers, conf)``. They go side by side, each in its
#: own copy of the migrated home with its own reviewer process, against one emulator.
REVIEWS = {
    "approve": ("nairi_review_loop", [["review.review_1", "Approve", ""]], None),
    "request changes twice": (
        "nairi_review_loop",
        [
            ["review.review_1", "Request changes", "Shorter, please."],
            ["review.review_2", "Request changes", ""],
            ["review.review_3", "Approve", ""],
        ],
        None,
    ),
    "reject": (
        "nairi_review_loop",
        [["review.review_1", "Request changes", "Try again."], ["review.review_2", "Reject", ""]],
        None,
    ),
    "timeout": ("nairi_review_timeout", [["review.review_1", "TIMEOUT", None]], {}),
}


@pytest.fixture(scope="module")
def reviews(tmp_path_factory):
    """Start every review of :data:`REVIEWS` at once; ``reviews(name)`` is ``(env, log, seen, emulator)``
    once it ended: the DAG run's log and what the reviewer saw."""
    dags = dags_folder(tmp_path_factory.mktemp("dags"), EXAMPLE)
    (dags / "nairi_review_timeout.py").write_text(TIMEOUT_DAG)
    with emulated_airflow(tmp_path_factory.mktemp("airflow"), dags) as (env, emulator):
        env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS"] = "True"
        env["AIRFLOW__OPERATORS__DEFAULT_DEFERRABLE"] = "True"
        NairiClient(ClientConfig(base_url=emulator.base_url, api_key=emulator.api_key)).create_agent(
            WRITER, "You write short, friendly release notes."
        )
        started = {}
        for name, (dag_id, answers, conf) in REVIEWS.items():
            home_env = another_home(env, tmp_path_factory.mktemp("home"))
            dag_run = dags_test_in_background(home_env, dag_id, DRAFTED if conf is None else conf)
            argv = [sys.executable, str(HERE / "hitl_responder.py"), dag_id, json.dumps(answers)]
            reviewer = Background(home_env, argv, Path(home_env["AIRFLOW_HOME"]) / "reviewer.log")
            started[name] = (dag_run, reviewer, len(answers))
        ended = {}

        def result(name):
            if name not in ended:
                dag_run, reviewer, answered = started[name]
                reviewed = reviewer.log(timeout=900)
                if reviewer.process.returncode != 0:
                    dag_run.process.kill()
                log = dag_run.log(timeout=300)
                seen = [json.loads(line) for line in reviewed.splitlines() if line.startswith('{"task_id"')]
                assert len(seen) == answered, reviewed[-3000:] + log[-3000:]
                ended[name] = (dag_run.env, log, seen, emulator)
            return ended[name]

        try:
            yield result
        finally:
            for dag_run, reviewer, _ in started.values():
                dag_run.process.kill()
                reviewer.process.kill()


def states(env, dag_id="nairi_review_loop"):
    """``{task_id: state}`` of the newest run (no task here is mapped)."""
    return {task_id: state for (task_id, _), state in task_states(env, dag_id).items()}


def user_messages(emulator, body):
    """The user messages of the conversation a review form (``body``) names."""
    (conversation_id,) = set(re.findall(r"conv_[0-9a-f]+", body))
    client = NairiClient(ClientConfig(base_url=emulator.base_url, api_key=emulator.api_key))
    return [m["content"] for m in client.list_messages(conversation_id) if m["role"] == "user"]


def test_approve_in_round_1_publishes_turn_1_and_skips_the_other_rounds(reviews):
    env, log, seen, _ = reviews("approve")
    assert seen[0]["subject"] == "Review the agent's reply (round 1 of 3)"
    assert seen[0]["options"] == ["Approve", "Request changes", "Reject"]
    assert "```text\nDraft one\n```" in seen[0]["body"]
    assert "=== publishing turn 1: Draft one ===" in log, log[-5000:]
    found = states(env)
    assert found["review.approved"] == found["publish"] == "success"
    assert {found[t] for t in ("review.revise_1", "review.review_2", "review.review_3")} == {"skipped"}


def test_request_changes_twice_then_approve_shows_each_round_the_latest_reply(reviews):
    env, log, seen, emulator = reviews("request changes twice")
    for round_number, (request, draft) in enumerate(zip(seen, DRAFTS, strict=True), 1):
        assert request["subject"] == f"Review the agent's reply (round {round_number} of 3)"
        assert f"Turn {round_number} of [conversation conv_" in request["body"]
        assert f"```text\n{draft}\n```" in request["body"]  # the latest reply, not round 1's
    assert seen[2]["options"] == ["Approve", "Reject"]  # the last round cannot ask again
    assert "=== publishing turn 3: Draft three ===" in log, log[-5000:]
    assert user_messages(emulator, seen[0]["body"])[1:] == ["Shorter, please.", NO_CHANGES_GIVEN]
    assert states(env)["publish"] == "success"


def test_reject_skips_what_follows_the_review_without_failing(reviews):
    env, log, _, _ = reviews("reject")
    found = states(env)
    assert found["review.review_2"] == "success"
    assert found["review.revise_2"] == found["review.review_3"] == "skipped"
    assert found["review.approved"] == found["publish"] == "skipped"
    assert "DagRun Finished: dag_id=nairi_review_loop" in log and "state=success" in log


def test_a_review_nobody_answers_fails_when_its_time_is_up(reviews):
    env, log, seen, _ = reviews("timeout")
    assert seen[0]["options"] == ["Approve", "Reject"]  # one round: a plain gate
    found = states(env, "nairi_review_timeout")
    assert found["review.review_1"] == "failed", log[-5000:]
    assert found["review.approved"] == "upstream_failed"
