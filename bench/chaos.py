"""``make chaos``: many conversations with attachments and downloads through the operators, under faults.

Each conversation is a three-task pipeline, run the way a worker runs it (``execute`` with a
task-instance-like context and a ``task_state_store``; deferred tasks run their trigger inline, as the
triggerer would):

1. ``NairiUploadArtifactsOperator`` uploads a small file of known bytes;
2. ``NairiStartConversationOperator`` asks an agent with it attached; the agent produces an artifact;
3. ``NairiDownloadArtifactsOperator`` downloads both artifacts.

Meanwhile the emulator answers a share of all API requests (20 % by default) with a fault: 429 with
``Retry-After``, 500, 502 HTML, 503, connection resets, slow answers, and lost answers (the server does the
work, then resets the connection: only idempotent replays keep a retry from creating a duplicate). A task
that fails with a retryable outcome (``AirflowException``) is run again as Airflow would, up to ``retries``
times, with the next ``try_number`` and the same task-state store; ``AirflowFailException`` is never retried.

The client retries each call at most twice here (``max_retries=2``), so some faults outlast the client and
reach Airflow's retries: both layers are exercised. The run passes when every pipeline succeeds, the emulator
holds exactly one conversation and two artifacts per pipeline (no duplicate from a retried POST), and every
downloaded file has the bytes that were uploaded or asked for (their sha256). It prints the counts and exits 1
otherwise.

    .venv/bin/python bench/chaos.py [--conversations 200] [--fault-rate 0.2] [--workers 6] [--seed 8]
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import dataclasses
import hashlib
import json
import os
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

# A throw-away Airflow home before Airflow is imported (no metadata DB is used).
os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="nairi-chaos-airflow-"))
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
os.environ.setdefault("AIRFLOW__CORE__UNIT_TEST_MODE", "True")
os.environ.setdefault("AIRFLOW__LOGGING__LOGGING_LEVEL", "ERROR")  # not a line per request and retry

from airflow.providers.common.compat.sdk import (
    AirflowException,
    AirflowFailException,
    Connection,
    TaskDeferred,
)

from airflow_provider_nairi.emulator import run_emulator
from airflow_provider_nairi.hooks.nairi import NairiHook
from airflow_provider_nairi.operators.content import (
    NairiDownloadArtifactsOperator,
    NairiUploadArtifactsOperator,
)
from airflow_provider_nairi.operators.conversation import NairiStartConversationOperator
from airflow_provider_nairi.testing import connection_env_var

#: Every fault kind but ``redirect`` (a redirect is refused on purpose and fails the task: not a transient).
#: ``lost`` does the work and drops the answer: only idempotent replays keep it from duplicating anything.
CHAOS_FAULTS = ("429", "500", "502", "503", "reset", "slow", "lost")
CONN_ID = "nairi_chaos"
#: Client retries per call: few enough that some faults reach Airflow's retries.
CLIENT_RETRIES = 2


class StateStore:
    """Airflow 3.3's ``task_state_store`` as the operators use it: JSON values by key, kept across tries."""

    def __init__(self) -> None:
        self.values: dict[str, str] = {}

    def get(self, key: str, default: Any = None) -> Any:
        return json.loads(self.values[key]) if key in self.values else default

    def set(self, key: str, value: Any, *, retention: Any = None) -> None:
        self.values[key] = json.dumps(value)


@dataclasses.dataclass
class TaskInstance:
    """What the operators read from a task instance: its identity, the try number, XCom pushes."""

    dag_id: str
    task_id: str
    run_id: str
    map_index: int = -1
    try_number: int = 1
    stats_tags: dict[str, str] = dataclasses.field(default_factory=dict)
    xcom: dict[str, Any] = dataclasses.field(default_factory=dict)

    def xcom_push(self, key: str, value: Any) -> None:
        self.xcom[key] = json.loads(json.dumps(value))


@dataclasses.dataclass
class Tally:
    """What happened across the run (thread-safe counters)."""

    airflow_retries: collections.Counter[str] = dataclasses.field(default_factory=collections.Counter)
    deferred: int = 0
    lock: threading.Lock = dataclasses.field(default_factory=threading.Lock)

    def retried(self, task_id: str) -> None:
        with self.lock:
            self.airflow_retries[task_id] += 1

    def deferral(self) -> None:
        with self.lock:
            self.deferred += 1


