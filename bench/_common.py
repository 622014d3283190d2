"""What the client benchmarks share: an emulator in its own process, and measuring a child process.

The emulator runs in a child process (so it does not share the GIL with the client being measured); each
contender runs in its own fresh child process too, so that its peak RSS and CPU time are its own.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from typing import Any

SERVE = r"""
import json, sys
from airflow_provider_nairi.emulator import run_emulator
settings = json.loads(sys.argv[1])
seed_agents = settings.pop("seed_agents", 0)
with run_emulator(**settings) as emu:
    for i in range(seed_agents):
        emu.core.new_record("agents", "agt_", {"name": f"agent-{i}", "instructions": "x", "model": None,
                                               "vault_ids": []})
    print(json.dumps({"base_url": emu.base_url, "api_key": emu.api_key, "admin_url": emu.admin.admin_url,
                      "admin_token": emu.admin_token}), flush=True)
    sys.stdin.read()
"""


@contextlib.contextmanager
def emulator_process(**settings: Any) -> Iterator[dict[str, Any]]:
    """Run the emulator in a child process; yields ``base_url``, ``api_key``, an ``admin`` client (and its
    ``admin_url``, ``admin_token``) and the process's ``pid``.

    ``seed_agents=N`` stores N agents directly (without N requests) before the server answers.
    """
    from airflow_provider_nairi.emulator import AdminClient  # noqa: PLC0415 (only the parent needs it)

    child = subprocess.Popen(
        [sys.executable, "-c", SERVE, json.dumps(settings)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        info = json.loads(child.stdout.readline())
        info["admin"] = AdminClient(info["admin_url"], info["admin_token"])
        info["pid"] = child.pid
        yield info
    finally:
        assert child.stdin is not None
        child.stdin.close()
        try:
            child.wait(timeout=20)
        except subprocess.TimeoutExpired:
            child.kill()


def measure_in_child(target: str, *args: Any) -> dict[str, Any]:
    """Run ``<module>:<function>(*args)`` (a module of bench/) in a fresh interpreter; return its result dict
    plus its ``cpu_s`` (user + system), ``peak_rss_mib`` and ``wall_s``."""
    module, function = target.split(":")
    code = (
        "import json, resource, sys, time\n"
        f"sys.path.insert(0, {os.path.dirname(os.path.abspath(__file__))!r})\n"
        f"from {module} import {function} as run\n"
        "args = json.loads(sys.argv[1])\n"
        "start = time.perf_counter(); before = resource.getrusage(resource.RUSAGE_SELF)\n"
        "result = run(*args)\n"
        "after = resource.getrusage(resource.RUSAGE_SELF)\n"
        "result['wall_s'] = time.perf_counter() - start\n"
        "result['cpu_s'] = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)\n"
        "result['peak_rss_mib'] = after.ru_maxrss / 1024\n"
        "print(json.dumps(result))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, json.dumps(list(args))], check=True, capture_output=True, text=True
    )
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def best_of(
    rounds: int, runs: dict[str, Callable[[], dict[str, Any]]], key: str, lower: bool
) -> dict[str, Any]:
    """Alternate the contenders ``rounds`` times; keep each one's best result by ``key``."""
    best: dict[str, dict[str, Any]] = {}
    for _ in range(rounds):
        for name, run in runs.items():
            result = run()
            if name not in best or (result[key] < best[name][key]) == lower:
                best[name] = result
    return best
