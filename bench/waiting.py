"""Worker-slot seconds held while 100 conversations wait: deferrable against waiting on the worker.

Against the emulator (in this process, loopback), each of N conversations takes TURN seconds. The real
``NairiStartConversationOperator`` runs N times, all at once, in two ways:

- **worker** (``deferrable=False``, what poke mode costs): each task holds a worker slot from ``execute``
  to its return, polling every POLL seconds;
- **deferrable**: each task holds a slot only for ``execute`` until it defers and for ``execute_complete``;
  the N ``NairiConversationTrigger`` waits run together in one event loop, as in one triggerer.

Worker-slot seconds are the sum of the time each task held a slot. Printed: both sums, their ratio, and the
triggerer's wall time. Usage: ``.venv/bin/python bench/waiting.py [N] [TURN]``.
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor

os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="nairi-bench-"))
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"

from airflow.providers.common.compat.sdk import TaskDeferred

from airflow_provider_nairi.emulator import run_emulator
from airflow_provider_nairi.hooks.nairi import NairiHook
from airflow_provider_nairi.operators.conversation import NairiStartConversationOperator
from airflow_provider_nairi.testing import connection_env_var, connection_json

N = int(sys.argv[1]) if len(sys.argv) > 1 else 100
TURN = float(sys.argv[2]) if len(sys.argv) > 2 else 3.0
POLL = 0.5
TIMEOUT = 120.0


class TaskInstance:
    """What the operator reads from a task instance: identity (for idempotency keys) and xcom_push."""

    dag_id = "bench"
    try_number = 1
    stats_tags: dict = {}

    def __init__(self, run_id: str, task_id: str, map_index: int) -> None:
        self.run_id, self.task_id, self.map_index = run_id, task_id, map_index

    def xcom_push(self, key: str, value: object) -> None:
        pass


def operator(agent_id: str, deferrable: bool, n: int) -> tuple[NairiStartConversationOperator, dict]:
    task = NairiStartConversationOperator(
        task_id=f"ask_{n}",
        agent_id=agent_id,
        message=f"question {n}",
        deferrable=deferrable,
        poll_interval=POLL,
        timeout=TIMEOUT,
    )
    # One run per mode: the same run would replay the other mode's conversations (same idempotency keys).
    ti = TaskInstance(f"deferrable={deferrable}", task.task_id, n)
    return task, {"ti": ti, "task_state_store": None}


def timed(call, *args):
    start = time.perf_counter()
    result = call(*args)
    return time.perf_counter() - start, result


def worker_mode(agent_id: str) -> float:
    def one(n: int) -> float:
        task, context = operator(agent_id, False, n)
        held, result = timed(task.execute, context)
        assert result["status"] == "completed", result
        return held

    with ThreadPoolExecutor(max_workers=N) as pool:
        return sum(pool.map(one, range(N)))


def deferrable_mode(agent_id: str) -> tuple[float, float]:
    def submit(n: int):
        task, context = operator(agent_id, True, n)
        start = time.perf_counter()
        try:
            task.execute(context)
        except TaskDeferred as deferred:
            return time.perf_counter() - start, task, context, deferred
        raise AssertionError("the operator did not defer")

    with ThreadPoolExecutor(max_workers=N) as pool:
        submitted = list(pool.map(submit, range(N)))

    async def triggerer():
        async def first_event(trigger):
            async for event in trigger.run():
                return event.payload
            raise AssertionError("no event")

        return await asyncio.gather(*(first_event(deferred.trigger) for _, _, _, deferred in submitted))

    wall_start = time.perf_counter()
    events = asyncio.run(triggerer())
    triggerer_wall = time.perf_counter() - wall_start

    def resume(item):
        (held_before, task, context, _), event = item
        held_after, result = timed(task.execute_complete, context, event)
        assert result["status"] == "completed", result
        return held_before + held_after

    with ThreadPoolExecutor(max_workers=N) as pool:
        return sum(pool.map(resume, zip(submitted, events, strict=True))), triggerer_wall


def main() -> None:
    with run_emulator(turn_latency=TURN) as emulator:
        os.environ[connection_env_var("nairi_default")] = connection_json(emulator.base_url, emulator.api_key)
        agent_id = NairiHook().client.create_agent("bench", "Answer.")["id"]
        worker = worker_mode(agent_id)
        deferred, triggerer_wall = deferrable_mode(agent_id)
        conversations = emulator.admin.counts()["conversations"]
    print(f"{N} conversations per mode, {TURN} s per turn, poll every {POLL} s (emulator on loopback)")
    print(f"  worker (poke-style) wait : {worker:8.1f} worker-slot seconds ({worker / N:.2f} s per task)")
    print(f"  deferrable               : {deferred:8.1f} worker-slot seconds ({deferred / N:.3f} s per task)")
    print(f"  triggerer (one loop)     : {triggerer_wall:8.1f} s wall for all {N} waits")
    print(f"  ratio worker / deferrable: {worker / deferred:8.1f}x")
    assert conversations == 2 * N, conversations


if __name__ == "__main__":
    main()
