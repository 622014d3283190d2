"""1,000 concurrent async waits on conversations: ``AsyncNairiClient`` against bare ``aiohttp``.

Every waiter polls a conversation that stays running until it has polled ``--polls`` times (a wait that ends
by its time-out): the same number of requests for both contenders, whatever the machine's load.

The shape of a triggerer: 1,000 coroutines in one event loop each poll ``GET /conversations/{id}`` until the
conversation ends. Ours builds one ``AsyncNairiClient`` per waiter (as each trigger does; they share the
loop's session); the baseline is bare ``aiohttp`` with one shared ``ClientSession`` and no retries or checks.
Each runs in a fresh child process that reports CPU seconds and peak RSS; the ratios client/bare (goal: at
most 1.2) come from the best of the alternated rounds. A child's CPU time drifts by up to a third between
rounds on a shared machine, so the ratio of each pair of rounds is printed too.

    .venv/bin/python bench/poll.py [--waits 1000] [--polls 5] [--interval 1] [--rounds 5]
"""

# ruff: noqa: PLC0415 - imports sit inside the contenders: each child process loads only its own.
from __future__ import annotations

import argparse
import asyncio
from typing import Any

from _common import best_of, emulator_process, measure_in_child

ENDED = ("completed", "failed", "cancelled")
BARE, OURS = "bare aiohttp (1 session)", "AsyncNairiClient per wait"


def wait_with_client(
    base_url: str, api_key: str, ids: list[str], polls: int, interval: float
) -> dict[str, Any]:
    from airflow_provider_nairi.client import ClientConfig
    from airflow_provider_nairi.client.aio import AsyncNairiClient

    config = ClientConfig(api_key=api_key, base_url=base_url)

    async def wait(conversation_id: str) -> int:
        client = AsyncNairiClient(config)
        try:
            done = 0
            while done < polls:
                done += 1
                if (await client.get_conversation(conversation_id))["status"] in ENDED:
                    break
                await asyncio.sleep(interval)
            return done
        finally:
            await client.close()

    async def run() -> list[int]:
        return await asyncio.gather(*(wait(i) for i in ids))

    return {"polls": sum(asyncio.run(run()))}


def wait_with_aiohttp(
    base_url: str, api_key: str, ids: list[str], polls: int, interval: float
) -> dict[str, Any]:
    import aiohttp

    async def wait(session: aiohttp.ClientSession, conversation_id: str) -> int:
        done = 0
        while done < polls:
            done += 1
            async with session.get(f"{base_url}/conversations/{conversation_id}") as answer:
                if (await answer.json())["data"]["status"] in ENDED:
                    break
            await asyncio.sleep(interval)
        return done

    async def run() -> list[int]:
        async with aiohttp.ClientSession(headers={"X-API-Key": api_key}) as session:
            return await asyncio.gather(*(wait(session, i) for i in ids))

    return {"polls": sum(asyncio.run(run()))}


def start_conversations(base_url: str, api_key: str, agent_id: str, count: int, turn: float) -> list[str]:
    """Start ``count`` conversations whose turn takes ``turn`` seconds."""
    from airflow_provider_nairi.client import ClientConfig
    from airflow_provider_nairi.client.aio import AsyncNairiClient

    async def run() -> list[str]:
        async with AsyncNairiClient(ClientConfig(api_key=api_key, base_url=base_url)) as client:
            body = {"agent_id": agent_id, "message": f"wait [[delay:{turn}]]"}
            answers = await asyncio.gather(
                *(client.request("POST", "/conversations", json=body) for _ in range(count))
            )
        return [answer["id"] for answer in answers]

    return asyncio.run(run())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--waits", type=int, default=1000)
    parser.add_argument("--polls", type=int, default=5)
    parser.add_argument("--interval", type=float, default=1.0)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    from airflow_provider_nairi.client import ClientConfig, NairiClient

    with emulator_process() as emu:
        base_url, api_key = emu["base_url"], emu["api_key"]
        with NairiClient(ClientConfig(api_key=api_key, base_url=base_url)) as client:
            agent_id = client.create_agent("bench", "wait")["id"]
        ids = start_conversations(base_url, api_key, agent_id, args.waits, 3600)

        cpu_by_round: dict[str, list[float]] = {BARE: [], OURS: []}

        def contender(name: str, target: str) -> dict[str, Any]:
            result = measure_in_child(target, base_url, api_key, ids, args.polls, args.interval)
            cpu_by_round[name].append(result["cpu_s"])
            return result

        best = best_of(
            args.rounds,
            {
                BARE: lambda: contender(BARE, "poll:wait_with_aiohttp"),
                OURS: lambda: contender(OURS, "poll:wait_with_client"),
            },
            key="cpu_s",
            lower=True,
        )
    print(f"{args.waits:,} concurrent waits, {args.polls} polls each, every {args.interval:g} s")
    for name, result in best.items():
        print(
            f"  {name:26s} CPU {result['cpu_s']:6.2f} s  peak RSS {result['peak_rss_mib']:6.1f} MiB"
            f"  wall {result['wall_s']:5.1f} s  polls {result['polls']:,}"
            f"  CPU per poll {1000 * result['cpu_s'] / result['polls']:.2f} ms"
        )
    ours, bare = best[OURS], best[BARE]
    paired = [o / b for o, b in zip(cpu_by_round[OURS], cpu_by_round[BARE], strict=True)]
    per_poll = (ours["cpu_s"] / ours["polls"]) / (bare["cpu_s"] / bare["polls"])
    print(
        f"  ratio client/bare CPU: {ours['cpu_s'] / bare['cpu_s']:.2f}, per poll {per_poll:.2f} (goal <= 1.2)"
    )
    print(f"  ratio client/bare CPU round by round: {min(paired):.2f} to {max(paired):.2f}")
    print(f"  ratio client/bare peak RSS: {ours['peak_rss_mib'] / bare['peak_rss_mib']:.2f} (goal <= 1.2)")


if __name__ == "__main__":
    main()
