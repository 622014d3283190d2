"""Flows of every resource family against the emulator over loopback HTTP, with its faults on.

The faults (429, 500, 502 HTML, 503, connection resets, slow answers) hit about a third of the requests; each
flow must still complete, create each object exactly once, and leave nothing half-done.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import logging
import time
import zlib

import pytest

from airflow_provider_nairi.client import ClientConfig, NairiClient
from airflow_provider_nairi.client.aio import SESSIONS, AsyncNairiClient
from airflow_provider_nairi.exceptions import (
    NairiAuthError,
    NairiConfigurationError,
    NairiConflictError,
    NairiError,
    NairiNotFoundError,
    NairiValidationError,
)

emulator = pytest.importorskip("airflow_provider_nairi.emulator")

TRANSIENT = ["429", "500", "502", "503", "reset", "slow"]
ENDED = {"completed", "failed", "cancelled"}


@pytest.fixture(scope="module")
def emu():
    with emulator.run_emulator(turn_latency=0.03, video_delay=0.05, slow_seconds=0.05) as running:
        yield running


@pytest.fixture
def config(emu):
    emu.admin.clear_faults()
    emu.admin.clear_log()
    return ClientConfig(
        api_key=emu.api_key,
        base_url=emu.base_url,
        max_retries=12,
        retry_max_wait=0.05,
        retry_total_timeout=30,
    )


@pytest.fixture
def client(config):
    with NairiClient(config) as nairi:
        yield nairi


@pytest.fixture
def faults(emu, request):
    """A third of the API requests fail transiently (seeded per test, so a failure can be replayed)."""
    emu.admin.set_faults(rate=0.33, kinds=TRANSIENT, seed=zlib.crc32(request.node.name.encode()))
    yield
    emu.admin.clear_faults()


def wait_until_ended(client, conversation_id):
    for _ in range(300):
        conversation = client.get_conversation(conversation_id)
        if conversation["status"] in ENDED:
            return conversation
        time.sleep(0.02)
    raise AssertionError("conversation did not end in 6 s")


def faulted(emu):
    return [r for r in emu.admin.requests_log() if r["status"] not in (200, 201, 202, 204, 206)]


def test_agents(client, emu, faults):
    agent = client.create_agent("flow-agent", "Be brief.", model="small")
    assert client.get_agent(agent["id"])["name"] == "flow-agent"
    assert client.update_agent(agent["id"], instructions="Be briefer.")["instructions"] == "Be briefer."
    assert agent["id"] in [a["id"] for a in client.list_agents()]
    client.delete_agent(agent["id"])
    with pytest.raises(NairiNotFoundError):
        client.get_agent(agent["id"])
    assert faulted(emu), "the faults were not on"


def test_conversations_and_messages(client, emu, faults):
    agent = client.create_agent("talker", "Answer.")
    before = emu.admin.counts()["conversations"]
    conversation = client.create_conversation(
        agent["id"], "hello there [[delay:1.5]]", title="t", metadata={"k": "v"}
    )
    assert conversation["status"] == "queued"
    assert emu.admin.counts()["conversations"] == before + 1  # retried POSTs created it once
    with pytest.raises(NairiConflictError):
        client.send_message(conversation["id"], "too early")
    assert wait_until_ended(client, conversation["id"])["status"] == "completed"
    client.send_message(conversation["id"], "and again")
    wait_until_ended(client, conversation["id"])
    messages = list(client.list_messages(conversation["id"]))
    assert [m["role"] for m in messages] == ["user", "assistant", "user", "assistant"]
    assert messages[1]["content"].startswith("Reply to turn 1: hello there")
    assert conversation["id"] in [c["id"] for c in client.list_conversations(agent_id=agent["id"])]
    slow = client.create_conversation(agent["id"], "wait [[delay:5]]")
    assert client.cancel_conversation(slow["id"])["status"] == "cancelled"


def test_artifacts_upload_download(client, emu, faults, tmp_path):
    payload = bytes(range(256)) * 2048  # 512 KiB
    source = tmp_path / "input.bin"
    source.write_bytes(payload)
    before = emu.admin.counts()["artifacts"]
    artifact = client.upload_artifact(source, name="input.bin")
    assert emu.admin.counts()["artifacts"] == before + 1
    assert (artifact["size_bytes"], artifact["sha256"]) == (len(payload), hashlib.sha256(payload).hexdigest())
    target = tmp_path / "out" / "copy.bin"
    target.parent.mkdir()
    assert client.download_artifact(artifact["id"], target, expected_sha256=artifact["sha256"]) == len(
        payload
    )
    assert target.read_bytes() == payload
    buffer = io.BytesIO()
    client.download_artifact(artifact["id"], buffer)
    assert buffer.getvalue() == payload
    assert artifact["id"] in [a["id"] for a in client.list_artifacts()]
    client.delete_artifact(artifact["id"])
    with pytest.raises(NairiNotFoundError):
        client.get_artifact(artifact["id"])


def test_vaults_and_env_vars(client, faults):
    vault = client.create_vault("flow-vault")
    client.put_vault_secret(vault["id"], "API_TOKEN", "s3cret")
    assert client.get_vault(vault["id"])["secret_names"] == ["API_TOKEN"]
    client.delete_vault_secret(vault["id"], "API_TOKEN")
    client.delete_vault(vault["id"])
    assert client.put_env_var("FLOW_MODE", "fast")["value"] == "fast"
    assert client.put_env_var("FLOW_KEY", "hidden", secret=True)["value"] is None
    names = {v["name"] for v in client.list_env_vars()}
    assert {"FLOW_MODE", "FLOW_KEY"} <= names
    client.delete_env_var("FLOW_MODE")
    client.delete_env_var("FLOW_KEY")
    with pytest.raises(NairiValidationError):
        client.put_env_var("1-bad-name", "x")


def test_scheduled_jobs(client, faults):
    agent = client.create_agent("scheduler", "Run.")
    job = client.create_scheduled_job("nightly", agent["id"], "go", "0 3 * * *", timezone="UTC", enabled=True)
    assert client.update_scheduled_job(job["id"], enabled=False)["enabled"] is False
    conversation = client.run_scheduled_job(job["id"])
    assert conversation["id"].startswith("conv_")
    assert wait_until_ended(client, conversation["id"])["status"] == "completed"
    assert job["id"] in [j["id"] for j in client.list_scheduled_jobs()]
    client.delete_scheduled_job(job["id"])


def test_videos_and_corpus(client, faults, tmp_path):
    source = tmp_path / "talk.txt"  # a transcript: the emulator makes it searchable
    source.write_text("The quarterly revenue grew.\nCosts fell in the second half.\n")
    video = client.upload_video(source, title="Quarterly talk")
    assert video["status"] == "processing"
    for _ in range(300):
        if client.get_video(video["id"])["status"] != "processing":
            break
        time.sleep(0.02)
    assert client.get_video(video["id"])["status"] == "ready"
    assert [hit["video_id"] for hit in client.search("quarterly revenue", limit=3)] == [video["id"]]
    assert client.recall("costs", video_ids=[video["id"]])[0]["video_id"] == video["id"]
    assert "answer" in client.chat("What was said?", video_ids=[video["id"]])
    assert client.reprocess_video(video["id"])["status"] == "processing"
    assert video["id"] in [v["id"] for v in client.list_videos()]
    client.delete_video(video["id"])


def test_pagination_costs_ceil_n_over_page_size_requests(client, emu):
    for i in range(20):
        client.put_env_var(f"PAGE_{i:02d}", str(i))
    emu.admin.clear_log()
    names = [v["name"] for v in client.paginate("/env-vars", page_size=7) if v["name"].startswith("PAGE_")]
    assert names == [f"PAGE_{i:02d}" for i in range(20)]
    total = len(list(client.list_env_vars()))
    gets = [r for r in emu.admin.requests_log() if r["method"] == "GET"]
    assert len(gets) == -(-total // 7) + -(-total // 200)
    for i in range(20):
        client.delete_env_var(f"PAGE_{i:02d}")


def test_a_replayed_post_returns_the_first_answer(client, emu):
    first = client.create_agent("replayed", "x", idempotency_key="airflow-replay-1")
    second = client.create_agent("replayed", "x", idempotency_key="airflow-replay-1")
    assert first["id"] == second["id"]
    with pytest.raises(NairiConflictError) as info:
        client.create_agent("other body", "x", idempotency_key="airflow-replay-1")
    assert info.value.code == "idempotency_key_reused"


def test_an_empty_rate_window_is_waited_out_instead_of_collecting_429(emu, config):
    emu.admin.update_settings(rate_limit=3, rate_window=1.0)
    fresh = emu.admin.create_key(scopes=["read"], name="rate")  # its window starts now
    config = ClientConfig(**{**config.__dict__, "api_key": fresh, "retry_max_wait": 2.0})
    try:
        with NairiClient(config) as client:
            for _ in range(7):
                client.get_me()
    finally:
        emu.admin.update_settings(rate_limit=100_000, rate_window=60.0)
    statuses = [r["status"] for r in emu.admin.requests_log()]
    assert statuses == [200] * 7
    assert client.rate_limit.limit == 3


def test_redirect_fault_is_refused_and_the_key_goes_nowhere(client, emu):
    emu.admin.set_faults(sequence=["redirect"])
    with pytest.raises(NairiError) as info:
        client.get_me()
    assert info.value.code == "redirect_refused"
    assert "localhost" in str(info.value)
    assert len(emu.admin.requests_log()) == 1


def test_auth_failures_are_typed(emu, config):
    reader = emu.admin.create_key(scopes=["read"], name="reader")
    with NairiClient(ClientConfig(**{**config.__dict__, "api_key": reader})) as client:
        assert client.get_me()["key"]["scopes"] == ["read"]
        with pytest.raises(NairiAuthError) as info:
            client.create_vault("nope")
        assert (info.value.status, info.value.code) == (403, "insufficient_scope")
        emu.admin.revoke_key(reader)
        with pytest.raises(NairiAuthError) as info:
            client.get_me()
        assert info.value.status == 401
        assert reader not in str(info.value)


def test_an_agent_key_is_refused_before_sending(emu):
    agent_key = emu.admin.create_key(prefix="ccagent_")
    emu.admin.clear_log()
    with pytest.raises(NairiConfigurationError, match="Settings → API Key"):
        ClientConfig.from_connection(host=emu.base_url, password=agent_key)
    assert emu.admin.requests_log() == []


def test_async_client_shares_one_session_and_survives_faults(client, emu, config, faults):
    agent = client.create_agent("async", "x")
    ids = [client.create_conversation(agent["id"], f"q{i}")["id"] for i in range(5)]

    async def run():
        clients = [AsyncNairiClient(config) for _ in range(20)]
        try:
            for _ in range(100):
                states = await asyncio.gather(
                    *(c.get_conversation(ids[i % 5]) for i, c in enumerate(clients))
                )
                if all(s["status"] in ENDED for s in states):
                    break
                await asyncio.sleep(0.02)
            sessions = {id(c._session) for c in clients}
            messages = await clients[0].list_messages(ids[0])
            cancelled = await clients[1].cancel_conversation(ids[1])
        finally:
            for c in clients:
                await c.close()
        return states, sessions, messages, cancelled

    states, sessions, messages, cancelled = asyncio.run(run())
    assert {s["status"] for s in states} == {"completed"}
    assert len(sessions) == 1
    assert [m["role"] for m in messages] == ["user", "assistant"]
    assert cancelled["status"] == "completed"  # already ended: unchanged
    assert not SESSIONS._sessions  # the last close() closed the loop's session


def test_key_never_in_debug_logs_over_real_http(client, emu, config, caplog, faults):
    """Every logger at DEBUG (urllib3, aiohttp, ours) through retries, errors and both clients."""

    async def async_calls():
        async with AsyncNairiClient(config) as nairi:
            await nairi.request("GET", "/me")
            with pytest.raises(NairiNotFoundError):
                await nairi.get_video("vid_missing")

    with caplog.at_level(logging.DEBUG):
        client.get_me()
        with pytest.raises(NairiNotFoundError) as info:
            client.get_agent("agt_missing")
        asyncio.run(async_calls())
    assert "GET /me -> 200" in caplog.text
    assert any(record.name.startswith("urllib3") for record in caplog.records)  # DEBUG really captured
    assert emu.api_key not in caplog.text
    assert emu.api_key not in str(info.value)
