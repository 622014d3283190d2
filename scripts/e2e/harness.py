"""What every scenario module shares: the results table (:class:`Harness`) and the deployment a scenario
acts on (:class:`Context`).

Imports go one way: ``run`` → ``scenarios`` → ``browser``, ``events_scenario``, ``review_scenario`` → this
module → ``stack``. Nothing here imports a scenario.
"""

from __future__ import annotations

import json
import time
import traceback
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from stack import Airflow, E2EError, Emulator, log

from airflow_provider_nairi.client.config import ClientConfig
from airflow_provider_nairi.client.sync import NairiClient
from airflow_provider_nairi.emulator.admin import AdminClient

#: ``E2E_PAUSE_ON_FAILURE=S``: after a failed scenario, everything stays up S seconds (debugging).
PAUSE_ENV = "E2E_PAUSE_ON_FAILURE"


@dataclass
class Result:
    scenario: str
    executor: str
    ok: bool
    seconds: float
    detail: str = ""


class Harness:
    """Runs the scenarios one by one and keeps one :class:`Result` per scenario and executor."""

    def __init__(self, out: Path, budget: float, pause_on_failure: float = 0) -> None:
        self.out = out
        self.budget = budget
        self.pause_on_failure = pause_on_failure
        self.started = time.monotonic()
        self.results: list[Result] = []
        self.notes: list[str] = []

    def run(self, scenario: str, executor: str, step: Callable[[], object]) -> bool:
        log(f"-- {scenario} ({executor})")
        began = time.monotonic()
        try:
            step()
        except Exception as exc:
            detail = str(exc) if isinstance(exc, E2EError) else repr(exc)
            self.results.append(Result(scenario, executor, False, time.monotonic() - began, detail))
            log(
                f"FAIL {scenario} ({executor}): "
                + (detail if isinstance(exc, E2EError) else traceback.format_exc())
            )
            if self.pause_on_failure:  # debugging: look at the live deployment before it is stopped
                log(f"{PAUSE_ENV}: everything stays up for {self.pause_on_failure} s")
                time.sleep(self.pause_on_failure)
            return False
        self.results.append(Result(scenario, executor, True, time.monotonic() - began))
        log(f"ok   {scenario} ({executor}) in {time.monotonic() - began:.1f} s")
        return True

    def summary(self) -> str:
        rows = [("scenario", "executor", "result", "seconds")]
        rows += [(r.scenario, r.executor, "ok" if r.ok else "FAIL", f"{r.seconds:.1f}") for r in self.results]
        widths = [max(len(row[i]) for row in rows) for i in range(4)]
        lines = [
            "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)) for row in rows
        ]
        lines.insert(1, "  ".join("-" * width for width in widths))
        lines.append(f"total {time.monotonic() - self.started:.0f} s (budget {self.budget:.0f} s)")
        failures = [f"- {r.scenario} ({r.executor}): {r.detail}" for r in self.results if not r.ok]
        if failures:
            lines += ["", "Failures:", *failures]
        if self.notes:
            lines += ["", "Notes (not failures):", *(f"- {note}" for note in self.notes)]
        return "\n".join(lines)


@dataclass
class Context:
    """The deployment under test, as every scenario sees it."""

    harness: Harness
    airflow: Airflow
    emulator: Emulator
    out: Path
    only: set[str] = field(default_factory=set)

    @property
    def admin(self) -> AdminClient:
        return AdminClient(self.emulator.admin_url, self.emulator.admin_token)

    @property
    def nairi(self) -> NairiClient:
        """A client of the emulator's public API (what a user's own script would see)."""
        config = ClientConfig(
            api_key=self.emulator.api_key, base_url=self.emulator.base_url, allow_insecure_http=True
        )
        return NairiClient(config)

    @property
    def executor(self) -> str:
        """``local`` or ``celery``: the label of the running phase."""
        return "local" if self.airflow.env["AIRFLOW__CORE__EXECUTOR"] == "LocalExecutor" else "celery"

    def wanted(self, scenario: str) -> bool:
        return not self.only or scenario in self.only

    def conversations(self, title: str) -> list[dict[str, Any]]:
        """The emulator's conversations titled ``title`` (the fault DAGs title theirs with the run id)."""
        found, offset = [], 0
        while True:
            request = urllib.request.Request(
                f"{self.emulator.base_url}/conversations?limit=200&offset={offset}",
                headers={"X-API-Key": self.emulator.api_key},
            )
            with urllib.request.urlopen(request, timeout=10) as answer:
                body = json.load(answer)
            found += [c for c in body["data"] if c.get("title") == title]
            if not body["pagination"]["has_more"]:
                return found
            offset += len(body["data"])

    def task_log_folder(self, dag_id: str, run_id: str, task_id: str, map_index: int = -1) -> Path:
        folder = self.out / "logs" / "tasks" / f"dag_id={dag_id}" / f"run_id={run_id}" / f"task_id={task_id}"
        return folder if map_index < 0 else folder / f"map_index={map_index}"
