"""The example DAGs run green under ``airflow dags test`` against the emulator.

One Airflow home and one ``airflow db migrate`` for the module; one emulator for the module (its admin API
counts what the DAGs created). Each ``airflow dags test`` costs about 16 s or more here, so each example runs
once, except the conversation thread (deferrable and on the worker, issue 4), plus the killed worker whose
retry reattaches (issue 4), org as code twice (issue 6) and content (issue 5).
"""

from __future__ import annotations

import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from airflow_home import BIN, emulated_airflow

from airflow_provider_nairi.testing import connection_env_var

pytestmark = pytest.mark.integration

EXAMPLE_DAGS = Path(__file__).parent.parent.parent / "example_dags"
FINISHED = re.compile(r"DagRun Finished: dag_id=(\w+),.* state=(\w+),")

# The scheduler's part of a retry, done by hand: the task instance of a killed worker gets its next try and
# runs again through Airflow's own in-process task runner (what `dags test` uses), with the run's
# task_state_store.
RETRY = """
import sys
from sqlalchemy import select
from airflow.dag_processing.dagbag import DagBag
from airflow.models.taskinstance import TaskInstance
from airflow.sdk.definitions.dag import _run_task
from airflow.utils.session import create_session
from airflow.utils.state import TaskInstanceState

dag_id, task_id, run_id = sys.argv[1:4]
dag = DagBag().get_dag(dag_id)
with create_session() as session:
    query = select(TaskInstance).where(
        TaskInstance.dag_id == dag_id, TaskInstance.task_id == task_id, TaskInstance.run_id == run_id
    )
    ti = session.scalar(query)
    ti.try_number += 1
    ti.state = TaskInstanceState.SCHEDULED
    session.commit()
    _run_task(ti=ti, task=dag.task_dict[task_id])
    print("RETRY STATE", ti.state.value)
"""


@pytest.fixture(scope="module")
def airflow_env(tmp_path_factory):
    with emulated_airflow(tmp_path_factory.mktemp("airflow"), EXAMPLE_DAGS) as (env, emulator):
        yield env, emulator


def dags_test(env, dag_id, *, deferrable, conf=None, timeout=300):
    args = [str(BIN / "airflow"), "dags", "test", dag_id]
    if conf is not None:
        args += ["--conf", json.dumps(conf)]
    env = {**env, "AIRFLOW__OPERATORS__DEFAULT_DEFERRABLE": str(deferrable)}
    result = subprocess.run(args, env=env, capture_output=True, text=True, timeout=timeout, check=False)
    return result.stdout + result.stderr


def run_state(log, dag_id):
    return dict(FINISHED.findall(log)).get(dag_id)


@pytest.mark.parametrize("deferrable", [True, False], ids=["deferrable", "worker"])
def test_conversation_example_runs_green(airflow_env, deferrable):
    env, emulator = airflow_env
    before = emulator.admin.counts()["conversations"]
    log = dags_test(env, "nairi_conversation", deferrable=deferrable, conf={"question": "Is the DAG late?"})
    assert run_state(log, "nairi_conversation") == "success", log[-5000:]
    reply = log[log.index("=== Nairi agent replied") : log.index("=== end of reply ===")]
    assert (
        "Reply to turn 1: Is the DAG late?" in reply
        and "Reply to turn 2: Which one should I check first?" in reply
    )
    assert ("new_state=deferred" in log) is deferrable
    assert emulator.admin.counts()["conversations"] == before + 1


def test_mapped_prompts_example_runs_green(airflow_env):
    env, emulator = airflow_env
    before = emulator.admin.counts()["conversations"]
    log = dags_test(env, "nairi_mapped_prompts", deferrable=True)
    assert run_state(log, "nairi_mapped_prompts") == "success", log[-5000:]
    assert "Suggest one pool to resize. -> Reply to turn 1: Suggest one pool to resize." in log
    assert emulator.admin.counts()["conversations"] == before + 3


def latest_run_id(home):
    """Row id of the newest ``nairi_conversation`` run in the SQLite metadata DB (0 when none)."""
    with sqlite3.connect(Path(home) / "airflow.db", timeout=10) as db:
        row = db.execute("SELECT MAX(id) FROM dag_run WHERE dag_id = 'nairi_conversation'").fetchone()
    return row[0] or 0


def stored_conversation(home, after_run):
    """``(run_id, value)`` once the `ask` task of a run newer than ``after_run`` stored its conversation."""
    with sqlite3.connect(Path(home) / "airflow.db", timeout=10) as db:
        row = db.execute(
            "SELECT run_id, value FROM task_state_store WHERE dag_id = 'nairi_conversation'"
            " AND task_id = 'ask' AND key = 'nairi_conversation' AND dag_run_id > ?",
            (after_run,),
        ).fetchone()
    return (row[0], json.loads(row[1])) if row else None


