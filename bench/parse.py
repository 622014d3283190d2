"""DAG-parse cost of the example DAGs, beside the same DAG shapes built from the http provider's HttpOperator.

For each file in example_dags/, a fresh interpreter first imports Airflow's task SDK and DagBag (the baseline
every DAG file pays, not counted), then times ``DagBag`` parsing that one file: importing the provider modules
it uses and building its tasks. The "http twin" of a file is generated from the parsed DAGs: the same dag ids,
task ids and dependencies, every task an ``HttpOperator``. Each side runs ROUNDS times, alternating; the table
shows medians and the ratio nairi / http (goal: at most 1.0, "not slower").

Usage: ``.venv/bin/python bench/parse.py`` (needs apache-airflow-providers-http, in the ``dev`` extra).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROUNDS = 5
ROOT = Path(__file__).resolve().parent.parent
EXAMPLE_DAGS = sorted((ROOT / "example_dags").glob("*.py"))

# Runs in a fresh interpreter: parse one file with DagBag and print the time, the shape and the heavy imports.
CHILD = """
import json, sys, time
import airflow.sdk
from airflow.dag_processing.dagbag import DagBag

start = time.perf_counter()
bag = DagBag(dag_folder=sys.argv[1], safe_mode=False)
elapsed = time.perf_counter() - start
assert not bag.import_errors, bag.import_errors
shape = {
    dag_id: {task.task_id: sorted(task.downstream_task_ids) for task in dag.tasks}
    for dag_id, dag in bag.dags.items()
}
print(json.dumps({"seconds": elapsed, "shape": shape, "aiohttp": "aiohttp" in sys.modules}))
"""

HTTP_TASK = (
    "    tasks[{task_id!r}] = HttpOperator(task_id={task_id!r}, http_conn_id='http_default',"
    " endpoint='/conversations', method='POST', data='{{\"message\": \"hello\"}}')\n"
)


def parse(path: Path, env: dict[str, str]) -> dict:
    result = subprocess.run(
        [sys.executable, "-c", CHILD, str(path)],
        check=False,
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    if result.returncode:
        raise SystemExit(f"parsing {path} failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def http_twin(shape: dict[str, dict[str, list[str]]]) -> str:
    """Python source of the same DAGs (ids, tasks, dependencies) built from HttpOperator tasks."""
    source = "from airflow.providers.http.operators.http import HttpOperator\nfrom airflow.sdk import DAG\n"
    for dag_id, tasks in shape.items():
        source += f"\nwith DAG(dag_id={dag_id!r}, schedule=None):\n    tasks = {{}}\n"
        source += "".join(HTTP_TASK.format(task_id=task_id) for task_id in tasks)
        for task_id, downstream in tasks.items():
            source += "".join(f"    tasks[{task_id!r}] >> tasks[{after!r}]\n" for after in downstream)
    return source


def main() -> None:
    if not EXAMPLE_DAGS:
        raise SystemExit("no example DAG in example_dags/")
    env = {**os.environ, "AIRFLOW__CORE__LOAD_EXAMPLES": "False", "PYTHONDONTWRITEBYTECODE": ""}
    with tempfile.TemporaryDirectory(prefix="nairi-parse-bench-") as home:
        env.setdefault("AIRFLOW_HOME", home)
        print(f"DAG-parse cost, median of {ROUNDS} fresh interpreters per file (DagBag on one file)")
        print(f"{'file':34} {'tasks':>5} {'nairi ms':>9} {'http ms':>8} {'ratio':>6}  aiohttp imported")
        total_nairi = total_http = 0.0
        for path in EXAMPLE_DAGS:
            first = parse(path, env)
            twin = Path(home) / f"http_twin_{path.name}"
            twin.write_text(http_twin(first["shape"]))
            nairi_runs, http_runs = [first["seconds"]], []
            for round_ in range(ROUNDS):
                if round_:
                    nairi_runs.append(parse(path, env)["seconds"])
                http = parse(twin, env)
                http_runs.append(http["seconds"])
            nairi_ms = statistics.median(nairi_runs) * 1000
            http_ms = statistics.median(http_runs) * 1000
            total_nairi, total_http = total_nairi + nairi_ms, total_http + http_ms
            tasks = sum(len(tasks) for tasks in first["shape"].values())
            print(
                f"{path.name:34} {tasks:5d} {nairi_ms:9.1f} {http_ms:8.1f} {nairi_ms / http_ms:6.2f}"
                f"  nairi: {'yes' if first['aiohttp'] else 'no'}, http: {'yes' if http['aiohttp'] else 'no'}"
            )
        ratio = total_nairi / total_http
        print(f"{'all example DAGs':34} {'':5} {total_nairi:9.1f} {total_http:8.1f} {ratio:6.2f}")


if __name__ == "__main__":
    main()
