"""Each fault kind on the wire, exact sequences, path filters, and the admin API's request log and counts."""

from __future__ import annotations

import time
import urllib.error

import httpx
import pytest
from emulator_helpers import assert_error, client_for

from airflow_provider_nairi.emulator import AdminClient, run_emulator


@pytest.fixture(scope="module")
def emu():
    with run_emulator(slow_seconds=0.3, fault_retry_after=2) as running:
        yield running


@pytest.fixture
def client(emu):
    with client_for(emu, emu.api_key) as c:
        yield c
    emu.admin.clear_faults()


@pytest.mark.parametrize(
    ("kind", "status", "code"),
    [("429", 429, "rate_limited"), ("500", 500, "internal_error"), ("503", 503, "service_unavailable")],
)
def test_enveloped_faults(emu, client, kind, status, code):
    emu.admin.set_faults(sequence=[kind])
    response = client.get("/me")
    assert_error(response, status, code)
    if kind == "429":
        assert response.headers["Retry-After"] == "2"
    assert client.get("/me").status_code == 200  # the sequence is used up


def test_502_is_an_html_page(emu, client):
    emu.admin.set_faults(sequence=["502"])
    response = client.get("/me")
    assert response.status_code == 502
    assert response.headers["content-type"].startswith("text/html")
    assert response.text.startswith("<html>")


def test_reset_closes_the_connection_without_an_answer(emu, client):
    emu.admin.set_faults(sequence=["reset"])
    with pytest.raises((httpx.ReadError, httpx.RemoteProtocolError)):
        client.get("/me")
    assert client.get("/me").status_code == 200
    assert [e["status"] for e in emu.admin.requests_log()[-2:]] == ["reset", 200]


def test_slow_delays_a_normal_answer(emu, client):
    emu.admin.set_faults(sequence=["slow"])
    started = time.monotonic()
    assert client.get("/me").status_code == 200
    assert time.monotonic() - started >= 0.3


def test_redirect_points_at_another_host_name_and_the_log_shows_what_followed(emu, client):
    emu.admin.set_faults(sequence=["redirect"])
    emu.admin.clear_log()
    response = client.get("/agents", params={"limit": 2})
    assert response.status_code == 307
    location = response.headers["Location"]
    assert location.startswith("http://localhost:")
    assert location.endswith("/api/public/v1/agents?limit=2")
    followed = httpx.get(location)  # a careful client drops the key on another host
    assert_error(followed, 401, "unauthorized")
    log = emu.admin.requests_log()
    assert [(e["host"].split(":")[0], e["status"]) for e in log] == [("127.0.0.1", 307), ("localhost", 401)]
    assert "x-api-key" not in log[1]["headers"]


def test_rate_and_seed_are_reproducible(emu, client):
    def statuses():
        emu.admin.set_faults(rate=0.5, kinds=["500", "503"], seed=7)
        return [client.get("/me").status_code for _ in range(20)]

    first = statuses()
    assert first == statuses()
    assert {200, 500, 503} <= set(first)


def test_paths_restrict_faults(emu, client):
    emu.admin.set_faults(rate=1.0, kinds=["503"], paths=["/agents*"])
    assert client.get("/me").status_code == 200
    assert client.get("/agents").status_code == 503


def test_sequence_ok_lets_one_through(emu, client):
    emu.admin.set_faults(sequence=["500", "ok", "500"])
    assert [client.get("/me").status_code for _ in range(4)] == [500, 200, 500, 200]


def test_log_redacts_keys_and_records_idempotency(emu, client):
    emu.admin.clear_log()
    before = time.time()
    client.post("/vaults", json={"name": "v"}, headers={"Idempotency-Key": "idem-1"})
    httpx.get(emu.base_url + "/me", headers={"Authorization": f"Bearer {emu.api_key}"})
    first, second = emu.admin.requests_log()
    assert before <= first["at"] <= second["at"] <= time.time()
    assert first["method"] == "POST"
    assert first["path"] == "/vaults"
    assert first["idempotency_key"] == "idem-1"
    assert first["status"] == 201
    assert first["headers"]["x-api-key"] == "<redacted>"
    assert second["headers"]["authorization"] == "Bearer <redacted>"
    assert emu.api_key not in repr(emu.admin.requests_log())
    assert emu.api_key not in repr(emu)


def test_counts_follow_creations(emu, client):
    before = emu.admin.counts()
    client.post("/agents", json={"name": "a", "instructions": "i"})
    after = emu.admin.counts()
    assert after["agents"] == before["agents"] + 1
    assert {"conversations", "artifacts", "videos", "vaults", "env_vars", "scheduled_jobs"} <= set(after)


def test_live_settings(emu, client):
    emu.admin.update_settings(rate_limit=1)
    try:
        assert client.get("/me").headers["X-RateLimit-Limit"] == "1"
    finally:
        emu.admin.update_settings(rate_limit=100_000)


def test_admin_needs_its_token_and_rejects_bad_plans(emu):
    intruder = AdminClient(emu.admin_url, "wrong")
    with pytest.raises(urllib.error.HTTPError) as caught:
        intruder.counts()
    assert caught.value.code == 401
    with pytest.raises(urllib.error.HTTPError) as caught:
        emu.admin.set_faults(rate=1.0, kinds=["teapot"])
    assert caught.value.code == 422
    assert httpx.get(emu.base_url + "/me", headers={"X-Admin-Token": emu.admin_token}).status_code == 401


def test_startup_faults_from_settings():
    with (
        run_emulator(fault_rate=1.0, fault_kinds=["503"], fault_seed=1) as emu,
        client_for(emu, emu.api_key) as c,
    ):
        assert c.get("/me").status_code == 503