def test_killed_worker_retry_reattaches_without_a_second_conversation(airflow_env, monkeypatch):
    env, emulator = airflow_env
    env = {**env, "AIRFLOW__OPERATORS__DEFAULT_DEFERRABLE": "False"}
    before = emulator.admin.counts()["conversations"]
    earlier_run = latest_run_id(env["AIRFLOW_HOME"])
    worker = subprocess.Popen(
        [
            str(BIN / "airflow"),
            "dags",
            "test",
            "nairi_conversation",
            "--conf",
            json.dumps({"question": "[[delay:40]] slow question"}),
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 120
        while (stored := stored_conversation(env["AIRFLOW_HOME"], earlier_run)) is None:
            assert worker.poll() is None and time.monotonic() < deadline, "the ask task never stored its id"
            time.sleep(0.2)
    finally:
        os.killpg(worker.pid, signal.SIGKILL)  # the worker dies mid-wait
        worker.wait(timeout=30)
    run_id, value = stored
    conversation_id = value["conversation_id"]
    from airflow_provider_nairi.hooks.nairi import NairiHook  # noqa: PLC0415

    monkeypatch.setenv(connection_env_var("nairi_default"), env[connection_env_var("nairi_default")])
    hook = NairiHook()
    assert hook.client.get_conversation(conversation_id)["status"] in {"queued", "running"}

    retry = subprocess.run(
        [sys.executable, "-c", RETRY, "nairi_conversation", "ask", run_id],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    log = retry.stdout + retry.stderr
    assert "RETRY STATE success" in log, log[-5000:]
    assert "Reconnecting to existing job" in log  # it found the conversation still running
    assert emulator.admin.counts()["conversations"] == before + 1  # reattached: no second conversation
    assert hook.client.get_conversation(conversation_id)["status"] == "completed"


def test_org_as_code_example_is_green_twice_and_the_second_run_changes_nothing(airflow_env, tmp_path):
    """nairi_org_as_code (issue 6): the second run reports everything ``unchanged``; no secret is logged."""
    env, emulator = airflow_env
    db_password, crm_token = "example-db-pass-5e21", "example-crm-token-77c3"
    env = {
        **env,
        connection_env_var("nairi_example_db"): json.dumps(
            {"conn_type": "postgres", "password": db_password}
        ),
        "AIRFLOW_VAR_NAIRI_EXAMPLE_CRM_TOKEN": crm_token,
    }
    before = emulator.admin.counts()
    conf = {"output_dir": str(tmp_path)}
    logs = [dags_test(env, "nairi_org_as_code", deferrable=True, conf=conf) for _ in range(2)]
    for log in logs:
        assert run_state(log, "nairi_org_as_code") == "success", log[-5000:]
        assert db_password not in log and crm_token not in log  # every task's log, both runs
    first, second = (
        json.loads(p.read_text()) for p in sorted(tmp_path.iterdir(), key=lambda p: p.stat().st_mtime)
    )
    assert first["actions"] == {
        "vault": "created",
        "env_vars": "updated",
        "agent": "created",
        "scheduled_job": "created",
    }
    assert second["actions"] == dict.fromkeys(first["actions"], "unchanged")
    assert first["reply"].startswith("Reply to turn 1: Triage the tickets that arrived overnight.")
    assert second["reply"].startswith("Reply to turn 1: Triage the tickets that arrived overnight.")
    after = emulator.admin.counts()
    created = {k: after[k] - before[k] for k in ("agents", "vaults", "scheduled_jobs", "conversations")}
    assert created == {"agents": 1, "vaults": 1, "scheduled_jobs": 1, "conversations": 2}


def test_content_example_runs_green(airflow_env, tmp_path):
    """Issue 5: transcripts -> videos (deferred wait) -> search, chat -> agent with attachment -> download."""
    env, emulator = airflow_env
    before = emulator.admin.counts()
    out = tmp_path / "out"
    log = dags_test(env, "nairi_content", deferrable=False, conf={"output_dir": str(out)})
    assert run_state(log, "nairi_content") == "success", log[-5000:]
    (run_dir,) = out.iterdir()
    assert sorted(p.name for p in run_dir.iterdir()) == ["answer.json", "summary.md"]
    assert (run_dir / "summary.md").read_text() == "Refunds rose 4% in Q3: late deliveries."
    answer = json.loads((run_dir / "answer.json").read_text())
    assert answer["answer"] and answer["citations"]
    after = emulator.admin.counts()
    created = {kind: after[kind] - before[kind] for kind in ("videos", "artifacts", "conversations")}
    assert created == {"videos": 2, "artifacts": 2, "conversations": 1}
