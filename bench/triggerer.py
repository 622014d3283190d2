"""N deferred ``NairiConversationTrigger`` waits run by Airflow's own triggerer code, against a baseline.

What runs: Airflow 3's ``TriggerRunnerSupervisor`` (subclassed, as its docstring allows for job-less
triggerers, so triggers come from memory instead of the metadata DB), which forks the real ``TriggerRunner``
(its event loop, ``create_triggers``, ``run_trigger`` with greenback, spans and structlog, the 1 s state sync
and the event path back to the supervisor). Each trigger is a real workload (encrypted kwargs, a task
instance) and reads its connection from ``AIRFLOW_CONN_*`` like in a triggerer. Skipped: the metadata DB
(assigning triggers, writing events), which is per event, not per poll.

The baseline, run by the same runner: a minimal trigger polling with bare ``aiohttp``, one shared session per
event loop, no checks (:class:`BareAiohttpTrigger`). Both contenders wait on the same kind of conversations.

One round, for N waits polling every P seconds (``--poll-interval``; default ``max(5, N / 500)`` s, so the
emulators serve at most 500 polls/s), each contender in a fresh supervisor process:

1. N conversations started (``[[delay:3600]]``), spread over ``--shards`` emulator processes (the emulator
   keeps state in memory, so each process owns its share; each trigger's connection points at its shard);
2. the N triggers handed to the runner over P seconds (N / P per second), at most :data:`PER_LOOP` per
   supervisor loop (Airflow's ``max_trigger_to_select_per_loop``), so their polls are spread evenly as in a
   triggerer that picked them up over time; the runner's capacity is N;
3. after P + 2 s of settling, a measured window (``max(P, 30)`` s, :data:`WINDOW`): the runner's CPU time per
   poll (polls counted by the emulators), its RSS growth per waiting trigger (from before the first trigger,
   median of 3 samples), each emulator's CPU share;
4. the conversations ended (``finish_turns``) at evenly spread moments over P seconds; the delay of each
   from its end (emulator's ``updated_at``) to its event in the supervisor (``on_trigger_event``), and that
   delay in three parts (:class:`EventStamps`: to the trigger's event, to the runner's outbound queue, to
   the supervisor);
5. errors: events that are not ``success``, trigger failures, waits without an event 2P + 30 s after the
   last end.

Each run also prints what its runner's event loop did in the measured window, counted inside the runner in
memory shared with the supervisor (:class:`RunnerCounters`): loop iterations per poll, garbage collections
per generation and the share of CPU they took, and after the window the runner's CPU per completion (the
finish phase's CPU, its polls taken out at the window's cost per poll). They tell noise from cost: a round
whose CPU per poll jumps with the same iterations and no collection was slowed by the machine.

The emulator is not the bottleneck when its CPU share stays well below a core and the polls served in the
window match N / P; both are printed. Modules of both contenders are imported before the fork, so RSS per
trigger is the cost of one more waiting trigger, not of loading aiohttp.

    .venv/bin/python bench/triggerer.py [--waits 1000,5000,10000] [--poll-interval P] [--rounds R]
                                        [--only ours|bare] [--py-spy DIR]

Fairness on a shared machine: the runner has a CPU of its own (the last one; the bench, the emulators and the
supervisor run on the others; ``--no-pin`` to leave them free), so neither contender's runner shares its core
and caches with the emulators' work that answers it. Unpinned, one contender's CPU per poll varied 15 to 20 %
between runs and the rounds' ratios of one run spread from 0.79 to 1.22; pinned, 0.95 to 0.99 and 0.97 to 1.30
in two runs (1,000 waits, 3 rounds): less, not none. The contenders run in interleaved rounds (bare, ours;
ours, bare; ...), each round's ratio (ours / bare CPU per poll) is taken from two runs back to back, and the
CPU goal is judged on the median of those ratios; their spread and the load average before and after every run
are printed. The table's other columns are each contender's best round (CPU, RSS) or all rounds pooled
(delays, errors).
``--py-spy DIR`` samples the runner and the supervisor during the measured window and the finish (``py-spy``
must be installed in the venv; it costs CPU, so its figures are not the bench's).

The default (``--waits 1000``, 3 rounds) takes about 7 minutes; ``--waits 1000,5000,10000`` about 15 more
(one round each above 1,000), which is why ``make bench`` runs only the default.
Ends with one line per goal: ``GOAL <name> met|missed <value> (<goal>)``, each the worst over the Ns run.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import json
import logging
import math
import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any, ClassVar

from cryptography.fernet import Fernet

os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="nairi-bench-triggerer-"))
os.environ.setdefault("AIRFLOW__CORE__FERNET_KEY", Fernet.generate_key().decode())
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"

from airflow.triggers.base import BaseTrigger, TriggerEvent

BENCH = os.path.dirname(os.path.abspath(__file__))
OURS, BARE = "NairiConversationTrigger", "bare aiohttp trigger"
CLASSPATHS = {
    OURS: "airflow_provider_nairi.triggers.conversation.NairiConversationTrigger",
    BARE: "triggerer.BareAiohttpTrigger",
}
#: New triggers handed to the runner per supervisor loop at most: Airflow's ``[triggerer]
#: max_trigger_to_select_per_loop`` default. Without a bound, 500 new triggers in one state sync deadlocked
#: the supervisor and the runner at 5,000 waits (each blocked sending to the other: the sync's answer one
#: way, the new triggers' log lines the other). The harness's capacity is N (``[triggerer] capacity``,
#: default 1,000).
PER_LOOP = 50
#: Shortest measured window, seconds: 6,000 polls at 1,000 waits. With 10 s (2,000 polls) one garbage
#: collection or a burst of other work landing in one contender's window moved a round's ratio by up to
#: 0.25 (rounds of one run from 0.94 to 1.19); with 30 s the rounds of a run spread 0.03 to 0.11. What a
#: longer window does not remove is the machine's drift between runs (1.26 and 1.11 on one morning).
WINDOW = 30.0

#: Modules each contender loads in the runner; imported before the fork (see the module docstring).
PRELOAD = {
    OURS: ["airflow_provider_nairi.hooks.nairi", "airflow_provider_nairi.client.aio"],
    BARE: ["aiohttp"],
}
ENDED = ("completed", "failed", "cancelled")


class RunnerCounters:
    """What the forked runner does besides CPU, counted in memory shared with the supervisor (made before
    the fork): event-loop iterations (selector calls) and garbage collections per generation with their
    time. Counted in the runner only (the supervisor's own selector and collections are skipped)."""

    ITERATIONS, GEN0, GEN1, GEN2, GC_SECONDS = range(5)

    def __init__(self) -> None:
        import multiprocessing  # noqa: PLC0415
        import selectors  # noqa: PLC0415

        self.values = multiprocessing.RawArray("d", 5)
        supervisor, values, started = os.getpid(), self.values, [0.0]
        original = selectors.DefaultSelector.select  # the selector asyncio's event loop makes

        def select(self: Any, timeout: Any = None) -> Any:
            if os.getpid() != supervisor:
                values[RunnerCounters.ITERATIONS] += 1
            return original(self, timeout)

        selectors.DefaultSelector.select = select  # type: ignore[method-assign]

        def collected(phase: str, info: dict[str, int]) -> None:
            if os.getpid() == supervisor:
                return
            if phase == "start":
                started[0] = time.perf_counter()
            else:
                values[RunnerCounters.GEN0 + info["generation"]] += 1
                values[RunnerCounters.GC_SECONDS] += time.perf_counter() - started[0]

        import gc  # noqa: PLC0415

        gc.callbacks.append(collected)

    def read(self) -> list[float]:
        return list(self.values)


class EventStamps:
    """Where an end's delay goes, stamped in the forked runner in memory shared with the supervisor (made
    before the fork): when the trigger's ``run()`` yielded its event, and when Airflow's ``run_trigger``
    appended it to the runner's outbound events (after logging it, "Trigger fired event", in a thread of the
    loop's executor). With the end (the emulator's ``updated_at``) and the supervisor's ``on_trigger_event``
    they split each delay into three parts (:data:`PARTS`)."""

    def __init__(self, waits: int, trigger_classes: list[type[BaseTrigger]]) -> None:
        import multiprocessing  # noqa: PLC0415
        from collections import deque  # noqa: PLC0415

        from airflow.jobs import triggerer_job_runner  # noqa: PLC0415

        self.waits = waits
        self.values = values = multiprocessing.RawArray("d", 2 * waits)  # yielded, then appended

        def stamped(run: Any) -> Any:
            async def run_stamped(trigger: Any) -> Any:
                async for event in run(trigger):
                    values[trigger.trigger_id] = time.time()
                    yield event

            return run_stamped

        for trigger_class in trigger_classes:
            trigger_class.run = stamped(trigger_class.run)  # type: ignore[method-assign]

        class StampingDeque(deque):  # type: ignore[type-arg]
            def append(self, entry: Any) -> None:
                values[waits + entry.trigger_id] = time.time()
                super().append(entry)

        runner_init: Any = triggerer_job_runner.TriggerRunner.__init__

        def init(runner: Any, *args: Any, **kwargs: Any) -> None:
            runner_init(runner, *args, **kwargs)
            runner.events = StampingDeque()

        triggerer_job_runner.TriggerRunner.__init__ = init  # type: ignore[method-assign,assignment]

    def parts(
        self, ended_at: dict[int, float], fired: dict[int, tuple[float, str]], interval: float
    ) -> dict[str, list[float]]:
        """Each part's values over the ends that have all stamps (sorted)."""
        parts: dict[str, list[float]] = {part: [] for part in PARTS}
        for i, ended in ended_at.items():
            yielded, appended = self.values[i], self.values[self.waits + i]
            if i in fired and yielded and appended:
                parts["seen"].append(yielded - ended - interval)
                parts["logged"].append(appended - yielded)
                parts["synced"].append(fired[i][0] - appended)
        return {part: sorted(values) for part, values in parts.items()}


#: The parts of an end's delay (:class:`EventStamps`): ``seen``, from the end to the trigger's event minus
#: ``poll_interval`` (the poll's phase, -P to 0, plus how late that poll ran); ``logged``, from the event to
#: the runner's outbound queue (Airflow logs it first, in its executor); ``synced``, from the queue to the
#: supervisor (the runner sends its events at its state sync, about once a second).
PARTS = ("seen", "logged", "synced")


class BareAiohttpTrigger(BaseTrigger):
    """The baseline: poll ``url`` with bare aiohttp (one session per event loop, never closed) until the
    conversation ends; no retries, no checks."""

    sessions: ClassVar[dict[Any, Any]] = {}

    def __init__(self, url: str, api_key: str, poll_interval: float) -> None:
        super().__init__()
        self.url, self.api_key, self.poll_interval = url, api_key, poll_interval

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return CLASSPATHS[BARE], {
            "url": self.url,
            "api_key": self.api_key,
            "poll_interval": self.poll_interval,
        }

    async def run(self) -> AsyncIterator[TriggerEvent]:
        import aiohttp  # noqa: PLC0415 (as a trigger would: not at DAG parse)

        loop = asyncio.get_running_loop()
        session = self.sessions.get(loop)
        if session is None:
            session = self.sessions[loop] = aiohttp.ClientSession()
        headers = {"X-API-Key": self.api_key}
        while True:
            async with session.get(self.url, headers=headers) as answer:
                status = (await answer.json())["data"]["status"]
            if status in ENDED:
                yield TriggerEvent({"status": "success" if status == "completed" else status})
                return
            await asyncio.sleep(self.poll_interval)


# -- the supervisor process (one per contender and round) ---------------------------------------------------


def epoch(stamp: str) -> float:
    return datetime.datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


def make_supervisor_class() -> Any:
    """``BenchSupervisor``: Airflow's ``TriggerRunnerSupervisor`` fed from memory, plus the bench timeline."""
    import attrs  # noqa: PLC0415
    import psutil  # noqa: PLC0415
    from airflow.executors.workloads.task import TaskInstanceDTO  # noqa: PLC0415
    from airflow.executors.workloads.trigger import RunTrigger  # noqa: PLC0415
    from airflow.jobs.triggerer_job_runner import TriggerRunnerSupervisor  # noqa: PLC0415
    from airflow.models.trigger import Trigger  # noqa: PLC0415 (encrypt_kwargs only: Fernet, no DB)

    from airflow_provider_nairi.emulator import AdminClient  # noqa: PLC0415

    def run_trigger_workload(trigger_id: int, spec: dict[str, Any], dag_version: uuid.UUID) -> RunTrigger:
        ti = TaskInstanceDTO(
            id=uuid.uuid4(),
            dag_version_id=dag_version,
            task_id="wait",
            dag_id="bench_triggerer",
            run_id="bench",
            try_number=1,
            map_index=trigger_id,
            pool_slots=1,
            priority_weight=1,
        )
        return RunTrigger(
            id=trigger_id,
            classpath=spec["classpath"],
            encrypted_kwargs=Trigger.encrypt_kwargs(spec["kwargs"]),
            ti=ti,
        )

    @attrs.define(kw_only=True)
    class BenchSupervisor(TriggerRunnerSupervisor):  # type: ignore[misc]
        plan: dict[str, Any]
        specs: dict[int, dict[str, Any]] = attrs.field(factory=dict)
        released: int = 0
        fired: dict[int, tuple[float, str]] = attrs.field(factory=dict)
        failed: dict[int, str] = attrs.field(factory=dict)
        ended_at: dict[int, float] = attrs.field(factory=dict)
        phase: str = "boot"
        marks: dict[str, float] = attrs.field(factory=dict)
        samples: dict[str, Any] = attrs.field(factory=dict)
        finisher: threading.Thread | None = None
        profilers: list[subprocess.Popen[bytes]] = attrs.field(factory=list)
        runner_counters: Any = None

        # -- what a job-less supervisor must provide (see TriggerRunnerSupervisor's docstring) --------------
        def load_triggers(self) -> None:
            """Release triggers as the timeline says: the warm-up group at once, the rest over one poll
            interval (so that polls are spread evenly), like triggers a triggerer picked up over time."""
            n, interval, warm = len(self.plan["waits"]), self.plan["poll_interval"], self.plan["warm_up"]
            if self.phase == "warm-up":
                due = warm
            elif self.phase == "ramp":
                due = warm + math.ceil(
                    (n - warm) * min(1.0, (time.monotonic() - self.marks["ramp"] + 1) / interval)
                )
            else:
                due = self.released
            due = min(due, self.released + self.plan["per_loop"])  # Airflow's max_trigger_to_select_per_loop
            while self.released < due:
                wait = self.plan["waits"][self.released]
                self.specs[self.released] = wait
                self.released += 1
            self.update_triggers(set(self.specs))

        def build_trigger_workloads(self, new_trigger_ids: set[int]) -> list[RunTrigger]:
            return [run_trigger_workload(i, self.specs[i], self.dag_version) for i in sorted(new_trigger_ids)]

        def on_trigger_event(self, trigger_id: int, event: Any) -> None:
            self.fired[trigger_id] = (time.time(), str((event.payload or {}).get("status")))
            self.specs.pop(trigger_id, None)

        def on_trigger_failure(self, trigger_id: int, exc: list[str] | None) -> None:
            self.failed[trigger_id] = "".join(exc or ["no traceback"])[-500:]
            self.specs.pop(trigger_id, None)

        def heartbeat(self) -> None:
            pass

        def clean_unused(self) -> None:
            pass

        def metric_tags(self) -> dict[str, str]:
            return {"hostname": "bench"}

        def emit_metrics(self) -> None:
            pass

        def should_stop(self) -> bool:
            return self.stop or self.phase == "done"

        # -- the bench timeline -------------------------------------------------------------------------
        @property
        def dag_version(self) -> uuid.UUID:
            return uuid.UUID(int=1)

        def run_once(self) -> None:
            super().run_once()
            self.step()

        def runner_rss(self) -> int:
            return int(psutil.Process(self.pid).memory_info().rss)

        def counters(self) -> dict[str, Any]:
            runner = psutil.Process(self.pid).cpu_times()
            me = psutil.Process().cpu_times()
            return {
                "wall": time.monotonic(),
                "runner_cpu": runner.user + runner.system,
                "supervisor_cpu": me.user + me.system,
                "runner_counters": self.runner_counters.read(),
                "requests": [
                    AdminClient(s["admin_url"], s["admin_token"]).counts()["requests_total"]
                    for s in self.plan["shards"]
                ],
                "emulator_cpu": [sum(psutil.Process(s["pid"]).cpu_times()[:2]) for s in self.plan["shards"]],
            }

        def step(self) -> None:
            """Advance the timeline: boot, warm-up, ramp, settle, window, finish, done."""
            now, plan = time.monotonic(), self.plan
            interval, n = plan["poll_interval"], len(plan["waits"])
            self.marks.setdefault("boot", now)
            settled = interval + 2  # every released trigger has started and polled at least once
            if (
                now - self.marks["boot"] > 4 * interval + plan["finish_timeout"] + 120
            ):  # something is stuck: report how far it got
                self.samples["gave_up_in"] = self.phase
                self.phase = "done"
            elif self.phase == "boot" and self._last_runner_comms != math.inf:
                self.phase, self.marks["warm-up"] = "warm-up", now
            elif self.phase == "warm-up" and now - self.marks["warm-up"] >= settled:
                self.samples["rss_before"] = statistics.median(self._sample_rss() for _ in range(3))
                self.phase, self.marks["ramp"] = "ramp", now
            elif self.phase == "ramp" and self.released == n and self.handed_over() >= n:
                self.phase, self.marks["settle"] = "settle", now
            elif self.phase == "settle" and now - self.marks["settle"] >= settled:
                self.profile("window", plan["window"])
                self.samples["window_start"] = self.counters()
                self.samples["rss"] = [self.runner_rss()]
                self.phase, self.marks["window"] = "window", now
            elif self.phase == "window":
                elapsed = now - self.marks["window"]
                if len(self.samples["rss"]) == 1 and elapsed >= plan["window"] / 2:
                    self.samples["rss"].append(self.runner_rss())
                if elapsed >= plan["window"]:
                    self.samples["window_end"] = self.counters()
                    self.samples["rss"].append(self.runner_rss())
                    self.phase, self.marks["finish"] = "finish", now
                    self.profile("finish", interval + 5)
                    self.finisher = threading.Thread(target=self._finish_all, daemon=True)
                    self.finisher.start()
            elif self.phase == "finish":
                finishing = self.finisher is not None and self.finisher.is_alive()
                if (not finishing and not self.specs) or now - self.marks["finish"] > plan["finish_timeout"]:
                    self.samples["finish_end"] = self.counters()
                    self.phase = "done"

        def profile(self, phase: str, seconds: float) -> None:
            """With ``--py-spy DIR``: sample the runner and this supervisor for ``seconds`` (py-spy, collapsed
            stacks in ``DIR/<contender>-<N>-<phase>-<process>-<pid>.txt``)."""
            folder = self.plan.get("py_spy")
            if not folder:
                return
            for process, pid in (("runner", self.pid), ("supervisor", os.getpid())):
                name = (
                    f"{self.plan['contender'].split()[0]}-{len(self.plan['waits'])}-{phase}-{process}-{pid}"
                )
                command = [os.path.join(os.path.dirname(sys.executable), "py-spy"), "record", "--nonblocking"]
                command += ["--format", "raw", "--duration", str(math.ceil(seconds)), "--pid", str(pid)]
                command += ["--output", os.path.join(folder, name + ".txt")]
                self.profilers.append(
                    subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                )

        def handed_over(self) -> int:
            """Triggers given to the runner (or already ended)."""
            return len(self.running_triggers) + len(self.fired) + len(self.failed)

        def _sample_rss(self) -> int:
            time.sleep(0.2)
            return self.runner_rss()

        def _finish_all(self) -> None:
            """End the conversations at evenly spread moments over one poll interval (seeded order)."""
            plan = self.plan
            order = list(range(len(plan["waits"])))
            random.Random(7).shuffle(order)
            admins = [AdminClient(s["admin_url"], s["admin_token"]) for s in plan["shards"]]
            start, spacing, tick = time.monotonic(), plan["poll_interval"] / len(order), 0.05
            done = 0
            while done < len(order):
                due = min(len(order), int((time.monotonic() - start) / spacing) + 1)
                by_shard: dict[int, list[int]] = {}
                for i in order[done:due]:
                    by_shard.setdefault(plan["waits"][i]["shard"], []).append(i)
                for shard, ids in by_shard.items():
                    by_conversation = {plan["waits"][i]["conversation_id"]: i for i in ids}
                    for conversation_id, stamp in admins[shard].finish_turns(list(by_conversation)).items():
                        self.ended_at[by_conversation[conversation_id]] = epoch(stamp)
                done = due
                time.sleep(tick)

        def report(self) -> dict[str, Any]:
            start, end = self.samples.get("window_start"), self.samples.get("window_end")
            result: dict[str, Any] = {"gave_up_in": self.samples.get("gave_up_in")}
            if start and end and "rss_before" in self.samples:
                wall = end["wall"] - start["wall"]
                polls = sum(end["requests"]) - sum(start["requests"])
                result.update(
                    window_s=wall,
                    polls=polls,
                    expected_polls=len(self.plan["waits"]) * wall / self.plan["poll_interval"],
                    runner_cpu_s=end["runner_cpu"] - start["runner_cpu"],
                    supervisor_cpu_s=end["supervisor_cpu"] - start["supervisor_cpu"],
                    runner_counters=[
                        b - a for a, b in zip(start["runner_counters"], end["runner_counters"], strict=True)
                    ],
                    emulator_cpu_share=[
                        (b - a) / wall
                        for a, b in zip(start["emulator_cpu"], end["emulator_cpu"], strict=True)
                    ],
                    rss_per_trigger=(statistics.median(self.samples["rss"]) - self.samples["rss_before"])
                    / (len(self.plan["waits"]) - self.plan["warm_up"]),
                )
            finish_end = self.samples.get("finish_end")
            if end and finish_end and result.get("polls") and self.fired:
                # the finish: its polls at the window's CPU per poll, the rest is the completions' own
                polls = sum(finish_end["requests"]) - sum(end["requests"])
                cpu = finish_end["runner_cpu"] - end["runner_cpu"]
                per_poll = result["runner_cpu_s"] / result["polls"]
                result["cpu_per_completion"] = (cpu - polls * per_poll) / len(self.fired)
            delays = [self.fired[i][0] - self.ended_at[i] for i in self.ended_at if i in self.fired]
            result["delays"] = sorted(delays)
            result["not_success"] = sum(1 for _, status in self.fired.values() if status != "success")
            result["failed"] = len(self.failed)
            result["failures"] = list(self.failed.values())[:3]
            result["missing"] = len(self.plan["waits"]) - len(self.fired) - len(self.failed)
            result["not_ended"] = len(self.plan["waits"]) - len(self.ended_at)
            return result

    return BenchSupervisor


def supervise(plan_path: str, result_path: str) -> None:
    """Run one contender through the triggerer code (this process is the supervisor); write the report."""
    import importlib  # noqa: PLC0415

    import structlog  # noqa: PLC0415

    from airflow_provider_nairi.testing import connection_env_var, connection_json  # noqa: PLC0415

    with open(plan_path) as file:
        plan = json.load(file)
    for k, shard in enumerate(plan["shards"]):
        os.environ[connection_env_var(f"nairi_bench_{k}")] = connection_json(
            shard["base_url"], shard["api_key"]
        )
    for module in PRELOAD[plan["contender"]]:
        importlib.import_module(module)
    if plan["budget"] == "per-client":  # bench/rate_budget.py's "today": no budget shared between triggers
        from airflow_provider_nairi.client import budget  # noqa: PLC0415

        budget.RateBudgets.for_key = lambda self, base_url, api_key: budget.RateBudget()  # type: ignore[method-assign]
    counters = RunnerCounters()
    from airflow_provider_nairi.triggers.conversation import NairiConversationTrigger  # noqa: PLC0415

    stamps = EventStamps(len(plan["waits"]), [BareAiohttpTrigger, NairiConversationTrigger])
    supervisor_cpus = os.sched_getaffinity(0)
    if plan.get("runner_core") is not None:  # pinned: the runner, forked by start(), is born on its CPU, so
        os.sched_setaffinity(0, {plan["runner_core"]})  # every thread it starts runs there too
    supervisor = make_supervisor_class().start(
        job=None,
        capacity=len(plan["waits"]),
        logger=structlog.get_logger("bench"),
        plan=plan,
        runner_counters=counters,
    )
    os.sched_setaffinity(0, supervisor_cpus)
    try:
        supervisor.run()
    finally:
        supervisor.kill(escalation_delay=10, force=True)
        for profiler in supervisor.profilers:
            profiler.wait(timeout=60)
    report = supervisor.report()
    report["parts"] = stamps.parts(supervisor.ended_at, supervisor.fired, plan["poll_interval"])
    with open(result_path, "w") as file:
        json.dump(report, file)


# -- the parent: emulators, conversations, rounds, the table -------------------------------------------------


def start_conversations(shard: dict[str, Any], count: int) -> list[str]:
    """Start ``count`` conversations on ``shard`` (with its ``setup_key`` if it has one) that run until
    ended by ``finish_turns``."""
    from airflow_provider_nairi.client import ClientConfig  # noqa: PLC0415
    from airflow_provider_nairi.client.aio import AsyncNairiClient  # noqa: PLC0415

    async def run() -> list[str]:
        config = ClientConfig(api_key=shard.get("setup_key") or shard["api_key"], base_url=shard["base_url"])
        async with AsyncNairiClient(config) as client:
            body = {"agent_id": shard["agent_id"], "message": "wait [[delay:3600]]"}  # ended by finish_turns
            semaphore = asyncio.Semaphore(64)

            async def one() -> str:
                async with semaphore:
                    return str((await client.request("POST", "/conversations", json=body))["id"])

            return list(await asyncio.gather(*(one() for _ in range(count))))

    return asyncio.run(run())


def trigger_spec(
    contender: str, shard_index: int, shard: dict[str, Any], conversation_id: str, interval: float
) -> dict[str, Any]:
    if contender == OURS:
        from airflow_provider_nairi.triggers.conversation import NairiConversationTrigger  # noqa: PLC0415

        classpath, kwargs = NairiConversationTrigger(
            conn_id=f"nairi_bench_{shard_index}",
            resource_id=conversation_id,
            deadline=time.time() + 3600,
            poll_interval=interval,
            turn=1,
        ).serialize()
    else:
        classpath, kwargs = BareAiohttpTrigger(
            f"{shard['base_url']}/conversations/{conversation_id}", shard["api_key"], interval
        ).serialize()
    return {
        "classpath": classpath,
        "kwargs": kwargs,
        "shard": shard_index,
        "conversation_id": conversation_id,
    }


def make_plan(
    contender: str, shards: list[dict[str, Any]], n: int, interval: float, **settings: Any
) -> dict[str, Any]:
    """N conversations started across the shards and the plan of one round (``settings`` override its
    defaults: ``window``, ``warm_up``, ``finish_timeout``, ``budget``)."""
    per_shard = [start_conversations(shard, len(range(k, n, len(shards)))) for k, shard in enumerate(shards)]
    waits = []
    for i in range(n):
        k = i % len(shards)
        waits.append(trigger_spec(contender, k, shards[k], per_shard[k][i // len(shards)], interval))
    return {
        "contender": contender,
        "shards": shards,
        "waits": waits,
        "poll_interval": interval,
        "window": max(interval, WINDOW),
        "warm_up": max(10, n // 100),
        "finish_timeout": 3 * interval + 30,
        "budget": "shared",
        "per_loop": PER_LOOP,
        **settings,
    }


def run_round(
    contender: str, shards: list[dict[str, Any]], n: int, interval: float, **settings: Any
) -> dict[str, Any]:
    """One contender, N waits, in a fresh supervisor process."""
    return run_plan(make_plan(contender, shards, n, interval, **settings))


def run_plan(plan: dict[str, Any]) -> dict[str, Any]:
    """Run ``plan`` in a fresh supervisor process; its report plus what its log shows."""
    with tempfile.TemporaryDirectory(prefix="nairi-bench-triggerer-") as folder:
        plan_path, result_path = os.path.join(folder, "plan.json"), os.path.join(folder, "result.json")
        log_path = os.path.join(folder, "supervisor.log")
        with open(plan_path, "w") as file:
            json.dump(plan, file)
        code = (
            f"import sys; sys.path.insert(0, {BENCH!r}); import triggerer; triggerer.supervise(*sys.argv[1:])"
        )
        with open(log_path, "w") as log:
            subprocess.run(
                [sys.executable, "-c", code, plan_path, result_path], check=True, stdout=log, stderr=log
            )
        with open(result_path) as file:
            result: dict[str, Any] = json.load(file)
        with open(log_path) as log:
            lines = log.readlines()
    result["blocked_warnings"] = sum("async thread was blocked" in line for line in lines)
    result["warnings"] = sum("[warning" in line or "[error" in line for line in lines)
    result["log_lines_per_poll"] = len(lines) / max(1, result.get("polls") or 1)
    result["errors"] = result["not_success"] + result["failed"] + result["missing"]
    return result


def percentile(values: list[float], q: float) -> float:
    """The q-quantile (nearest rank) of sorted ``values``."""
    if not values:
        return math.inf
    return values[min(len(values) - 1, max(0, math.ceil(q * len(values)) - 1))]


#: The quantiles printed for each part of the delay (p50, p90, p99, max).
QUANTILES = (0.5, 0.9, 0.99, 1.0)


def summarize(results: list[dict[str, Any]]) -> dict[str, Any]:
    """One contender over its rounds: best CPU and RSS per trigger, delays pooled, errors summed."""
    measured = [r for r in results if "polls" in r]
    delays = sorted(d for r in results for d in r["delays"])
    return {
        "cpu_per_poll": min((r["runner_cpu_s"] / r["polls"] for r in measured), default=math.inf),
        "rss_per_trigger": min((r["rss_per_trigger"] for r in measured), default=math.inf),
        "p50": percentile(delays, 0.50),
        "p99": percentile(delays, 0.99),
        "errors": sum(r["errors"] for r in results) + sum(1 for r in results if r["gave_up_in"]),
        "polls": sum(r.get("polls", 0) for r in measured),
        "expected": sum(r.get("expected_polls", 0) for r in measured),
        "emulator": max((max(r["emulator_cpu_share"]) for r in measured), default=math.nan),
        "supervisor_cpu_per_poll": min(
            (r["supervisor_cpu_s"] / r["polls"] for r in measured), default=math.inf
        ),
        "blocked": sum(r["blocked_warnings"] for r in results),
        "warnings": sum(r["warnings"] for r in results),
        "log_lines_per_poll": min((r["log_lines_per_poll"] for r in measured), default=math.nan),
        "parts": {
            part: [percentile(sorted(d for r in results for d in r["parts"][part]), q) for q in QUANTILES]
            for part in PARTS
        },
    }


def load() -> str:
    with open("/proc/loadavg") as file:
        return " ".join(file.read().split()[:3])


def paired_ratios(results: dict[str, list[dict[str, Any]]]) -> list[float]:
    """Ours / bare CPU per poll of each round (the two ran back to back, so under about the same load)."""
    return [
        (o["runner_cpu_s"] / o["polls"]) / (b["runner_cpu_s"] / b["polls"])
        for o, b in zip(results[OURS], results[BARE], strict=True)
        if o.get("polls") and b.get("polls")
    ]


def cpu_per_poll_ms(result: dict[str, Any]) -> str:
    """A run's CPU per poll, what its runner's loop did in the window (iterations per poll, garbage
    collections of generations 0/1/2 and the CPU share they took) and its CPU per completion in the finish."""
    if not result.get("polls"):
        return ""
    polls, counted = result["polls"], result["runner_counters"]
    iterations, gen0, gen1, gen2, collecting = counted
    return (
        f" ({result['runner_cpu_s'] / polls * 1000:.3f} ms, {iterations / polls:.2f} it/poll,"
        f" gc {gen0:.0f}/{gen1:.0f}/{gen2:.0f} taking {collecting / result['runner_cpu_s']:.0%},"
        f" finish {result.get('cpu_per_completion', math.nan) * 1000:.2f} ms per completion)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--waits", default="1000", help="comma-separated Ns (default 1000)")
    parser.add_argument("--poll-interval", type=float, default=None, help="seconds; default max(5, N / 500)")
    parser.add_argument("--rounds", type=int, default=None, help="default 3 for N <= 1000, else 1")
    parser.add_argument("--shards", type=int, default=2, help="emulator processes (default 2)")
    parser.add_argument("--only", choices=("ours", "bare"), help="run one contender (no ratios, no GOAL)")
    parser.add_argument(
        "--py-spy", metavar="DIR", help="sample the runner and supervisor with py-spy (raw stacks in DIR)"
    )
    parser.add_argument(
        "--no-pin", action="store_true", help="leave every process free to run on any CPU (see Fairness)"
    )
    args = parser.parse_args()
    runner_core = None if args.no_pin else pin_all_but_runner()
    logging.getLogger("airflow_provider_nairi.client").setLevel(logging.WARNING)  # the set-up's requests
    sys.path.insert(0, BENCH)
    from _common import emulator_process  # noqa: PLC0415

    from airflow_provider_nairi.client import ClientConfig, NairiClient  # noqa: PLC0415

    contenders = {"ours": [OURS], "bare": [BARE], None: [BARE, OURS]}[args.only]
    worst = {"cpu": 0.0, "rss": 0.0, "p99_over_interval": -math.inf, "errors": 0}
    with contextlib.ExitStack() as stack:
        shards = []
        for _ in range(args.shards):
            emu = stack.enter_context(emulator_process())
            with NairiClient(ClientConfig(api_key=emu["api_key"], base_url=emu["base_url"])) as client:
                agent_id = client.create_agent("bench", "wait")["id"]
            shards.append(
                {
                    "base_url": emu["base_url"],
                    "api_key": emu["api_key"],
                    "admin_url": emu["admin_url"],
                    "admin_token": emu["admin_token"],
                    "pid": emu["pid"],
                    "agent_id": agent_id,
                }
            )
        for n in (int(text) for text in args.waits.split(",")):
            interval = args.poll_interval or max(5.0, n / 500)
            rounds = args.rounds or (3 if n <= 1000 else 1)
            results: dict[str, list[dict[str, Any]]] = {name: [] for name in contenders}
            for k in range(rounds):  # interleaved: bare, ours; ours, bare; ... (a drifting load hits both)
                for contender in contenders if k % 2 == 0 else contenders[::-1]:
                    before = load()
                    result = run_round(
                        contender, shards, n, interval, py_spy=args.py_spy, runner_core=runner_core
                    )
                    result["load"] = f"{before} -> {load()}"
                    results[contender].append(result)
            print(
                f"{n:,} waits polling every {interval:g} s, {args.shards} emulator processes, "
                f"{rounds} interleaved round(s); load average (1, 5, 15 min) before -> after each run "
                "(CPU per poll; the runner's event-loop iterations per poll; its garbage collections per "
                "generation in the window and their share of its CPU; its CPU per completion in the finish, "
                "the finish's polls taken out at the window's cost):"
            )
            for k in range(rounds):
                runs = [f"{name.split()[0]} {results[name][k]['load']}" for name in contenders]
                runs = [
                    run + cpu_per_poll_ms(results[name][k])
                    for run, name in zip(runs, contenders, strict=True)
                ]
                print(f"  round {k + 1}: " + "; ".join(runs))
            summary = {name: summarize(runs) for name, runs in results.items()}
            print(
                f"  {'contender':26s} {'CPU/poll':>9s} {'RSS/trigger':>11s} {'p50':>6s} {'p99':>6s}"
                f" {'errors':>6s}"
                f" {'polls (N*t/P)':>16s} {'emulator CPU':>12s} {'supervisor':>10s}"
            )
            for name, row in summary.items():
                print(
                    f"  {name:26s} {row['cpu_per_poll'] * 1000:6.3f} ms"
                    f" {row['rss_per_trigger'] / 1024:7.1f} KiB"
                    f" {row['p50']:5.2f}s {row['p99']:5.2f}s {row['errors']:6d}"
                    f" {row['polls']:7,d} ({row['expected']:6,.0f}) {row['emulator']:11.0%}"
                    f" {row['supervisor_cpu_per_poll'] * 1000:7.3f} ms"
                )
                if row["blocked"] or row["warnings"]:
                    print(
                        f"    ({row['blocked']} 'blocked main thread' warnings,"
                        f" {row['warnings']} warning/error lines)"
                    )
                parts = "; ".join(
                    f"{part} " + "/".join(f"{value:+.2f}" for value in row["parts"][part]) for part in PARTS
                )
                print(f"    delay in parts (s), p50/p90/p99/max: {parts}")
            if len(contenders) == 1:
                continue
            ours, bare = summary[OURS], summary[BARE]
            paired = paired_ratios(results)
            cpu = statistics.median(paired) if paired else math.inf
            rss = ours["rss_per_trigger"] / bare["rss_per_trigger"]
            print(
                f"  ours/bare: CPU per poll {cpu:.2f} (median of the {len(paired)} rounds' ratios, spread "
                f"{min(paired, default=math.nan):.2f} to {max(paired, default=math.nan):.2f}), "
                f"RSS per trigger {rss:.2f}; log lines per poll: ours {ours['log_lines_per_poll']:.2f}, bare "
                f"{bare['log_lines_per_poll']:.2f}",
                flush=True,
            )
            worst["cpu"] = max(worst["cpu"], cpu)
            worst["rss"] = max(worst["rss"], rss)
            worst["p99_over_interval"] = max(worst["p99_over_interval"], ours["p99"] - interval)
            worst["errors"] += ours["errors"]
    if len(contenders) == 1:
        return
    print(
        f"GOAL cpu_per_poll {verdict(worst['cpu'] <= 1.1)} {worst['cpu']:.2f} (<= 1.1x bare aiohttp trigger)"
    )
    print(
        f"GOAL rss_per_trigger {verdict(worst['rss'] <= 1.2)} {worst['rss']:.2f}"
        " (<= 1.2x bare aiohttp trigger)"
    )
    print(
        f"GOAL p99_delay {verdict(worst['p99_over_interval'] <= 1.0)} {worst['p99_over_interval']:+.2f} "
        "(p99 - poll_interval <= 1 s)"
    )
    print(f"GOAL errors {verdict(worst['errors'] == 0)} {worst['errors']} (0)")


def pin_all_but_runner() -> int | None:
    """Keep the last CPU for the runner: this process, and so the emulators and supervisors it starts, runs
    on the others (each runner is moved to the kept CPU when forked). ``None`` (nothing pinned) with fewer
    than two CPUs."""
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        return None
    os.sched_setaffinity(0, set(cpus[:-1]))
    return cpus[-1]


def verdict(met: bool) -> str:
    return "met" if met else "missed"


if __name__ == "__main__":
    main()
