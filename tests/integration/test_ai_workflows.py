"""The AI-workflow example DAGs (typed replies, agent branching, review) run under ``airflow dags test``
against the emulator, whose scripted replies (``[[replies:...]]`` in the DAG's params) play the agent."""

from __future__ import annotations

import json
import sqlite3
import subprocess
from pathlib import Path

import pytest
from airflow_home import BIN, emulated_airflow, task_states

pytestmark = pytest.mark.integration

EXAMPLE_DAGS = Path(__file__).parent.parent.parent / "example_dags"


def script(*replies) -> str:
    return f"[[replies:{json.dumps(list(replies))}]]"


@pytest.fixture(scope="module")
def airflow_env(tmp_path_factory):
    with emulated_airflow(tmp_path_factory.mktemp("airflow"), EXAMPLE_DAGS) as (env, emulator):
        yield env, emulator


def dags_test(env, dag_id, conf, *, deferrable=True, timeout=300):
    env = {**env, "AIRFLOW__OPERATORS__DEFAULT_DEFERRABLE": str(deferrable)}
    result = subprocess.run(
        [str(BIN / "airflow"), "dags", "test", dag_id, "--conf", json.dumps(conf)],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    return result.stdout + result.stderr


def xcom(env, dag_id, task_id, key="return_value", map_index=-1):
    with sqlite3.connect(Path(env["AIRFLOW_HOME"]) / "airflow.db", timeout=10) as db:
        (value,) = db.execute(
            "SELECT value FROM xcom WHERE dag_id = ? AND task_id = ? AND key = ? AND map_index = ?"
            " AND run_id = (SELECT run_id FROM dag_run WHERE dag_id = ? ORDER BY id DESC LIMIT 1)",
            (dag_id, task_id, key, map_index, dag_id),
        ).fetchone()
    return json.loads(value)


@pytest.mark.parametrize("deferrable", [True, False], ids=["deferrable", "worker"])
def test_typed_reply_example_repairs_twice_then_books_the_invoice(airflow_env, deferrable):
    env, emulator = airflow_env
    valid = {"vendor": "ACME", "total": 12.3, "currency": "EUR"}
    document = "ACME invoice. " + script("Sure! ACME, 12.30 EUR.", {**valid, "currency": "eur"}, valid)
    log = dags_test(env, "nairi_typed_reply", {"document": document}, deferrable=deferrable)
    assert "=== booked: ACME 12.30 EUR (turn 3) ===" in log, log[-5000:]
    assert ("new_state=deferred" in log) is deferrable
    result = xcom(env, "nairi_typed_reply", "extract")
    assert (result["output"], result["reply"], result["turn"]) == (valid, json.dumps(valid), 3)
    messages = [
        m["content"] for m in emulator_messages(emulator, result["conversation_id"]) if m["role"] == "user"
    ]
    assert messages[0].startswith("Extract the vendor") and "JSON Schema" in messages[0]
    assert "- $.currency: String should match pattern '^[A-Z]{3}$'" in messages[2]


def test_typed_reply_example_fails_with_the_errors_when_the_budget_is_spent(airflow_env):
    env, _ = airflow_env
    log = dags_test(env, "nairi_typed_reply", {"document": script("no", "nope", "still no")})
    assert task_states(env, "nairi_typed_reply")[("extract", -1)] == "failed"
    assert "NairiOutputError" in log or "invalid_output" in log
    assert "still not valid after 2 repair turn(s) (max_repair_turns=2)" in log


def test_branching_example_follows_the_agent_unmapped_and_per_mapped_instance(airflow_env):
    env, _ = airflow_env
    conf = {
        "batch_note": "Invoices only. " + script("routine"),
        "documents": [
            "Invoice 42 from ACME. " + script("route.invoice"),
            "Services agreement. " + script("It is a contract.", "route.contract"),  # repaired on turn 2
            "Invoice 43 and its amendment. " + script(["route.invoice", "route.contract"]),  # several
        ],
    }
    log = dags_test(env, "nairi_agent_branching", conf)
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


def test_branching_example_fails_an_instance_whose_agent_names_no_task(airflow_env):
    env, _ = airflow_env
    conf = {
        "batch_note": script("routine"),
        "documents": [script("route.invoice"), script("route.shipping", "shipping", ["route.shipping"])],
    }
    log = dags_test(env, "nairi_agent_branching", conf)
    states = task_states(env, "nairi_agent_branching")
    assert states[("route.classify", 1)] == "failed"
    assert states[("route.invoice", 0)] == "success" and states[("route.other", 0)] == "skipped"
    assert "the reply must be exactly one task id or a non-empty JSON list of them; the choices are" in log
    assert (
        'still not valid after 2 repair turn(s) (max_repair_turns=2): not a task to choose: "route.shipping"'
        in log
    )


def emulator_messages(emulator, conversation_id):
    from airflow_provider_nairi.client import ClientConfig, NairiClient  # noqa: PLC0415

    client = NairiClient(ClientConfig(base_url=emulator.base_url, api_key=emulator.api_key))
    return list(client.list_messages(conversation_id))
