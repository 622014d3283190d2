"""Uploading 1 GiB through ``NairiUploadArtifactsOperator`` versus the hook's own ``upload_artifact``.

Measures, against the emulator in its own process on 127.0.0.1:

- peak RSS growth of the uploading process during the upload (``VmHWM`` reset through
  ``/proc/self/clear_refs`` just before it, so imports and start-up do not count); goal: at most 64 MiB;
- throughput (MiB/s) of each leg, and the operator's throughput over the hook's; goal: at least 0.9.

Each upload runs in a fresh child process; legs alternate (and which goes first), ``--rounds`` times
each, and medians are reported.

    .venv/bin/python bench/upload_operator.py [--mib 1024] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from types import SimpleNamespace

KEY = "nr_bench_upload_0123456789"
CONN_ID = "nairi_bench"
LEGS = ("hook", "operator")


def rss_kib(field: str) -> int:
    """``VmRSS`` / ``VmHWM`` of this process, in KiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def run_leg(leg: str, path: str, run_id: str) -> dict[str, float]:
    """One upload in this (child) process; returns seconds and RSS figures."""
    # Imported here: only the child processes that upload load Airflow.
    from airflow_provider_nairi.hooks.nairi import NairiHook  # noqa: PLC0415
    from airflow_provider_nairi.operators.content import NairiUploadArtifactsOperator  # noqa: PLC0415

    hook = NairiHook(CONN_ID)
    hook.get_me()  # the session and connection are built before measuring
    ti = SimpleNamespace(dag_id="bench", task_id="upload", run_id=run_id, map_index=-1)
    operator = NairiUploadArtifactsOperator(task_id="upload", sources=path, conn_id=CONN_ID)
    operator.__dict__["hook"] = hook
    Path("/proc/self/clear_refs").write_text("5")  # reset the peak RSS (VmHWM) to the current RSS
    before = rss_kib("VmRSS")
    started = time.perf_counter()
    if leg == "hook":
        artifact = hook.upload_artifact(Path(path), name="big.bin", idempotency_key=f"bench-{run_id}")
    else:
        (artifact,) = operator.execute({"ti": ti})
    seconds = time.perf_counter() - started
    peak = rss_kib("VmHWM")
    hook.delete_artifact(artifact["id"])
    return {"seconds": seconds, "rss_before_mib": before / 1024, "peak_growth_mib": (peak - before) / 1024}


def wait_ready(base_url: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            request = urllib.request.Request(f"{base_url}/me", headers={"X-API-Key": KEY})
            with urllib.request.urlopen(request, timeout=2):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("the emulator did not start")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mib", type=int, default=1024)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--leg", choices=LEGS, help=argparse.SUPPRESS)
    parser.add_argument("--path", help=argparse.SUPPRESS)
    parser.add_argument("--run-id", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.leg:
        print(json.dumps(run_leg(args.leg, args.path, args.run_id)))
        return

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    base_url = f"http://127.0.0.1:{port}/api/public/v1"
    with tempfile.TemporaryDirectory(prefix="nairi-bench-") as tmp:
        path = Path(tmp) / "big.bin"
        block = os.urandom(1 << 20)
        with path.open("wb") as out:
            for _ in range(args.mib):
                out.write(block)
        emulator = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "airflow_provider_nairi.emulator.cli",
                "--port",
                str(port),
                "--key",
                f"{KEY}:read,write",
                "--admin-token",
                "bench",
                "--state-dir",
                str(Path(tmp) / "state"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        env = {
            **os.environ,
            f"AIRFLOW_CONN_{CONN_ID.upper()}": json.dumps(
                {"conn_type": "nairi", "host": base_url, "password": KEY}
            ),
            "AIRFLOW__LOGGING__LOGGING_LEVEL": "WARNING",
        }
        results: dict[str, list[dict[str, float]]] = {leg: [] for leg in LEGS}
        try:
            wait_ready(base_url)
            for round_number in range(args.rounds):
                for leg in LEGS if round_number % 2 == 0 else reversed(LEGS):  # alternate who goes first
                    child = subprocess.run(
                        [
                            sys.executable,
                            __file__,
                            "--leg",
                            leg,
                            "--path",
                            str(path),
                            "--run-id",
                            f"{leg}-{round_number}-{time.time_ns()}",
                        ],
                        env=env,
                        capture_output=True,
                        text=True,
                        timeout=600,
                        check=True,
                    )
                    results[leg].append(json.loads(child.stdout.strip().splitlines()[-1]))
        finally:
            emulator.terminate()
            emulator.wait(10)
    throughput = {leg: statistics.median(args.mib / r["seconds"] for r in results[leg]) for leg in LEGS}
    for leg in LEGS:
        peaks = [r["peak_growth_mib"] for r in results[leg]]
        print(
            f"{leg:9s} {throughput[leg]:7.1f} MiB/s (median of {args.rounds}), peak RSS growth "
            f"{max(peaks):5.1f} MiB (max), RSS before {results[leg][0]['rss_before_mib']:.0f} MiB"
        )
    print(f"operator / hook throughput: {throughput['operator'] / throughput['hook']:.3f} (goal >= 0.9)")


if __name__ == "__main__":
    main()
