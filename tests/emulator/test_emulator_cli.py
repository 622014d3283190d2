"""``nairi-emulator`` from a shell: seeded keys with scopes, or one printed read-write key."""

from __future__ import annotations

import re
import socket
import subprocess
import sys
import time

import httpx
import pytest

from airflow_provider_nairi.emulator.cli import main


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def serve(*args: str) -> tuple[subprocess.Popen[str], str]:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "airflow_provider_nairi.emulator.cli", "--port", str(port), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    base = f"http://127.0.0.1:{port}/api/public/v1"
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            httpx.get(base + "/me", timeout=1)
            return process, base
        except httpx.TransportError:
            time.sleep(0.05)
    process.kill()
    raise AssertionError("the CLI emulator did not start")


def test_seeded_keys_keep_their_scopes():
    process, base = serve(
        "--key", "nr_cli_reader:read", "--key", "nv_cli_writer:read,write", "--admin-token", "t"
    )
    try:
        reader = httpx.get(base + "/me", headers={"X-API-Key": "nr_cli_reader"}).json()["data"]["key"]
        assert reader["scopes"] == ["read"]
        write = httpx.post(base + "/vaults", json={"name": "v"}, headers={"X-API-Key": "nr_cli_reader"})
        assert write.status_code == 403
        ok = httpx.post(base + "/vaults", json={"name": "v"}, headers={"X-API-Key": "nv_cli_writer"})
        assert ok.status_code == 201
        counts = httpx.get(base.replace("/api/public/v1", "/_admin/counts"), headers={"X-Admin-Token": "t"})
        assert counts.json()["data"]["vaults"] == 1
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_without_keys_it_prints_a_working_one():
    process, base = serve()
    try:
        output = "".join(process.stdout.readline() for _ in range(3))  # printed before serving
        key = re.search(r"API key \(read, write\): (nr_\S+)", output)
        assert key, output
        assert "X-Admin-Token" in output
        me = httpx.get(base + "/me", headers={"X-API-Key": key[1]})
        assert me.json()["data"]["key"]["scopes"] == ["read", "write"]
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_bad_arguments_exit_2(capsys):
    with pytest.raises(SystemExit) as caught:
        main(["--key", "nr_x:admin"])
    assert caught.value.code == 2
    assert main(["--fault-rate", "2"]) == 2
    assert "fault_rate" in capsys.readouterr().err
