"""What one waiting trigger costs the triggerer's garbage collector: ``NairiConversationTrigger`` against the
bare aiohttp trigger of ``bench/triggerer.py``, in seconds and without Airflow's runner.

Why: with thousands of triggers in one runner, Python's full collections (each walks every object the
collector tracks) and their frequency decided whether events came late (``docs/deployment.md``, "Why events
came late at 5,000 waits"). A full collection comes when enough objects have outlived two younger
collections, and an object a poll leaves alive over the next sleep (a timer, the latest answer) is such an
object. This measures, for each contender in a fresh child process, against the emulator in its own process:

- **held**: GC-tracked objects and traced bytes (``tracemalloc``) per waiting trigger: N triggers started
  (``async for`` over ``trigger.run()``, as the runner does), each has polled once and sleeps; the deltas of
  ``len(gc.get_objects())`` and of the traced memory after a full collection, divided by N, and the kinds
  of the objects held (what was alive before is frozen, ``gc.freeze``, in this bench process only);
- **per poll**: the objects the polls of one interval leave alive over their sleep (after a full
  collection, those created since a freeze) and the cyclic garbage that collection freed, divided by the
  polls the emulator served; their kinds;
- **CPU per poll**: the child's CPU time over a window with the collector on, and the collections it ran
  (a ``gc.callbacks`` probe), divided by the polls.

    .venv/bin/python bench/trigger_footprint.py [--waits 300] [--poll-interval 2] [--window 6]

Light by design (about 45 s; one emulator process, a few hundred waits): for the real runner at 1,000 to
10,000 waits, use ``bench/triggerer.py`` on an idle machine. Ends with ``GOAL`` lines (ours / bare).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import subprocess
import sys
import time
import tracemalloc
from collections import Counter
from typing import Any

BENCH = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, BENCH)

from _common import emulator_process  # noqa: E402
from triggerer import BARE, OURS, BareAiohttpTrigger, start_conversations  # noqa: E402

CONN_ID = "nairi_footprint"
RESULT = "footprint result: "


def make_triggers(contender: str, shard: dict[str, Any], ids: list[str], interval: float) -> list[Any]:
    if contender == OURS:
        from airflow_provider_nairi.triggers.conversation import NairiConversationTrigger  # noqa: PLC0415

        return [
            NairiConversationTrigger(
                conn_id=CONN_ID, resource_id=i, deadline=time.time() + 3600, poll_interval=interval, turn=1
            )
            for i in ids
        ]
    return [
        BareAiohttpTrigger(f"{shard['base_url']}/conversations/{i}", shard["api_key"], interval) for i in ids
    ]


def measure(
    contender: str, shard: dict[str, Any], ids: list[str], interval: float, window: float
) -> dict[str, Any]:
    """One contender in this (fresh) process; see the module docstring."""
    import importlib  # noqa: PLC0415

    from airflow_provider_nairi.emulator import AdminClient  # noqa: PLC0415
    from airflow_provider_nairi.testing import connection_env_var, connection_json  # noqa: PLC0415

    os.environ[connection_env_var(CONN_ID)] = connection_json(shard["base_url"], shard["api_key"])
    modules = (
        ["airflow_provider_nairi.hooks.nairi", "airflow_provider_nairi.client.aio"]
        if contender == OURS
        else ["aiohttp"]
    )
    for module in modules:
        importlib.import_module(module)
    admin = AdminClient(shard["admin_url"], shard["admin_token"])
    warm, rest = ids[:10], ids[10:]

    async def polls() -> int:
        return int((await asyncio.to_thread(admin.counts))["requests_total"])

    async def consume(trigger: Any) -> None:
        async for _event in trigger.run():
            return

    async def run() -> dict[str, Any]:
        tasks = [asyncio.create_task(consume(t)) for t in make_triggers(contender, shard, warm, interval)]
        await asyncio.sleep(interval + 1)  # the session, the connection read, the budget: paid once
        gc.collect()
        gc.freeze()  # (this bench process only) so that the types of what the new triggers hold can be listed
        tracemalloc.start()
        objects, (traced, _peak) = len(gc.get_objects()), tracemalloc.get_traced_memory()
        tasks += [asyncio.create_task(consume(t)) for t in make_triggers(contender, shard, rest, interval)]
        await asyncio.sleep(interval + 1)  # every trigger has polled once and sleeps
        gc.collect()
        held_objects = (len(gc.get_objects()) - objects) / len(rest)
        held = Counter(type(o).__qualname__ for o in gc.get_objects(generation=2))
        held_kinds = [(k, round(n / len(rest), 2)) for k, n in held.most_common(14)]
        held_bytes = (tracemalloc.get_traced_memory()[0] - traced) / len(rest)
        tracemalloc.stop()
        gc.unfreeze()

        gc.collect()
        gc.freeze()  # (this bench process only) what was alive is left out of the next collections
        before = await polls()
        await asyncio.sleep(interval)  # each trigger polls once
        served = await polls() - before
        garbage = gc.collect()
        survivors = gc.get_objects(generation=2)  # created since the freeze, alive: held over a sleep
        kinds = Counter(type(o).__qualname__ for o in survivors).most_common(12)
        survived = len(survivors)
        del survivors
        gc.unfreeze()

        collections = [0, 0, 0]

        def probe(phase: str, info: dict[str, int]) -> None:
            if phase == "start":
                collections[info["generation"]] += 1

        gc.callbacks.append(probe)
        before, cpu = await polls(), time.process_time()
        await asyncio.sleep(window)
        cpu, served_2 = time.process_time() - cpu, await polls() - before
        gc.callbacks.remove(probe)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        return {
            "held_objects": held_objects,
            "held_bytes": held_bytes,
            "polls": served,
            "survivors_per_poll": survived / served,
            "garbage_per_poll": garbage / served,
            "survivor_kinds": kinds,
            "held_kinds": held_kinds,
            "cpu_per_poll_ms": cpu / served_2 * 1000,
            "collections_per_1000_polls": [c * 1000 / served_2 for c in collections],
            "expected_polls": len(ids),
        }

    return asyncio.run(run())


def in_child(*args: Any) -> dict[str, Any]:
    """:func:`measure` in a fresh interpreter (its result: the line after :data:`RESULT`)."""
    code = (
        f"import json, sys; sys.path.insert(0, {BENCH!r}); import trigger_footprint as t; "
        "print(t.RESULT + json.dumps(t.measure(*json.loads(sys.argv[1]))), flush=True)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, json.dumps(args)], check=True, capture_output=True, text=True
    ).stdout
    return dict(json.loads(out.split(RESULT)[-1].splitlines()[0]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--waits", type=int, default=300)
    parser.add_argument("--poll-interval", type=float, default=2.0)
    parser.add_argument("--window", type=float, default=6.0, help="seconds of each measured window")
    args = parser.parse_args()
    from airflow_provider_nairi.client import ClientConfig, NairiClient  # noqa: PLC0415

    with emulator_process() as emu:
        with NairiClient(ClientConfig(api_key=emu["api_key"], base_url=emu["base_url"])) as client:
            agent_id = client.create_agent("footprint", "wait")["id"]
        shard = {k: emu[k] for k in ("base_url", "api_key", "admin_url", "admin_token")} | {
            "agent_id": agent_id
        }
        results = {}
        for contender in (BARE, OURS):
            ids = start_conversations(shard, args.waits)
            results[contender] = in_child(contender, shard, ids, args.poll_interval, args.window)
    print(
        f"{args.waits} waiting triggers polling every {args.poll_interval:g} s, windows of {args.window:g} s:"
    )
    print(
        f"  {'contender':24s} {'held objects':>12s} {'held bytes':>10s} {'survivors/poll':>14s}"
        f" {'garbage/poll':>12s} {'CPU/poll':>9s} {'gen0/1/2 per 1000 polls':>24s} {'polls (N*t/P)':>14s}"
    )
    for name, r in results.items():
        gens = "/".join(f"{c:.1f}" for c in r["collections_per_1000_polls"])
        print(
            f"  {name:24s} {r['held_objects']:12.1f} {r['held_bytes']:10.0f} {r['survivors_per_poll']:14.2f}"
            f" {r['garbage_per_poll']:12.2f} {r['cpu_per_poll_ms']:6.3f} ms {gens:>24s}"
            f" {r['polls']:6d} ({r['expected_polls']:5.0f})"
        )
    ours, bare = results[OURS], results[BARE]
    for name, r in results.items():
        print(f"  {name} holds per trigger: " + ", ".join(f"{k} {n:g}" for k, n in r["held_kinds"]))
        print(f"  {name} survivors by type: " + ", ".join(f"{k} {n}" for k, n in r["survivor_kinds"]))
    for name, key, goal in (
        ("held_objects", "held_objects", 1.2),
        ("survivors_per_poll", "survivors_per_poll", 1.2),
        ("cpu_per_poll", "cpu_per_poll_ms", 1.1),
    ):
        ratio = ours[key] / bare[key] if bare[key] else float("inf")
        verdict = "met" if ratio <= goal else "missed"
        print(f"GOAL {name} {verdict} {ratio:.2f} (<= {goal}x bare aiohttp trigger)")


if __name__ == "__main__":
    main()
