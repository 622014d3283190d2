"""The AI-workflow example DAGs (typed replies, agent branching, review) run under ``airflow dags test``
against the emulator, whose scripted replies (``[[replies:...]]`` in the DAG's params) play the agent."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from airflow_home import another_home, dags_folder, dags_test_in_background, emulated_airflow, task_states

from airflow_provider_nairi.client import ClientConfig, NairiClient

pytestmark = pytest.mark.integration

EXAMPLE_DAGS = Path(__file__).parent.parent.parent / "example_dags"
EXAMPLES = ("nairi_typed_reply", "nairi_agent_branching")
#: The typed-reply example's agent, which its concurrent runs would otherwise each create (example_dags).
EXTRACTOR = "airflow-example-extractor"
VALID = {"vendor": "ACME", "total": 12.3, "currency": "EUR"}


def script(*replies) -> str:
    return f"[[replies:{json.dumps(list(replies))}]]"


#: The agent answers in prose, then with a bad currency, then well: two repair turns.
REPAIRED_TWICE = {
    "document": "ACME invoice. " + script("Sure! ACME, 12.30 EUR.", {**VALID, "currency": "eur"}, VALID)
}
#: Every run of the module: ``(dag_id, conf, deferrable)``. They go side by side, each in its own copy of the
#: migrated home, against one emulator; each test waits for the run it reads.
RUNS = {
    "typed[deferrable]": (
        "nairi_typed_reply",
        REPAIRED_TWICE,
        True,
    ),
    "typed[worker]": (
        "nairi_typed_reply",
        REPAIRED_TWICE,
        False,
    ),
    "typed budget spent": ("nairi_typed_reply", {"document": script("no", "nope", "still no")}, True),
    # One mapped run proves branching to one task, to several, after a repair, and an instance that names
    # no task (the last document): its failure leaves the other instances' choices alone.
    "branching": (
        "nairi_agent_branching",
        {
            "batch_note": "Invoices only. " + script("routine"),
            "documents": [
                "Invoice 42 from ACME. " + script("route.invoice"),
                "Services agreement. " + script("It is a contract.", "route.contract"),  # repaired on turn 2
                "Invoice 43 and its amendment. " + script(["route.invoice", "route.contract"]),  # several
                script("route.shipping", "shipping", ["route.shipping"]),  # never a downstream task
            ],
        },
        True,
    ),
}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Start every run of :data:`RUNS` at once; ``runs[name]`` is ``(env, log, emulator)`` once it ended."""
    dags = dags_folder(tmp_path_factory.mktemp("dags"), *(EXAMPLE_DAGS / f"{d}.py" for d in EXAMPLES))
    with emulated_airflow(tmp_path_factory.mktemp("airflow"), dags) as (env, emulator):
        emulator_client(emulator).create_agent(EXTRACTOR, "You read business documents.")
        started = {}
        for name, (dag_id, conf, deferrable) in RUNS.items():
            home_env = another_home(env, tmp_path_factory.mktemp("home"))
            home_env["AIRFLOW__OPERATORS__DEFAULT_DEFERRABLE"] = str(deferrable)
            started[name] = dags_test_in_background(home_env, dag_id, conf)
        ended = {}

        def result(name):
            if name not in ended:
                ended[name] = (started[name].env, started[name].log(timeout=900), emulator)
            return ended[name]

        try:
            yield result
        finally:
            for run in started.values():
                run.process.kill()


def xcom(env, dag_id, task_id, key="return_value", map_index=-1):
    with sqlite3.connect(Path(env["AIRFLOW_HOME"]) / "airflow.db", timeout=10) as db:
        (value,) = db.execute(
            "SELECT value FROM xcom WHERE dag_id = ? AND task_id = ? AND key = ? AND map_index = ?"
            " AND run_id = (SELECT run_id FROM dag_run WHERE dag_id = ? ORDER BY id DESC LIMIT 1)",
            (dag_id, task_id, key, map_index, dag_id),
        ).fetchone()
    return json.loads(value)


@pytest.mark.parametrize("mode", ["deferrable", "worker"])
def test_typed_reply_example_repairs_twice_then_books_the_invoice(runs, mode):
    env, log, emulator = runs(f"typed[{mode}]")
    assert "=== booked: ACME 12.30 EUR (turn 3) ===" in log, log[-5000:]
    assert ("new_state=deferred" in log) is (mode == "deferrable")
    result = xcom(env, "nairi_typed_reply", "extract")
    assert (result["output"], result["reply"], result["turn"]) == (VALID, json.dumps(VALID), 3)
    messages = [
        m["content"]
        for m in emulator_client(emulator).list_messages(result["conversation_id"])
        if m["role"] == "user"
    ]
    assert messages[0].startswith("Extract the vendor") and "JSON Schema" in messages[0]
    assert "- $.currency: String should match pattern '^[A-Z]{3}$'" in messages[2]


def test_typed_reply_example_fails_with_the_errors_when_the_budget_is_spent(runs):
    env, log, _ = runs("typed budget spent")
    assert task_states(env, "nairi_typed_reply")[("extract", -1)] == "failed"
    assert "NairiOutputError" in log or "invalid_output" in log
    assert "still not valid after 2 repair turn(s) (max_repair_turns=2)" in log


def test_branching_example_follows_the_agent_unmapped_and_per_mapped_instance(runs):
    env, log, _ = runs("branching")
    states = task_states(env, "nairi_agent_branching")
    assert (states[("urgent", -1)], states[("routine", -1)]) == ("skipped", "success"), log[-5000:]
    chosen = {
        0: {"route.invoice"},
        1: {"route.contract"},
        2: {"route.invoice", "route.contract"},
    }
    for map_index, followed in chosen.items():
        assert states[("route.classify", map_index)] == "success"
        for task_id in ("route.invoice", "route.contract", "route.other"):
            expected = "success" if task_id in followed else "skipped"
            assert states[(task_id, map_index)] == expected, (task_id, map_index, log[-5000:])
    assert xcom(env, "nairi_agent_branching", "route.classify", map_index=1)["output"] == ["route.contract"]
    assert xcom(env, "nairi_agent_branching", "triage")["output"] == ["routine"]  # pushed before the skip


def test_branching_example_fails_an_instance_whose_agent_names_no_task(runs):
    env, log, _ = runs("branching")
    states = task_states(env, "nairi_agent_branching")
    assert states[("route.classify", 3)] == "failed"
    assert states[("route.invoice", 0)] == "success" and states[("route.other", 0)] == "skipped"
    assert "the reply must be exactly one task id or a non-empty JSON list of them; the choices are" in log
    assert (
        'still not valid after 2 repair turn(s) (max_repair_turns=2): not a task to choose: "route.shipping"'
        in log
    )


def emulator_client(emulator):
    return NairiClient(ClientConfig(base_url=emulator.base_url, api_key=emulator.api_key))