def run_inline(operator: Any, context: dict[str, Any], tally: Tally) -> Any:
    """``operator.execute``; a deferral runs its trigger to the first event and resumes the operator."""
    try:
        return operator.execute(context)
    except TaskDeferred as deferred:
        tally.deferral()
        trigger, method_name = deferred.trigger, deferred.method_name

        async def first_event() -> Any:
            async for event in trigger.run():
                return event.payload
            raise AirflowException("the trigger ended without an event")

        return getattr(operator, method_name)(context, asyncio.run(first_event()))


def run_task(
    make_operator: Callable[[], Any], ti: TaskInstance, retries: int, tally: Tally
) -> tuple[Any, int]:
    """Run a task as Airflow would: a new operator per try; retry ``AirflowException`` up to ``retries``.

    Returns ``(XCom return value, tries used)``. ``AirflowFailException`` and the last failure propagate.
    """
    store = StateStore()
    for try_number in range(1, retries + 2):
        ti.try_number = try_number
        try:
            return run_inline(make_operator(), {"ti": ti, "task_state_store": store}, tally), try_number
        except AirflowFailException:
            raise
        except AirflowException:
            if try_number > retries:
                raise
            tally.retried(ti.task_id)
    raise AssertionError("unreachable")


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@dataclasses.dataclass
class Pipeline:
    """One conversation's three tasks and what they must produce."""

    number: int
    agent_id: str
    workdir: Path
    deferrable: bool

    @property
    def attachment_bytes(self) -> bytes:
        line = f"pipeline {self.number}: notes for the agent\n".encode()
        return line * (50 + self.number % 200)  # 2 to 10 KB, different per pipeline

    @property
    def artifact_text(self) -> str:
        return f"report of pipeline {self.number}"

    def run(self, retries: int, tally: Tally) -> dict[str, Any]:
        """Run the pipeline; return the problems found (empty when all is well) and the tries used."""
        source = self.workdir / "in" / f"notes-{self.number}.txt"
        source.parent.mkdir(parents=True, exist_ok=True)
        source.write_bytes(self.attachment_bytes)
        run_id = f"chaos__{self.number}"

        def ti(task_id: str) -> TaskInstance:
            return TaskInstance(dag_id="nairi_chaos", task_id=task_id, run_id=run_id)

        uploaded, upload_tries = run_task(
            lambda: NairiUploadArtifactsOperator(task_id="upload", sources=str(source), conn_id=CONN_ID),
            ti("upload"),
            retries,
            tally,
        )
        reply, ask_tries = run_task(
            lambda: NairiStartConversationOperator(
                task_id="ask",
                agent_id=self.agent_id,
                message=f"summarise pipeline {self.number} [[artifact:report-{self.number}.txt:"
                f"{self.artifact_text}]]",
                artifact_ids=[item["id"] for item in uploaded],
                poll_interval=0.05,
                timeout=120,
                deferrable=self.deferrable,
                conn_id=CONN_ID,
            ),
            ti("ask"),
            retries,
            tally,
        )
        destination = self.workdir / "out" / str(self.number)
        written, download_tries = run_task(
            lambda: NairiDownloadArtifactsOperator(
                task_id="download",
                destination=str(destination),
                artifact_ids=[item["id"] for item in uploaded] + reply["artifact_ids"],
                conn_id=CONN_ID,
            ),
            ti("download"),
            retries,
            tally,
        )
        problems = []
        if len(written) != 2:
            problems.append(f"pipeline {self.number}: {len(written)} files downloaded, expected 2")
        expected = {
            f"notes-{self.number}.txt": hashlib.sha256(self.attachment_bytes).hexdigest(),
            f"report-{self.number}.txt": hashlib.sha256(self.artifact_text.encode()).hexdigest(),
        }
        for path in map(Path, written):
            if sha256(path) != expected.get(path.name):
                problems.append(f"pipeline {self.number}: {path.name} does not have the expected sha256")
        return {
            "problems": problems,
            "conversation_id": reply["conversation_id"],
            "tries": upload_tries + ask_tries + download_tries,
        }


