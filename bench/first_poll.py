"""Where the first poll of a trigger spends its time, in a fresh interpreter (what a new triggerer pays).

Phases, each timed in a child process that starts cold (no module imported yet):

1. ``import airflow`` (the triggerer has done it before any trigger runs: reported, not ours);
2. the trigger module (what the triggerer imports to build the trigger);
3. the hook module and the async client with aiohttp (imported by the trigger's ``run``);
4. the first connection lookup (``aget_connection``; here from an ``AIRFLOW_CONN_`` variable: a real
   triggerer asks its supervisor, which asks the API server and the secrets backends);
5. the first request (session set-up: DNS, TCP, TLS when https) and a second one for comparison.

    .venv/bin/python bench/first_poll.py [--rounds 3]
"""

# ruff: noqa: PLC0415 - imports are what is measured.
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile

from _common import emulator_process

CHILD = r"""
import asyncio, json, os, sys, time
t = {}
start = time.perf_counter()
import airflow
t["import airflow"] = time.perf_counter() - start
mark = time.perf_counter()
from airflow_provider_nairi.triggers.conversation import NairiConversationTrigger
t["import the trigger module"] = time.perf_counter() - mark
mark = time.perf_counter()
from airflow_provider_nairi.hooks.nairi import NairiAsyncHook
from airflow_provider_nairi.client.aio import AsyncNairiClient
t["import the hook, the async client and aiohttp"] = time.perf_counter() - mark

async def main():
    hook = NairiAsyncHook("nairi_default")
    mark = time.perf_counter()
    connection = await hook.aget_connection("nairi_default")
    t["first connection lookup"] = time.perf_counter() - mark
    mark = time.perf_counter()
    client = await hook.get_async_client()
    t["client from the connection"] = time.perf_counter() - mark
    mark = time.perf_counter()
    await client.get_conversation(sys.argv[1])
    t["first request (session set-up)"] = time.perf_counter() - mark
    mark = time.perf_counter()
    await client.get_conversation(sys.argv[1])
    t["second request"] = time.perf_counter() - mark
    await hook.close()

asyncio.run(main())
print(json.dumps(t))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with emulator_process(turn_latency=3600) as emu:
        from airflow_provider_nairi.client import ClientConfig, NairiClient

        client = NairiClient(ClientConfig(api_key=emu["api_key"], base_url=emu["base_url"]))
        agent = client.create_agent("bench", "x")
        conversation_id = client.create_conversation(agent["id"], "hello")["id"]
        env = {
            **os.environ,
            "AIRFLOW_HOME": tempfile.mkdtemp(prefix="nairi-first-poll-"),
            "AIRFLOW_CONN_NAIRI_DEFAULT": json.dumps(
                {"conn_type": "nairi", "host": emu["base_url"], "password": emu["api_key"]}
            ),
        }
        rounds = []
        for _ in range(args.rounds):
            out = subprocess.run(
                [sys.executable, "-c", CHILD, conversation_id],
                env=env,
                capture_output=True,
                text=True,
                check=True,
                timeout=120,
            ).stdout
            rounds.append(json.loads(out.strip().splitlines()[-1]))
    for phase in rounds[0]:
        values = ", ".join(f"{r[phase] * 1000:.0f}" for r in rounds)
        print(f"{phase:50s} {values} ms")


if __name__ == "__main__":
    main()
