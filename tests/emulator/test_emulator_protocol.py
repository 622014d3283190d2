"""The contract's cross-cutting rules over real HTTP: envelope, keys, scopes, revocation, rate limits,
pagination, idempotency, and contract errors (never a 500) for bad input."""

from __future__ import annotations

import concurrent.futures
import time

import httpx
import pytest
from emulator_helpers import assert_error, client_for, wait_until_received

from airflow_provider_nairi.emulator import run_emulator


def test_success_envelope_carries_request_id_and_rate_headers(api):
    response = api.get("/me")
    body = response.json()
    assert body["success"] is True
    assert body["meta"]["request_id"] == response.headers["X-Request-Id"]
    assert body["meta"]["request_id"].startswith("req_")
    assert isinstance(body["meta"]["duration_ms"], int)
    assert all(
        name in response.headers
        for name in ("X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset")
    )
    assert body["data"]["key"]["scopes"] == ["read", "write"]
    assert body["data"]["org"]["id"]


@pytest.mark.parametrize(
    ("headers", "code"),
    [
        ({}, "unauthorized"),
        ({"X-API-Key": "nr_not_a_key"}, "unauthorized"),
        ({"Authorization": "Bearer nr_not_a_key"}, "unauthorized"),
        ({"X-API-Key": "sk-something-else"}, "unauthorized"),
        ({"X-API-Key": "ccagent_daemon_key"}, "agent_key_not_allowed"),
    ],
)
def test_bad_keys_get_401(emulator, headers, code):
    response = httpx.get(emulator.base_url + "/me", headers=headers)
    error = assert_error(response, 401, code)
    if code == "agent_key_not_allowed":
        assert "Settings" in error["message"]


def test_bearer_and_nv_keys_work(emulator):
    key = emulator.admin.create_key(scopes=("read",), prefix="nv_")
    response = httpx.get(emulator.base_url + "/me", headers={"Authorization": f"Bearer {key}"})
    assert response.status_code == 200
    assert response.json()["data"]["key"]["scopes"] == ["read"]


def test_read_key_cannot_write_but_can_search(emulator):
    with client_for(emulator, emulator.admin.create_key(scopes=("read",))) as reader:
        assert reader.get("/agents").status_code == 200
        assert reader.post("/search", json={"query": "anything"}).status_code == 200
        assert reader.post("/chat", json={"message": "anything"}).status_code == 200
        assert_error(
            reader.post("/agents", json={"name": "x", "instructions": "y"}), 403, "insufficient_scope"
        )
        assert_error(reader.put("/env-vars/NAME", json={"value": "v"}), 403, "insufficient_scope")
    with client_for(emulator, emulator.admin.create_key(scopes=("write",))) as writer:
        assert_error(writer.get("/agents"), 403, "insufficient_scope")
    with client_for(emulator, emulator.admin.create_key(scopes=())) as nothing:
        assert_error(nothing.get("/me"), 403, "forbidden")


def test_revocation_is_immediate_even_in_flight():
    with run_emulator(slow_seconds=1.0) as emu:
        key = emu.admin.create_key(scopes=("read", "write"))
        with client_for(emu, key) as client:
            assert client.get("/me").status_code == 200
            emu.admin.set_faults(sequence=["slow"])
            with concurrent.futures.ThreadPoolExecutor(1) as pool:
                in_flight = pool.submit(client.get, "/me")
                wait_until_received(emu, path="/me")
                assert emu.admin.revoke_key(key) is True
                assert_error(in_flight.result(), 401, "unauthorized")
            assert_error(client.get("/me"), 401, "unauthorized")


def test_rate_limit_per_key_with_headers_and_retry_after():
    with run_emulator(rate_limit=3, rate_window=30) as emu:
        other = emu.admin.create_key(scopes=("read",))
        with client_for(emu, emu.api_key) as client, client_for(emu, other) as second:
            remaining = [int(client.get("/me").headers["X-RateLimit-Remaining"]) for _ in range(3)]
            assert remaining == [2, 1, 0]
            limited = client.get("/me")
            assert_error(limited, 429, "rate_limited")
            assert 1 <= int(limited.headers["Retry-After"]) <= 30
            assert int(limited.headers["X-RateLimit-Reset"]) >= int(time.time())
            assert second.get("/me").status_code == 200  # limits are per key
        assert emu.admin.counts()["requests_rate_limited"] == 1


def test_pagination_edges(emulator):
    with client_for(emulator, emulator.admin.create_key(scopes=("read", "write"))) as client:
        empty = client.get("/env-vars", params={"limit": 5}).json()
        names = {e["name"] for e in empty["data"]}
        for name in names:
            client.delete(f"/env-vars/{name}")
        empty = client.get("/env-vars", params={"limit": 5}).json()
        assert empty["data"] == []
        assert empty["pagination"] == {"limit": 5, "offset": 0, "total": 0, "has_more": False}
        for i in range(10):
            client.put(f"/env-vars/PAGE_{i:02d}", json={"value": str(i)})
        first = client.get("/env-vars", params={"limit": 5}).json()
        second = client.get("/env-vars", params={"limit": 5, "offset": 5}).json()
        assert first["pagination"]["has_more"] is True
        assert second["pagination"] == {"limit": 5, "offset": 5, "total": 10, "has_more": False}
        assert [e["name"] for e in first["data"] + second["data"]] == [f"PAGE_{i:02d}" for i in range(10)]
        client.put("/env-vars/PAGE_10", json={"value": "late"})  # created mid-paging
        third = client.get("/env-vars", params={"limit": 5, "offset": 10}).json()
        assert [e["name"] for e in third["data"]] == ["PAGE_10"]
        assert third["pagination"]["has_more"] is False
        for name in [f"PAGE_{i:02d}" for i in range(11)]:
            client.delete(f"/env-vars/{name}")


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"limit": 201}, "limit"),
        ({"limit": 0}, "limit"),
        ({"offset": -1}, "offset"),
        ({"limit": "ten"}, "limit"),
    ],
)
def test_bad_pagination_is_422_naming_the_field(api, params, field):
    error = assert_error(api.get("/agents", params=params), 422, "validation_error")
    assert error["details"][0]["field"] == field


