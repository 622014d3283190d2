"""Restarts: of the triggerer (a trigger re-created from its serialized kwargs mid-wait) and of the Nairi
service itself (the emulator with ``state_dir``, stopped cleanly or its process killed with SIGKILL).

The worker killed mid-wait is proven through Airflow's own task runner by ``tests/integration/
test_example_dags.py::test_killed_worker_retry_reattaches_without_a_second_conversation`` (not repeated here).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import importlib
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from airflow.providers.common.compat.sdk import TaskDeferred

from airflow_provider_nairi.emulator import AdminClient, run_emulator
from airflow_provider_nairi.emulator.app import ADMIN_PREFIX, API_PREFIX
from airflow_provider_nairi.hooks.nairi import NairiHook
from airflow_provider_nairi.operators.content import (
    NairiDownloadArtifactsOperator,
    NairiUploadArtifactsOperator,
)
from airflow_provider_nairi.operators.conversation import NairiStartConversationOperator
from airflow_provider_nairi.testing import connection_env_var, connection_json

KEY = "nr_restart_Key0fTheRestartTest"


ADMIN_TOKEN = "restart-admin-token"


@contextlib.contextmanager
def in_process(state):
    """The emulator in this process, stopped cleanly on exit. Yields (base URL, admin client)."""
    with run_emulator(state_dir=state, keys=[(KEY, ("read", "write"))]) as emu:
        yield emu.base_url, emu.admin


@contextlib.contextmanager
def killed_process(state):
    """``nairi-emulator --state-dir`` in its own process, killed with SIGKILL on exit (no clean shutdown:
    what it acknowledged must already be on disk)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    command = [
        str(Path(sys.executable).parent / "nairi-emulator"),
        "--port",
        str(port),
        "--state-dir",
        str(state),
    ]
    command += ["--key", f"{KEY}:read,write", "--admin-token", ADMIN_TOKEN]
    origin = f"http://127.0.0.1:{port}"
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        admin = AdminClient(origin + ADMIN_PREFIX, ADMIN_TOKEN, timeout=2)
        deadline = time.monotonic() + 20
        while True:
            try:
                admin.counts()
                break
            except OSError:
                assert process.poll() is None and time.monotonic() < deadline, "the emulator did not start"
                time.sleep(0.1)
        yield origin + API_PREFIX, admin
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)


def rebuilt(trigger):
    """What the triggerer does after a restart: import the classpath, call it with the serialized kwargs."""
    classpath, kwargs = trigger.serialize()
    module, _, name = classpath.rpartition(".")
    return getattr(importlib.import_module(module), name)(**kwargs), kwargs


async def first_event(trigger, within=None):
    async def run():
        async for event in trigger.run():
            return event.payload
        raise AssertionError("the trigger ended without an event")

    return await asyncio.wait_for(run(), within)


def test_a_trigger_rebuilt_from_its_kwargs_mid_wait_finishes_the_same_conversation(
    emulator, context, monkeypatch
):
    monkeypatch.setenv(
        connection_env_var("nairi_default"), connection_json(emulator.base_url, emulator.api_key)
    )
    agent_id = NairiHook().client.create_agent("restart", "Answer.")["id"]
    operator = NairiStartConversationOperator(
        task_id="ask", agent_id=agent_id, message="[[delay:1]] survive", deferrable=True, poll_interval=0.05
    )
    before = emulator.admin.counts()["conversations"]
    with pytest.raises(TaskDeferred) as deferred:
        operator.execute(context)
    first = deferred.value.trigger
    with pytest.raises(TimeoutError):  # the triggerer dies mid-wait: its run is cancelled
        asyncio.run(first_event(first, within=0.3))

    second, kwargs = rebuilt(first)
    assert emulator.api_key not in repr(kwargs)
    event = asyncio.run(first_event(second, within=20))
    result = getattr(operator, deferred.value.method_name)(context, event)

    assert result["conversation_id"] == context["ti"].xcom["conversation_id"]
    assert result["status"] == "completed" and result["reply"].startswith("Reply to turn 1: survive")
    assert emulator.admin.counts()["conversations"] == before + 1


@pytest.mark.parametrize("service", [in_process, killed_process], ids=["stopped", "killed"])
def test_what_the_provider_was_told_was_saved_survives_a_service_restart(
    service, tmp_path, chaos, monkeypatch
):
    """Everything an operator returned (XCom) before the restart is there after it, byte for byte, and a task
    retried after the restart replays its POSTs instead of creating duplicates; whether the service stopped
    cleanly or was killed (SIGKILL) right after its last answer."""
    state = tmp_path / "state"
    notes = tmp_path / "notes.txt"
    notes.write_bytes(b"quarterly notes\n" * 500)
    ti = {task: chaos.TaskInstance(dag_id="restart", task_id=task, run_id="r1") for task in ("upload", "ask")}
    tally = chaos.Tally()

    def upload():
        return NairiUploadArtifactsOperator(task_id="upload", sources=str(notes))

    def ask(agent_id, artifacts):
        return NairiStartConversationOperator(
            task_id="ask",
            agent_id=agent_id,
            message="[[artifact:summary.txt:short summary]] summarise",
            artifact_ids=[a["id"] for a in artifacts],
            poll_interval=0.05,
            timeout=20,
            deferrable=False,
        )

    with service(state) as (base_url, admin):
        monkeypatch.setenv(connection_env_var("nairi_default"), connection_json(base_url, KEY))
        agent_id = NairiHook().client.create_agent("persistent", "Answer.")["id"]
        uploaded, _ = chaos.run_task(upload, ti["upload"], 0, tally)
        reply, _ = chaos.run_task(lambda: ask(agent_id, uploaded), ti["ask"], 0, tally)
        counts = admin.counts()

    with service(state) as (base_url, admin):  # a new server, a new port, the same state
        monkeypatch.setenv(connection_env_var("nairi_default"), connection_json(base_url, KEY))
        hook = NairiHook()
        assert hook.client.get_agent(agent_id)["name"] == "persistent"
        conversation = hook.client.get_conversation(reply["conversation_id"])
        assert conversation["status"] == "completed" and conversation["turns"] == 1
        assert [m["content"] for m in hook.client.list_messages(reply["conversation_id"])][-1] == reply[
            "reply"
        ]

        written = NairiDownloadArtifactsOperator(
            task_id="download",
            destination=str(tmp_path / "out"),
            artifact_ids=[*uploaded, *reply["artifact_ids"]],
        ).execute({"ti": chaos.TaskInstance(dag_id="restart", task_id="download", run_id="r1")})
        contents = {Path(path).name: Path(path).read_bytes() for path in written}
        assert contents == {"notes.txt": notes.read_bytes(), "summary.txt": b"short summary"}
        assert hashlib.sha256(contents["notes.txt"]).hexdigest() == uploaded[0]["sha256"]

        ti["upload"].try_number = 2  # the upload task retried after the restart: replayed, same artifact
        again, _ = chaos.run_task(upload, ti["upload"], 0, tally)
        assert [a["id"] for a in again] == [a["id"] for a in uploaded]
        assert admin.counts()["artifacts"] == counts["artifacts"]
        assert admin.counts()["conversations"] == counts["conversations"] == 1
