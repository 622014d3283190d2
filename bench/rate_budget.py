"""1,000 deferred waits on one key the emulator limits to 20 requests/s: each trigger alone, then one budget.

Both modes run ``NairiConversationTrigger`` through Airflow's own triggerer code, as ``bench/triggerer.py``
does (same harness: its ``BenchSupervisor``), against one emulator whose rate limit is ``--limit`` requests
per ``--window`` seconds per key:

- **each trigger alone** (what the provider did before the shared budget): every trigger's client keeps its
  own rate-limit state, so each learns of the limit from its own 429s and retries on its own;
- **shared budget**: every trigger of the key in the triggerer's event loop shares one
  :class:`~airflow_provider_nairi.client.budget.RateBudget`.

Each mode gets a fresh key (its own window) and N fresh conversations (started with another key, before the
limit is lowered), hands the N triggers to the runner over one poll interval, then ends the conversations at
evenly spread moments over one poll interval. Counted: failed tasks (an event other than ``success``, a
trigger failure, or no event at all), the share of requests answered 429, and the longest delay from a
conversation's end to its event. Goals, for the shared budget: no failed task, at most 1 % of requests
refused, every end detected within ``ceil(N / rate) + poll_interval`` s (rate = limit / window).

    .venv/bin/python bench/rate_budget.py [--waits 1000] [--limit 20] [--window 1] [--poll-interval 5]

About 4 minutes. Ends with ``GOAL <name> met|missed <value> (<goal>)`` lines.
"""

from __future__ import annotations

import argparse
import logging
import math
from typing import Any

from _common import emulator_process
from triggerer import OURS, load, make_plan, percentile, run_plan, verdict

from airflow_provider_nairi.client import ClientConfig, NairiClient

MODES = {"each trigger alone": "per-client", "shared budget": "shared"}
SETUP_LIMIT = 1_000_000


def run_mode(emu: dict[str, Any], agent_id: str, budget: str, args: argparse.Namespace) -> dict[str, Any]:
    """One mode: a fresh key, N conversations, the triggers run under the limit; the emulator's counts."""
    admin = emu["admin"]
    admin.update_settings(rate_limit=SETUP_LIMIT, rate_window=60)
    shard = {
        "base_url": emu["base_url"],
        "api_key": admin.create_key(scopes=("read", "write")),  # a fresh window for this mode
        "setup_key": emu["api_key"],
        "admin_url": emu["admin_url"],
        "admin_token": emu["admin_token"],
        "pid": emu["pid"],
        "agent_id": agent_id,
    }
    rate = args.limit / args.window
    detection_goal = math.ceil(args.waits / rate) + args.poll_interval
    plan = make_plan(
        OURS,
        [shard],
        args.waits,
        args.poll_interval,
        budget=budget,
        window=2.0,
        warm_up=1,
        finish_timeout=2 * detection_goal + 30,
    )
    admin.update_settings(rate_limit=args.limit, rate_window=args.window)
    before = admin.counts()
    result = run_plan(plan)
    after = admin.counts()
    admin.update_settings(rate_limit=SETUP_LIMIT, rate_window=60)
    result["requests"] = after["requests_total"] - before["requests_total"]
    result["refused"] = after["requests_rate_limited"] - before["requests_rate_limited"]
    result["detection_goal"] = detection_goal
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--waits", type=int, default=1000)
    parser.add_argument("--limit", type=int, default=20, help="requests per window per key (default 20)")
    parser.add_argument("--window", type=float, default=1.0, help="seconds (default 1)")
    parser.add_argument("--poll-interval", type=float, default=5.0)
    args = parser.parse_args()
    logging.getLogger("airflow_provider_nairi.client").setLevel(logging.WARNING)  # the set-up's requests
    results = {}
    with emulator_process() as emu:
        with NairiClient(ClientConfig(api_key=emu["api_key"], base_url=emu["base_url"])) as client:
            agent_id = client.create_agent("bench", "wait")["id"]
        loads = [load()]
        for name, budget in MODES.items():
            results[name] = run_mode(emu, agent_id, budget, args)
            loads.append(load())
    print(
        f"{args.waits:,} waits on one key limited to {args.limit} requests per {args.window:g} s, "
        f"polling every {args.poll_interval:g} s; load average {loads[0]} at start, {loads[-1]} at end"
    )
    print(f"  {'mode':20s} {'requests':>9s} {'429s':>14s} {'failed tasks':>12s} {'p50':>7s} {'longest':>8s}")
    for name, result in results.items():
        delays = result["delays"]
        print(
            f"  {name:20s} {result['requests']:9,d} {result['refused']:6,d} ({share(result):5.1%})"
            f" {result['errors']:12,d} {percentile(delays, 0.5):6.1f}s {max(delays, default=math.inf):7.1f}s"
        )
    shared = results["shared budget"]
    longest, goal = max(shared["delays"], default=math.inf), shared["detection_goal"]
    print(f"GOAL failed_tasks {verdict(shared['errors'] == 0)} {shared['errors']} (0)")
    print(f"GOAL rate_limited_share {verdict(share(shared) <= 0.01)} {share(shared):.2%} (<= 1% of requests)")
    print(
        f"GOAL detection_delay {verdict(longest <= goal)} {longest:.1f} "
        f"(<= ceil(N / rate) + poll_interval = {goal:g} s)"
    )


def share(result: dict[str, Any]) -> float:
    return float(result["refused"] / max(1, result["requests"]))


if __name__ == "__main__":
    main()
