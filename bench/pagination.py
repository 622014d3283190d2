"""Reading 100,000 items through ``NairiClient.list_agents`` against a bare ``requests.Session`` loop.

Both read every agent from the same emulator (its own process, seeded with N agents), page by page with
``limit=200``. Prints the requests each made (the client must make exactly ceil(N/200)), items/s of each, best
of three alternated rounds, and the ratio (goal: at least 0.9).

    .venv/bin/python bench/pagination.py [--items 100000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import math
import time

import requests
from _common import emulator_process

from airflow_provider_nairi.client import ClientConfig, NairiClient


def bare_loop(base_url: str, api_key: str) -> int:
    """What a careful user writes by hand: one session, offset += len(page) until has_more is false."""
    session = requests.Session()
    session.headers["X-API-Key"] = api_key
    items: list[dict] = []
    offset = 0
    while True:
        body = session.get(f"{base_url}/agents", params={"limit": 200, "offset": offset}, timeout=60).json()
        items.extend(body["data"])
        offset += len(body["data"])
        if not body["pagination"]["has_more"]:
            return len(items)


def with_client(base_url: str, api_key: str) -> int:
    with NairiClient(ClientConfig(api_key=api_key, base_url=base_url)) as client:
        return sum(1 for _ in client.list_agents())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with emulator_process(seed_agents=args.items) as emu:
        best: dict[str, float] = {}
        requests_made: dict[str, int] = {}
        for _ in range(args.rounds):
            for name, run in (("bare requests.Session", bare_loop), ("NairiClient.list_agents", with_client)):
                emu["admin"].clear_log()
                start = time.perf_counter()
                count = run(emu["base_url"], emu["api_key"])
                elapsed = time.perf_counter() - start
                assert count == args.items, (name, count)
                requests_made[name] = len(emu["admin"].requests_log())
                best[name] = max(best.get(name, 0.0), count / elapsed)
    expected = math.ceil(args.items / 200)
    print(f"pagination of {args.items:,} items (page size 200; ceil(N/200) = {expected})")
    for name, rate in best.items():
        print(f"  {name:26s} {requests_made[name]:6d} requests  {rate:10,.0f} items/s")
    ratio = best["NairiClient.list_agents"] / best["bare requests.Session"]
    print(f"  ratio client/bare: {ratio:.2f} (goal >= 0.9)")
    print(f"  client requests == ceil(N/200): {requests_made['NairiClient.list_agents'] == expected}")


if __name__ == "__main__":
    main()