@contextlib.contextmanager
def chaos_emulator(
    fault_rate: float, seed: int, slow_seconds: float, faults: Sequence[str] = CHAOS_FAULTS
) -> Iterator[Any]:
    """An emulator with faults on every API path and the ``nairi_chaos`` connection pointing at it."""
    with run_emulator(
        turn_latency=0.05,
        fault_rate=fault_rate,
        fault_kinds=faults,
        fault_seed=seed,
        slow_seconds=slow_seconds,
        fault_retry_after=1,
    ) as emulator:
        variable = connection_env_var(CONN_ID)
        previous = os.environ.get(variable)
        os.environ[variable] = Connection(
            conn_id=CONN_ID,
            conn_type="nairi",
            host=emulator.base_url,
            password=emulator.api_key,
            extra=json.dumps({"max_retries": CLIENT_RETRIES}),
        ).as_json()
        try:
            yield emulator
        finally:
            if previous is None:
                os.environ.pop(variable, None)
            else:
                os.environ[variable] = previous


def run_chaos(
    conversations: int = 200,
    *,
    fault_rate: float = 0.2,
    seed: int = 8,
    workers: int = 6,
    retries: int = 3,
    deferrable_every: int = 10,
    slow_seconds: float = 0.3,
    faults: Sequence[str] = CHAOS_FAULTS,
    workdir: Path | None = None,
) -> dict[str, Any]:
    """Run the chaos test; return a report (counts, faults injected, retries, problems, seconds)."""
    started = time.monotonic()
    with contextlib.ExitStack() as stack:
        if workdir is None:
            workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="nairi-chaos-")))
        emulator = stack.enter_context(chaos_emulator(fault_rate, seed, slow_seconds, faults))
        agent_id = NairiHook(CONN_ID).client.create_agent("chaos-agent", "Summarise what you are given.")[
            "id"
        ]
        tally = Tally()
        pipelines = [
            Pipeline(n, agent_id, workdir, deferrable=deferrable_every > 0 and n % deferrable_every == 0)
            for n in range(conversations)
        ]
        with ThreadPoolExecutor(max_workers=workers) as pool:
            outcomes = list(pool.map(lambda p: p.run(retries, tally), pipelines))
        emulator.admin.clear_faults()
        counts = emulator.admin.counts()
        statuses = collections.Counter(str(entry["status"]) for entry in emulator.admin.requests_log())
    problems = [problem for outcome in outcomes for problem in outcome["problems"]]
    if len({outcome["conversation_id"] for outcome in outcomes}) != conversations:
        problems.append("two pipelines share a conversation")
    if counts["conversations"] != conversations:
        problems.append(f"{counts['conversations']} conversations stored, expected {conversations}")
    if counts["artifacts"] != 2 * conversations:
        problems.append(f"{counts['artifacts']} artifacts stored, expected {2 * conversations}")
    faults = sum(n for status, n in statuses.items() if status not in {"200", "201", "202", "204", "206"})
    return {
        "conversations": conversations,
        "deferred_tasks": tally.deferred,
        "stored": {name: counts[name] for name in ("agents", "conversations", "messages", "artifacts")},
        "api_requests": sum(statuses.values()),
        "answers_by_status": dict(sorted(statuses.items())),
        "fault_answers": faults,
        "airflow_retries": dict(tally.airflow_retries),
        "task_tries": sum(outcome["tries"] for outcome in outcomes),
        "tasks": 3 * conversations,
        "problems": problems,
        "seconds": round(time.monotonic() - started, 1),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--conversations", type=int, default=200)
    parser.add_argument("--fault-rate", type=float, default=0.2)
    parser.add_argument("--workers", type=int, default=6)
    parser.add_argument("--seed", type=int, default=8)
    parser.add_argument("--retries", type=int, default=3, help="Airflow retries of each task")
    args = parser.parse_args(argv)
    report = run_chaos(
        args.conversations,
        fault_rate=args.fault_rate,
        seed=args.seed,
        workers=args.workers,
        retries=args.retries,
    )
    print(json.dumps(report, indent=2))
    return 1 if report["problems"] else 0


if __name__ == "__main__":
    sys.exit(main())