def test_limit_200_is_allowed(api):
    assert api.get("/agents", params={"limit": 200}).json()["pagination"]["limit"] == 200


@pytest.mark.parametrize(
    ("content", "status", "code"),
    [
        (b"{not json", 400, "bad_request"),
        (b"", 400, "bad_request"),
        (b"[1, 2]", 422, "validation_error"),
        (b'{"name": 5, "instructions": "x"}', 422, "validation_error"),
        (b'{"name": "a", "instructions": "x", "colour": "red"}', 422, "validation_error"),
        (b'{"name": "", "instructions": "x"}', 422, "validation_error"),
        (b'{"name": "a", "instructions": "x", "vault_ids": "vlt_1"}', 422, "validation_error"),
        (b"\xff\xfe", 400, "bad_request"),
    ],
)
def test_bad_bodies_get_contract_errors(api, content, status, code):
    response = api.post("/agents", content=content, headers={"Content-Type": "application/json"})
    assert_error(response, status, code)


def test_json_bodies_over_1_mib_are_413(api):
    big = b'{"name": "' + b"x" * (1024 * 1024) + b'", "instructions": "i"}'
    assert_error(api.post("/agents", content=big), 413, "payload_too_large")
    streamed = api.post("/agents", content=iter([big[:1000], big[1000:]]))  # chunked: no Content-Length
    assert_error(streamed, 413, "payload_too_large")


def test_unknown_field_is_named(api):
    error = assert_error(api.post("/vaults", json={"name": "v", "colour": "red"}), 422, "validation_error")
    assert error["details"] == [{"field": "colour", "message": "Extra inputs are not permitted"}]


def test_unknown_resources_and_endpoints_are_404(api):
    assert_error(api.get("/agents/agt_missing"), 404, "not_found")
    assert_error(api.get("/nothing-here"), 404, "not_found")
    assert_error(api.put("/agents"), 404, "not_found")
    assert_error(httpx.get(api.base_url.join("/elsewhere")), 404, "not_found")
    error = assert_error(
        api.post("/conversations", json={"agent_id": "agt_x", "message": "m"}), 404, "not_found"
    )
    assert error["details"][0]["field"] == "agent_id"


@pytest.mark.parametrize("name", ["1ABC", "with-dash", "x" * 129, "sp%20ace"])
def test_names_outside_the_pattern_are_422(api, name):
    assert_error(api.put(f"/env-vars/{name}", json={"value": "v"}), 422, "validation_error")


def test_idempotent_replay_creates_nothing_new(emulator, api):
    body = {"name": "idem", "instructions": "same"}
    first = api.post("/agents", json=body, headers={"Idempotency-Key": "k-agent-1"})
    before = emulator.admin.counts()["agents"]
    again = api.post("/agents", json=body, headers={"Idempotency-Key": "k-agent-1"})
    assert first.status_code == again.status_code == 201
    assert again.headers["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first.headers
    assert again.json()["data"] == first.json()["data"]
    assert emulator.admin.counts()["agents"] == before
    reused = api.post(
        "/agents", json={**body, "instructions": "other"}, headers={"Idempotency-Key": "k-agent-1"}
    )
    assert_error(reused, 409, "idempotency_key_reused")
    # same key, another path: independent
    assert (
        api.post("/vaults", json={"name": "v"}, headers={"Idempotency-Key": "k-agent-1"}).status_code == 201
    )


def test_idempotency_key_of_256_chars_is_422(api):
    response = api.post("/vaults", json={"name": "v"}, headers={"Idempotency-Key": "k" * 256})
    assert assert_error(response, 422, "validation_error")["details"][0]["field"] == "Idempotency-Key"


def test_multipart_idempotency_is_decided_by_key_and_path(emulator, api):
    first = api.post("/artifacts", files={"file": ("a.txt", b"one")}, headers={"Idempotency-Key": "k-up-1"})
    before = emulator.admin.counts()["artifacts"]
    again = api.post("/artifacts", files={"file": ("b.txt", b"two")}, headers={"Idempotency-Key": "k-up-1"})
    assert again.status_code == 201
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json()["data"]["id"] == first.json()["data"]["id"]
    assert emulator.admin.counts()["artifacts"] == before


def test_errors_are_not_replayed(api):
    missing = {"agent_id": "agt_none", "message": "m"}
    assert api.post("/conversations", json=missing, headers={"Idempotency-Key": "k-err"}).status_code == 404
    again = api.post("/conversations", json=missing, headers={"Idempotency-Key": "k-err"})
    assert again.status_code == 404
    assert "Idempotent-Replayed" not in again.headers


def test_openapi_document_lists_every_route(emulator):
    document = httpx.get(emulator.base_url + "/openapi.json").json()
    assert document["openapi"].startswith("3.")
    assert "post" in document["paths"]["/conversations"]
    assert document["paths"]["/conversations/{conversation_id}/cancel"]["post"]["x-scope"] == "write"
    assert len([op for path in document["paths"].values() for op in path]) == 40
