"""Answers a DAG run's human-in-the-loop requests through Airflow's REST API, in order, as a reviewer would.

Run in a subprocess with the ``airflow dags test`` run's environment (same metadata DB) and
``AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS=True``: ``python hitl_responder.py DAG_ID ANSWERS_JSON``,
where each answer is ``[task_id, option, changes]``, or ``[task_id, "TIMEOUT", null]`` to let the request time
out (the scheduler's own timeout sweep is run once its deadline has passed). Prints one JSON line per request
answered: the request as the API showed it (``subject``, ``body``, ``options``) and the API's answer.
"""

from __future__ import annotations

import json
import sys
import time
from types import SimpleNamespace

from airflow.api_fastapi.app import create_app
from fastapi.testclient import TestClient


def pending(client: TestClient, dag_id: str, task_id: str) -> dict | None:
    answer = client.get(f"/api/v2/dags/{dag_id}/dagRuns/~/hitlDetails", params={"response_received": False})
    if answer.status_code != 200:
        return None
    for detail in answer.json()["hitl_details"]:
        if detail["task_instance"]["task_id"] == task_id:
            return detail
    return None


def time_out(detail: dict) -> dict:
    """Run the scheduler's sweep of timed-out human-in-the-loop requests until this one is resolved."""
    import logging  # noqa: PLC0415

    from airflow.jobs.scheduler_job_runner import SchedulerJobRunner  # noqa: PLC0415

    sweeper = SimpleNamespace(log=logging.getLogger("sweep"))
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            SchedulerJobRunner.check_awaiting_input_timeouts(sweeper)  # type: ignore[arg-type]
        except Exception as error:  # SQLite busy with the dags test process: try again
            print(json.dumps({"retry": str(error)[:200]}), flush=True)
        time.sleep(1)
        if pending_state(detail) != "awaiting_input":
            return {"status": "timed out"}
    raise SystemExit("the request never timed out")


def pending_state(detail: dict) -> object:
    """The state of the request's task instance; ``None`` while SQLite is busy with the dags test process."""
    from airflow.models.taskinstance import TaskInstance  # noqa: PLC0415
    from airflow.utils.session import create_session  # noqa: PLC0415
    from sqlalchemy.exc import OperationalError  # noqa: PLC0415

    ti = detail["task_instance"]
    try:
        with create_session() as session:
            found = (
                session.query(TaskInstance)
                .filter_by(
                    dag_id=ti["dag_id"],
                    run_id=ti["dag_run_id"],
                    task_id=ti["task_id"],
                    map_index=ti["map_index"],
                )
                .one()
            )
            return getattr(found.state, "value", found.state)
    except OperationalError:
        return None


def main() -> None:
    dag_id, answers = sys.argv[1], json.loads(sys.argv[2])
    client = TestClient(create_app("core"))
    for task_id, option, changes in answers:
        deadline = time.monotonic() + 180
        while (detail := pending(client, dag_id, task_id)) is None:
            if time.monotonic() > deadline:
                raise SystemExit(f"no request for {task_id}")
            time.sleep(0.5)
        # Airflow 3.3.2 resumes a round answered only while it is parked (awaiting_input or deferred): an
        # answer recorded while its task still runs, between writing the request and pausing, is kept but
        # never resumes it, and ``airflow dags test`` then waits forever. A person cannot answer that fast.
        # It must also have finished pausing: ``airflow dags test`` writes the task's state once more when its
        # run returns, just after the pause; an answer that lands in between is overwritten (CI 2026-12-02:
        # answered 79 ms after the pause, the run waited forever). So: parked for a whole second first.
        parked_since = None
        while parked_since is None or time.monotonic() - parked_since < 1.0:
            if pending_state(detail) not in ("awaiting_input", "deferred"):
                parked_since = None
            elif parked_since is None:
                parked_since = time.monotonic()
            if time.monotonic() > deadline:
                raise SystemExit(f"{task_id} never paused for its answer")
            time.sleep(0.2)
        shown = {key: detail[key] for key in ("subject", "body", "options")}
        if option == "TIMEOUT":
            print(json.dumps({"task_id": task_id, **shown, "answer": time_out(detail)}), flush=True)
            continue
        ti = detail["task_instance"]
        run, map_index = ti["dag_run_id"], ti["map_index"]
        path = f"/api/v2/dags/{dag_id}/dagRuns/{run}/taskInstances/{task_id}/{map_index}/hitlDetails"
        body = {"chosen_options": [option], "params_input": {"changes": changes or ""}}
        for _ in range(30):  # SQLite may be busy with the dags test process
            answer = client.patch(path, json=body)
            if answer.status_code < 500:
                break
            time.sleep(0.5)
        print(
            json.dumps({"task_id": task_id, **shown, "status": answer.status_code, "answer": answer.json()}),
            flush=True,
        )


if __name__ == "__main__":
    main()
