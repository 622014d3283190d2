"""``make e2e``: the provider in the deployment users run, checked from the outside.

PostgreSQL, Redis, the Nairi emulator and Airflow 3's api-server, scheduler, dag-processor and triggerer run
as separate processes; first with the LocalExecutor, then with the CeleryExecutor and one Celery worker.
The ``nairi_default`` connection is created in the UI's Add Connection form (headless Chromium), every
example DAG is triggered and checked through the REST API, then the faults. See docs/e2e.md.

Usage: ``.venv-e2e/bin/python scripts/e2e/run.py [--out e2e-out] [--budget 900] [--executors local celery]``.
Exit status 0 only when every scenario passed. Everything it started is stopped, on success and failure.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path

import scenarios
from harness import PAUSE_ENV, Context, Harness, Result
from stack import (
    ROOT,
    Airflow,
    E2EError,
    Processes,
    airflow_env,
    ensure_debian_packages,
    free_port,
    log,
    start_emulator,
    start_postgres,
    start_redis,
)

EXECUTORS = {"local": "LocalExecutor", "celery": "CeleryExecutor"}


class BudgetExceeded(BaseException):
    """The global time budget ran out (a BaseException: no scenario's ``except Exception`` swallows it)."""


def on_signal(signum: int, _frame: object) -> None:
    if signum == signal.SIGALRM:
        raise BudgetExceeded("the global time budget ran out")
    raise KeyboardInterrupt(f"signal {signum}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "e2e-out", help="output folder (emptied first)")
    parser.add_argument("--budget", type=float, default=900, help="global time budget in seconds")
    parser.add_argument("--executors", nargs="+", choices=list(EXECUTORS), default=list(EXECUTORS))
    parser.add_argument("--scenarios", nargs="*", help="run only these scenarios (names as in the summary)")
    args = parser.parse_args()

    out: Path = args.out.resolve()
    shutil.rmtree(out, ignore_errors=True)
    (out / "logs").mkdir(parents=True)
    (out / "screenshots").mkdir()
    harness = Harness(out, args.budget, float(os.environ.get(PAUSE_ENV) or 0))
    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGALRM):
        signal.signal(signum, on_signal)
    signal.alarm(int(args.budget))
    processes = Processes(out / "logs")
    work = Path(tempfile.mkdtemp(prefix="nairi-e2e-"))
    venv_bin = Path(sys.executable).parent
    status = 1
    try:
        ensure_debian_packages()
        postgres = start_postgres(processes, work)
        broker_url = start_redis(processes, work)
        emulator = start_emulator(processes, venv_bin, out / "emulator-state")
        api_port = free_port()
        env = airflow_env(
            home=work / "airflow-home",
            task_logs=out / "logs" / "tasks",
            database_url=postgres.url,
            broker_url=broker_url,
            api_port=api_port,
            dag_folders={
                "nairi_examples": ROOT / "example_dags",
                "nairi_e2e": ROOT / "scripts" / "e2e" / "dags",
            },
        )
        # Where the example nairi_asset_producer downloads (its asset's URI): the harness's own folder.
        env["NAIRI_EXAMPLE_DOWNLOADS"] = str(work / "asset-downloads")
        airflow = Airflow(processes, venv_bin, work / "airflow-home", env, api_port)
        log("airflow db migrate")
        airflow.cli("db", "migrate")
        context = Context(harness, airflow, emulator, out, set(args.scenarios or ()))
        for index, executor in enumerate(args.executors):
            scenarios.run_phase(context, EXECUTORS[executor], first=index == 0)
        status = 0 if harness.results and all(r.ok for r in harness.results) else 1
    except BudgetExceeded as exc:
        harness.results.append(Result("budget", "-", False, time.monotonic() - harness.started, str(exc)))
    except KeyboardInterrupt as exc:
        harness.results.append(Result("interrupted", "-", False, 0, str(exc)))
    except E2EError as exc:
        harness.results.append(Result("setup", "-", False, time.monotonic() - harness.started, str(exc)))
        log(f"setup failed: {exc}")
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        log("stopping every process the harness started")
        processes.stop_all()
        shutil.rmtree(work, ignore_errors=True)
        summary = harness.summary()
        (out / "summary.txt").write_text(summary + "\n")
        print("\n" + summary + f"\n\nLogs and screenshots: {out}", flush=True)
    return status


if __name__ == "__main__":
    sys.exit(main())
