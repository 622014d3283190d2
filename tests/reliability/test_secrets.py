"""The API key (and the secrets the example DAGs put into Nairi) never lands anywhere Airflow keeps things.

Every example DAG runs once under ``airflow dags test`` (deferrable, so triggers are serialized too) with
logging at DEBUG, against the emulator, reusing the Airflow home, ``airflow db migrate`` and emulator of
``tests/integration/test_example_dags.py`` (the runs go side by side, each in a copy of that home). Then
everything is scanned for the key and the secret values: the output of each run, every file under each
AIRFLOW_HOME (task logs, config, the SQLite file as bytes) and the XCom, rendered template fields, serialized
DAG, trigger, task instance and DAG run tables. Zero hits. The emulator's request log proves every request
went to the configured host.

One line is left out of the scan of the console output: ``airflow dags test`` runs tasks through Airflow's
in-process test supervisor, whose ``InProcessSupervisorComms.send`` logs every message at DEBUG, including
the ``MaskSecret`` request that carries the very value to mask (Airflow 3.3.2, supervisor.py; the real
supervisor logs that message with its body omitted). The hook registers the key with ``mask_secret``, so
that upstream line shows it; it is on the console of a test command only, never in a task log or the DB.
"""

from __future__ import annotations

import json
import re
import shutil
import sqlite3
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from airflow_connections import connection_env_json

from airflow_provider_nairi.testing import connection_env_var

sys.path.insert(0, str(Path(__file__).parent.parent / "integration"))
import test_example_dags as integration
from airflow_home import dags_folder

airflow_env = integration.airflow_env  # its migrated Airflow home and its emulator
RESPONDER = Path(integration.__file__).parent / "hitl_responder.py"

pytestmark = pytest.mark.integration

DB_PASSWORD = "reliability-db-pass-Qx81"  # a canary
CRM_TOKEN = "reliability-crm-token-Zk27"
#: Airflow's in-process test supervisor logging a MaskSecret request with its value (see the docstring).
UPSTREAM_MASK_LINE = re.compile(r"^.*\[debug *\] Sending request .*msg=MaskSecret\(value=.*$", re.MULTILINE)
#: Tables where a leak would persist: what a task returned, rendered, deferred with, ran with.
TABLES = ("xcom", "rendered_task_instance_fields", "serialized_dag", "trigger", "task_instance", "dag_run")


def script(*replies: object) -> str:
    """The emulator's scripted replies (docs/emulator.md) for the AI-workflow examples."""
    return f"[[replies:{json.dumps(list(replies))}]]"


#: The AI-workflow examples need their agent's replies scripted (a typed answer, branch choices, a draft).
SCRIPTED = {
    "nairi_typed_reply": {"document": script("no", {"vendor": "ACME", "total": 1.5, "currency": "EUR"})},
    "nairi_agent_branching": {
        "batch_note": script("routine"),
        "documents": [script("route.invoice"), script(["route.contract", "route.other"])],
    },
    "nairi_review_loop": {"topic": script("Draft one", "Draft two")},
}
#: The review example's reviewer (tests/integration/hitl_responder.py): asks for changes once, then approves.
REVIEW_ANSWERS = [["review.review_1", "Request changes", "Shorter."], ["review.review_2", "Approve", ""]]


def conf_for(dag_id: str, out: Path) -> dict | None:
    if dag_id in SCRIPTED:
        return SCRIPTED[dag_id]
    return {"output_dir": str(out / dag_id)} if dag_id in ("nairi_content", "nairi_org_as_code") else None


def rows(db: Path, table: str) -> list[str]:
    with sqlite3.connect(db) as connection:
        return [repr(row) for row in connection.execute(f"SELECT * FROM {table}")]


# Eleven `airflow dags test` runs on two cores: the default 300 s ran out once in a fresh-clone CI run.
@pytest.mark.timeout(900)
def test_no_example_dag_leaves_the_key_or_a_secret_anywhere(airflow_env, tmp_path):
    env, emulator = airflow_env
    env = {
        **env,
        "AIRFLOW__LOGGING__LOGGING_LEVEL": "DEBUG",
        connection_env_var("nairi_example_db"): connection_env_json("postgres", password=DB_PASSWORD),
        "AIRFLOW_VAR_NAIRI_EXAMPLE_CRM_TOKEN": CRM_TOKEN,
    }
    canaries = {"API key": emulator.api_key, "DB password": DB_PASSWORD, "CRM token": CRM_TOKEN}
    dag_ids = sorted(path.stem for path in integration.EXAMPLE_DAGS.glob("*.py"))
    assert len(dag_ids) >= 4
    emulator.admin.clear_log()
    homes = {dag_id: tmp_path / "homes" / dag_id for dag_id in dag_ids}
    for home in homes.values():  # one copy of the migrated home per DAG: the runs go side by side
        shutil.copytree(env["AIRFLOW_HOME"], home)

    def run(dag_id: str) -> str:
        home = homes[dag_id]  # the copied airflow.cfg names the first home: override its paths
        dag_env = {
            **env,
            # Its DAG alone (and the examples' data): `dags test` parses its whole DAGs folder at each run.
            "AIRFLOW__CORE__DAGS_FOLDER": str(
                dags_folder(
                    home / "dags",
                    integration.EXAMPLE_DAGS / f"{dag_id}.py",
                    integration.EXAMPLE_DAGS / "data",
                )
            ),
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
            "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(home / "logs"),
        }
        reviewer = None
        if dag_id == "nairi_review_loop":  # a human answers through Airflow's REST API, from a second process
            reviewer = subprocess.Popen(
                [sys.executable, str(RESPONDER), dag_id, json.dumps(REVIEW_ANSWERS)],
                env={**dag_env, "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True"},
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        try:
            return integration.dags_test(dag_env, dag_id, deferrable=True, conf=conf_for(dag_id, tmp_path))
        finally:
            if reviewer is not None:
                reviewer.kill()

    with ThreadPoolExecutor(
        max_workers=4
    ) as pool:  # four at once: eleven thrash two cores past each run's limit
        outputs = dict(zip(dag_ids, pool.map(run, dag_ids), strict=True))
    for dag_id, output in outputs.items():
        assert integration.run_state(output, dag_id) == "success", output[-5000:]
    assert "[debug" in outputs[dag_ids[0]]  # the runs did log at DEBUG

    kept = {
        f"output of {dag_id}": UPSTREAM_MASK_LINE.sub("", out).encode() for dag_id, out in outputs.items()
    }
    scanned = [Path(env["AIRFLOW_HOME"]), *homes.values()]
    kept |= {str(path): path.read_bytes() for home in scanned for path in home.rglob("*") if path.is_file()}
    assert any(home.glob("logs/**/*.log") for home in homes.values())  # task log files were written
    for dag_id, home in homes.items():
        db = home / "airflow.db"
        kept |= {f"table {table} of {dag_id}": "\n".join(rows(db, table)).encode() for table in TABLES}
        assert rows(db, "xcom") and rows(db, "rendered_task_instance_fields") and rows(db, "serialized_dag")
    assert "new_state=deferred" in "".join(outputs.values())  # triggers were serialized and run
    assert any(rows(home / "airflow.db", "trigger") for home in homes.values())  # ...and kept in the DB
    hits = [
        f"{name} in {place}"
        for place, data in kept.items()
        for name, value in canaries.items()
        if value.encode() in data
    ]
    assert hits == []

    requests = emulator.admin.requests_log()
    assert len(requests) > 20  # the four DAGs did talk to it
    assert {entry["host"] for entry in requests} == {urlsplit(emulator.base_url).netloc}
