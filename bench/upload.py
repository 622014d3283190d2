"""Uploading 1 GiB with ``NairiClient.upload_artifact`` against ``httpx`` ``files=``, on the same emulator,
and through ``NairiUploadArtifactsOperator`` against ``NairiHook.upload_artifact`` (both with Airflow loaded;
goal: the operator at least 0.9 of the hook's throughput, RSS growth during the upload at most 64 MiB).

Each upload runs in a fresh child process, which reports its peak RSS (goal for the client: at most 64 MiB)
and its throughput in MiB/s; best of the alternated rounds; the ratio client/httpx (goal: at least 0.9).
The emulator runs in its own process and streams the file to disk while hashing it.

    .venv/bin/python bench/upload.py [--mib 1024] [--rounds 2]
"""

# ruff: noqa: PLC0415 - imports sit inside the contenders: each child process loads only its own.
from __future__ import annotations

import argparse
import os
import tempfile
import time
from typing import Any

from _common import best_of, emulator_process, measure_in_child


def upload_with_client(base_url: str, api_key: str, path: str) -> dict[str, Any]:
    from airflow_provider_nairi.client import ClientConfig, NairiClient

    with NairiClient(ClientConfig(api_key=api_key, base_url=base_url, read_timeout=600)) as client:
        start = time.perf_counter()
        artifact = client.upload_artifact(path)
        elapsed = time.perf_counter() - start
        client.delete_artifact(artifact["id"])
    return {"seconds": elapsed, "size": artifact["size_bytes"]}


def upload_with_httpx(base_url: str, api_key: str, path: str) -> dict[str, Any]:
    import httpx

    with httpx.Client(timeout=600) as client, open(path, "rb") as file:
        start = time.perf_counter()
        answer = client.post(f"{base_url}/artifacts", files={"file": file}, headers={"X-API-Key": api_key})
        elapsed = time.perf_counter() - start
        answer.raise_for_status()
        artifact = answer.json()["data"]
        client.delete(f"{base_url}/artifacts/{artifact['id']}", headers={"X-API-Key": api_key})
    return {"seconds": elapsed, "size": artifact["size_bytes"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mib", type=int, default=1024)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, emulator_process() as emu:
        path = os.path.join(tmp, "payload.bin")
        block = os.urandom(1 << 20)
        with open(path, "wb") as file:
            for _ in range(args.mib):
                file.write(block)
        contenders = {
            "httpx files=": "upload:upload_with_httpx",
            "NairiClient.upload_artifact": "upload:upload_with_client",
            "NairiHook.upload_artifact": "upload:upload_with_hook",
            "NairiUploadArtifactsOperator": "upload:upload_with_operator",
        }
        best = best_of(
            args.rounds,
            {
                name: (lambda target=target: measure_in_child(target, emu["base_url"], emu["api_key"], path))
                for name, target in contenders.items()
            },
            key="seconds",
            lower=True,
        )
    print(f"upload of {args.mib:,} MiB (multipart, one child process per upload, best of {args.rounds})")
    for name, result in best.items():
        assert result["size"] == args.mib << 20, result
        rate = args.mib / result["seconds"]
        print(
            f"  {name:28s} {rate:8.0f} MiB/s  peak RSS {result['peak_rss_mib']:6.1f} MiB"
            f"  CPU {result['cpu_s']:5.1f} s"
        )
    ours, theirs = best["NairiClient.upload_artifact"], best["httpx files="]
    print(f"  ratio client/httpx MiB/s: {theirs['seconds'] / ours['seconds']:.2f} (goal >= 0.9)")
    print(f"  client peak RSS <= 64 MiB: {ours['peak_rss_mib'] <= 64}")
    hook, operator = best["NairiHook.upload_artifact"], best["NairiUploadArtifactsOperator"]
    print(f"  ratio operator/hook MiB/s: {hook['seconds'] / operator['seconds']:.2f} (goal >= 0.9)")
    print(
        f"  RSS growth during the upload: hook {hook['rss_growth_mib']:.1f} MiB, operator "
        f"{operator['rss_growth_mib']:.1f} MiB (goal <= 64; their peak RSS includes Airflow itself)"
    )


def _airflow_connection(base_url: str, api_key: str) -> str:
    """Point the Airflow connection ``nairi_bench`` at the emulator (environment variable); return its id."""
    import json

    extra = json.dumps({"read_timeout": 600})
    os.environ["AIRFLOW_CONN_NAIRI_BENCH"] = json.dumps(
        {"conn_type": "nairi", "host": base_url, "password": api_key, "extra": extra}
    )
    return "nairi_bench"


def _rss_kib(field: str) -> int:
    with open("/proc/self/status") as status:
        return int(next(line.split()[1] for line in status if line.startswith(field + ":")))


def _timed(upload: Any) -> dict[str, Any]:
    """Run ``upload()`` (returns the artifact); seconds, size, id, and ``rss_growth_mib``: the peak RSS during
    the upload over the RSS before it (peak reset through ``/proc/self/clear_refs``), since importing Airflow
    alone takes about 118 MiB."""
    with open("/proc/self/clear_refs", "w") as refs:
        refs.write("5")
    before = _rss_kib("VmRSS")
    start = time.perf_counter()
    artifact = upload()
    elapsed = time.perf_counter() - start
    growth = (_rss_kib("VmHWM") - before) / 1024
    return {
        "seconds": elapsed,
        "size": artifact["size_bytes"],
        "id": artifact["id"],
        "rss_growth_mib": growth,
    }


def upload_with_hook(base_url: str, api_key: str, path: str) -> dict[str, Any]:
    """``NairiHook.upload_artifact`` in a process with Airflow loaded: the baseline of the operator's leg."""
    from airflow_provider_nairi.hooks.nairi import NairiHook

    hook = NairiHook(_airflow_connection(base_url, api_key))
    hook.client.get_me()  # the connection and session exist before measuring
    result = _timed(lambda: hook.client.upload_artifact(path, idempotency_key=f"bench-{time.time_ns()}"))
    hook.client.delete_artifact(result.pop("id"))
    return result


def upload_with_operator(base_url: str, api_key: str, path: str) -> dict[str, Any]:
    """The content operator's leg (issue 5): ``NairiUploadArtifactsOperator.execute``."""
    from types import SimpleNamespace

    from airflow_provider_nairi.operators.content import NairiUploadArtifactsOperator

    operator = NairiUploadArtifactsOperator(
        task_id="upload", sources=path, conn_id=_airflow_connection(base_url, api_key)
    )
    operator.api.get_me()
    ti = SimpleNamespace(dag_id="bench", task_id="upload", run_id=f"bench-{time.time_ns()}", map_index=-1)
    result = _timed(lambda: operator.execute({"ti": ti})[0])
    operator.api.delete_artifact(result.pop("id"))
    return result


if __name__ == "__main__":
    main()
