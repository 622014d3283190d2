"""The sync client against requests-mock: request shapes, retries, redirects, secrets, pages, transfers."""

from __future__ import annotations

import hashlib
import io
import json
import logging
import math
from email.utils import formatdate
from urllib.parse import urlsplit

import pytest
import requests
import requests_mock
from client_helpers import BASE, KEY, envelope, error_body, page
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from urllib3.exceptions import ProtocolError

from airflow_provider_nairi.client import ClientConfig, NairiClient
from airflow_provider_nairi.exceptions import (
    NairiAuthError,
    NairiChecksumError,
    NairiConfigurationError,
    NairiConnectionError,
    NairiError,
    NairiRateLimitError,
    NairiServerError,
)

ME = {"org": {"id": "org_1", "name": "Acme"}, "key": {"name": "ci", "hint": "nr_…e", "scopes": ["read"]}}


def test_get_sends_key_user_agent_and_no_idempotency_key(client, api):
    api.get(f"{BASE}/me", json=envelope(ME))
    assert client.get_me() == ME
    sent = api.last_request.headers
    assert sent["X-API-Key"] == KEY
    assert "Authorization" not in sent
    assert sent["User-Agent"].startswith("airflow-provider-nairi/0.1.0 ")
    assert sent["Accept"] == "application/json"
    assert "Idempotency-Key" not in sent


def test_bearer_mode_sends_authorization_only(api, sleeps):
    client = NairiClient(ClientConfig(api_key=KEY, base_url=BASE, auth_header="bearer"), sleep=sleeps)
    api.get(f"{BASE}/me", json=envelope(ME))
    client.get_me()
    assert api.last_request.headers["Authorization"] == f"Bearer {KEY}"
    assert "X-API-Key" not in api.last_request.headers


@pytest.mark.parametrize("auth_header", ["x-api-key", "bearer"])
def test_a_netrc_entry_for_the_api_host_changes_no_header(api, sleeps, tmp_path, monkeypatch, auth_header):
    """requests (trust_env) would put ``~/.netrc`` credentials for the host into ``Authorization``, over the
    bearer key or beside the X-API-Key; the client's own headers must be all that is sent."""
    netrc = tmp_path / "netrc"
    netrc.write_text(f"machine {urlsplit(BASE).hostname} login joe password netrc-secret\n")
    netrc.chmod(0o600)
    monkeypatch.setenv("NETRC", str(netrc))
    client = NairiClient(ClientConfig(api_key=KEY, base_url=BASE, auth_header=auth_header), sleep=sleeps)
    api.get(f"{BASE}/me", json=envelope(ME))
    client.get_me()
    sent = api.last_request.headers
    assert sent.get("Authorization") == (f"Bearer {KEY}" if auth_header == "bearer" else None)


def test_create_conversation_body_and_caller_idempotency_key(client, api):
    api.post(f"{BASE}/conversations", status_code=201, json=envelope({"id": "conv_1", "status": "queued"}))
    result = client.create_conversation("agt_1", "hi", metadata={"run": "r1"}, idempotency_key="airflow-k1")
    assert result == {"id": "conv_1", "status": "queued"}
    assert api.last_request.json() == {"agent_id": "agt_1", "message": "hi", "metadata": {"run": "r1"}}
    assert api.last_request.headers["Idempotency-Key"] == "airflow-k1"


def test_every_retry_of_a_post_reuses_one_generated_key(client, api, sleeps):
    api.post(
        f"{BASE}/agents",
        [
            {"status_code": 503, "json": error_body(503, "service_unavailable")},
            {"exc": requests.ConnectionError("reset by peer")},
            {"status_code": 201, "json": envelope({"id": "agt_1"})},
        ],
    )
    assert client.create_agent("bot", "be nice") == {"id": "agt_1"}
    keys = {r.headers["Idempotency-Key"] for r in api.request_history}
    assert len(api.request_history) == 3
    assert len(keys) == 1
    assert len(sleeps) == 2
    assert all(0 <= s <= 30 for s in sleeps)


def test_two_logical_calls_get_two_keys(client, api):
    api.post(f"{BASE}/vaults", status_code=201, json=envelope({"id": "vlt_1"}))
    client.create_vault("a")
    client.create_vault("a")
    first, second = (r.headers["Idempotency-Key"] for r in api.request_history)
    assert first != second


def test_retry_after_seconds_is_waited_exactly(client, api, sleeps):
    api.get(
        f"{BASE}/agents/agt_1",
        [
            {"status_code": 429, "json": error_body(429, "rate_limited"), "headers": {"Retry-After": "7"}},
            {"json": envelope({"id": "agt_1"})},
        ],
    )
    assert client.get_agent("agt_1") == {"id": "agt_1"}
    assert sleeps == [7.0]


def test_retry_after_http_date_is_waited_until_then(client, api, sleeps, monkeypatch):
    now = 1_800_000_000.0
    monkeypatch.setattr("airflow_provider_nairi.client.protocol.time.time", lambda: now)
    date = formatdate(now + 12, usegmt=True)
    api.get(
        f"{BASE}/videos/vid_1",
        [
            {"status_code": 429, "json": error_body(429, "rate_limited"), "headers": {"Retry-After": date}},
            {"json": envelope({"id": "vid_1"})},
        ],
    )
    client.get_video("vid_1")
    assert sleeps == [pytest.approx(12.0)]


def test_retry_after_over_the_limit_raises_at_once(client, api, sleeps):
    api.get(
        f"{BASE}/me", status_code=429, json=error_body(429, "rate_limited"), headers={"Retry-After": "3600"}
    )
    with pytest.raises(NairiRateLimitError) as info:
        client.get_me()
    assert info.value.retry_after == 3600.0
    assert len(api.request_history) == 1
    assert sleeps == []


def test_retries_are_bounded_in_tries(client, api, sleeps):
    api.get(f"{BASE}/me", status_code=500, json=error_body(500, "internal_error"))
    with pytest.raises(NairiServerError):
        client.get_me()
    assert len(api.request_history) == 4  # max_retries=3 → 4 tries
    assert len(sleeps) == 3


def test_retries_are_bounded_in_time(api, sleeps):
    config = ClientConfig(
        api_key=KEY, base_url=BASE, max_retries=100, retry_max_wait=1, retry_total_timeout=0
    )
    api.get(f"{BASE}/me", status_code=503, json=error_body(503, "service_unavailable"))
    with pytest.raises(NairiServerError):
        NairiClient(config, sleep=sleeps).get_me()
    assert len(api.request_history) == 1


@pytest.mark.parametrize("status", [400, 401, 403, 404, 409, 413, 422])
def test_client_errors_are_never_retried(client, api, sleeps, status):
    api.post(f"{BASE}/conversations", status_code=status, json=error_body(status, "x"))
    with pytest.raises(NairiError):
        client.create_conversation("agt_1", "hi")
    assert len(api.request_history) == 1
    assert sleeps == []


def test_tls_errors_are_not_retried(client, api, sleeps):
    api.get(f"{BASE}/me", exc=requests.exceptions.SSLError("certificate verify failed"))
    with pytest.raises(NairiConnectionError) as info:
        client.get_me()
    assert info.value.code == "tls_error"
    assert len(api.request_history) == 1


def test_timeouts_are_retried_then_raised_typed(client, api):
    api.get(f"{BASE}/me", exc=requests.exceptions.ReadTimeout("read timed out"))
    with pytest.raises(NairiConnectionError) as info:
        client.get_me()
    assert info.value.retryable
    assert len(api.request_history) == 4


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_redirect_to_another_host_is_refused_and_never_followed(client, api, status):
    api.get(f"{BASE}/me", status_code=status, headers={"Location": "https://evil.example:8443/steal"})
    trap = api.get("https://evil.example:8443/steal", json=envelope(ME))
    with pytest.raises(NairiError) as info:
        client.get_me()
    assert info.value.code == "redirect_refused"
    assert "evil.example:8443" in str(info.value)
    assert "api.nairi.test" in str(info.value)
    assert not trap.called


def test_same_host_redirect_is_refused_with_a_hint(client, api):
    api.get(f"{BASE}/me", status_code=301, headers={"Location": "/api/public/v2/me"})
    with pytest.raises(NairiError, match="base URL is probably wrong"):
        client.get_me()


def test_key_never_in_logs_or_errors(client, api, caplog):
    api.get(
        f"{BASE}/me",
        [{"status_code": 503, "json": error_body(503, "x", f"bad {KEY}")}, {"json": envelope(ME)}],
    )
    api.get(
        f"{BASE}/agents/agt_x", status_code=401, json=error_body(401, "unauthorized", f"key {KEY} revoked")
    )
    with caplog.at_level(logging.DEBUG):
        client.get_me()
        with pytest.raises(NairiAuthError) as info:
            client.get_agent("agt_x")
    assert "GET /me -> 503" in caplog.text
    assert "GET /me -> 200" in caplog.text
    assert KEY not in caplog.text
    assert KEY not in str(info.value)
    assert KEY not in repr(info.value.__dict__)


def test_answers_are_logged_at_info_without_bodies(client, api, caplog):
    api.get(f"{BASE}/agents/agt_1", json=envelope({"id": "agt_1", "instructions": "TOP-SECRET-PROMPT"}))
    with caplog.at_level(logging.INFO, logger="airflow_provider_nairi"):
        client.get_agent("agt_1")
    assert "GET /agents/agt_1 -> 200" in caplog.text
    assert "TOP-SECRET-PROMPT" not in caplog.text


def test_rate_limit_is_recorded_and_an_empty_window_waits_for_reset(client, api, sleeps, monkeypatch):
    monkeypatch.setattr("airflow_provider_nairi.client.protocol.time.time", lambda: 1000.0)
    limits = {"X-RateLimit-Limit": "60", "X-RateLimit-Remaining": "0", "X-RateLimit-Reset": "1005"}
    api.get(f"{BASE}/me", json=envelope(ME), headers=limits)
    assert client.rate_limit is None
    client.get_me()
    assert (client.rate_limit.limit, client.rate_limit.remaining, client.rate_limit.reset) == (60, 0, 1005.0)
    assert sleeps == []
    client.get_me()
    assert sleeps == [5.0]
    assert len(api.request_history) == 2


# -- pagination ----------------------------------------------------------------------------------------------


def items(start, stop):
    return [{"id": f"agt_{i}"} for i in range(start, stop)]


def test_pagination_costs_ceil_n_over_200_requests(client, api):
    api.get(
        f"{BASE}/agents",
        [
            {"json": page(items(0, 200), True)},
            {"json": page(items(200, 400), True)},
            {"json": page(items(400, 450), False)},
        ],
    )
    assert [a["id"] for a in client.list_agents()] == [f"agt_{i}" for i in range(450)]
    assert [(r.qs["limit"], r.qs["offset"]) for r in api.request_history] == [
        (["200"], ["0"]),
        (["200"], ["200"]),
        (["200"], ["400"]),
    ]


def test_a_last_full_page_with_has_more_false_needs_no_extra_request(client, api):
    api.get(f"{BASE}/agents", json=page(items(0, 200), False))
    assert len(list(client.list_agents())) == 200
    assert len(api.request_history) == 1


def test_pagination_is_lazy_and_passes_filters(client, api):
    api.get(f"{BASE}/conversations", json=page([{"id": "conv_1"}], False))
    iterator = client.list_conversations(agent_id="agt_1")
    assert not api.called
    assert next(iterator) == {"id": "conv_1"}
    assert api.last_request.qs == {"agent_id": ["agt_1"], "limit": ["200"], "offset": ["0"]}


def test_items_shifted_between_pages_are_yielded_once(client, api):
    api.get(f"{BASE}/agents", [{"json": page(items(0, 3), True)}, {"json": page(items(2, 5), False)}])
    assert [a["id"] for a in client.list_agents()] == [f"agt_{i}" for i in range(5)]


def test_has_more_with_an_empty_page_is_an_error_not_a_loop(client, api):
    api.get(f"{BASE}/agents", [{"json": page(items(0, 2), True)}, {"json": page([], True)}])
    with pytest.raises(NairiServerError, match="empty page"):
        list(client.list_agents())
    assert len(api.request_history) == 2


def test_empty_list(client, api):
    api.get(f"{BASE}/videos", json=page([], False))
    assert list(client.list_videos()) == []


# -- uploads -------------------------------------------------------------------------------------------------


def multipart_parts(request):
    content_type = request.headers["Content-Type"]
    boundary = content_type.split("boundary=")[1].encode()
    body = request.body if isinstance(request.body, bytes) else b"".join(request.body)
    parts = {}
    for chunk in body.split(b"--" + boundary)[1:-1]:
        head, _, value = chunk[2:-2].partition(b"\r\n\r\n")
        name = head.split(b'name="')[1].split(b'"')[0].decode()
        parts[name] = (head.decode(), value)
    return body, parts


@pytest.fixture
def data_file(tmp_path):
    path = tmp_path / "report.csv"
    path.write_bytes(b"a,b\n" * 100_000)  # 400 kB
    return path


def captured_body(request, context):
    request.captured = b"".join(request.body)  # the body is an iterable: read it like a server would
    context.status_code = 201
    return json.dumps(envelope({"id": "art_1", "size_bytes": len(request.captured)}))


def test_upload_from_a_path_is_multipart_with_content_length(client, api, data_file):
    api.post(f"{BASE}/artifacts", text=captured_body)
    client.upload_artifact(data_file, conversation_id="conv_1", idempotency_key="airflow-up")
    request = api.last_request
    assert request.headers["Content-Length"] == str(len(request.captured))
    assert "Transfer-Encoding" not in request.headers
    assert request.headers["Idempotency-Key"] == "airflow-up"
    request.body = request.captured
    _, parts = multipart_parts(request)
    assert parts["conversation_id"][1] == b"conv_1"
    assert 'filename="report.csv"' in parts["file"][0]
    assert "Content-Type: text/csv" in parts["file"][0]
    assert parts["file"][1] == data_file.read_bytes()


def test_upload_from_a_file_object_and_an_object_storage_path(client, api, data_file):
    class StoragePath:  # what ObjectStoragePath offers: open("rb") and a name
        name = "remote.bin"

        def open(self, mode):
            assert mode == "rb"
            return open(data_file, "rb")

    api.post(f"{BASE}/videos", text=captured_body)
    with open(data_file, "rb") as file:
        client.upload_video(file, title="t")
    client.upload_video(StoragePath())
    for request, name in zip(api.request_history, ["report.csv", "remote.bin"], strict=True):
        request.body = request.captured
        _, parts = multipart_parts(request)
        assert parts["title"][1] == b"t" if name == "report.csv" else "title" not in parts
        assert f'filename="{name}"' in parts["file"][0]
        assert parts["file"][1] == data_file.read_bytes()


def test_a_retried_upload_rebuilds_the_same_body_with_the_same_key(client, api, data_file):
    bodies = []

    def flaky(request, context):
        bodies.append(b"".join(request.body))
        context.status_code = 503 if len(bodies) == 1 else 201
        return json.dumps(envelope({"id": "art_1"}) if len(bodies) > 1 else error_body(503, "x"))

    api.post(f"{BASE}/artifacts", text=flaky)
    client.upload_artifact(data_file)
    assert len(bodies) == 2
    assert bodies[0] == bodies[1]
    assert len({r.headers["Idempotency-Key"] for r in api.request_history}) == 1


# -- downloads -----------------------------------------------------------------------------------------------

CONTENT = bytes(range(256)) * 4096 * 3  # 3 MiB
SHA = hashlib.sha256(CONTENT).hexdigest()


class BrokenBody(io.RawIOBase):
    """Sends ``cut`` bytes, then the connection breaks."""

    def __init__(self, data, cut):
        self.data, self.cut, self.pos = data, cut, 0

    def readable(self):
        return True

    def readinto(self, buffer):
        if self.pos >= self.cut:
            raise ProtocolError("Connection broken: IncompleteRead")
        n = min(len(buffer), self.cut - self.pos, 65536)
        buffer[:n] = self.data[self.pos : self.pos + n]
        self.pos += n
        return n


def test_download_to_a_path_verifies_the_etag(client, api, tmp_path):
    api.get(f"{BASE}/artifacts/art_1/content", content=CONTENT, headers={"ETag": f'"{SHA}"'})
    target = tmp_path / "out.bin"
    assert client.download_artifact("art_1", target) == len(CONTENT)
    assert target.read_bytes() == CONTENT
    assert list(tmp_path.iterdir()) == [target]


def honour_range(request, context):
    """What the API does for GET /artifacts/{id}/content: 206 with the rest when asked for a Range."""
    context.headers["ETag"] = f'"{SHA}"'
    wanted = request.headers.get("Range")
    if not wanted:
        return CONTENT
    start = int(wanted.removeprefix("bytes=").rstrip("-"))
    context.status_code = 206
    context.headers["Content-Range"] = f"bytes {start}-{len(CONTENT) - 1}/{len(CONTENT)}"
    return CONTENT[start:]


def test_download_resumes_with_range_after_a_broken_connection(client, api, tmp_path):
    cut = 2_500_000  # two 1 MiB chunks arrive, the third breaks
    api.get(
        f"{BASE}/artifacts/art_1/content",
        [{"body": BrokenBody(CONTENT, cut), "headers": {"ETag": f'"{SHA}"'}}, {"content": honour_range}],
    )
    target = tmp_path / "out.bin"
    assert client.download_artifact("art_1", target, expected_sha256=SHA) == len(CONTENT)
    assert target.read_bytes() == CONTENT
    assert "Range" not in api.request_history[0].headers
    assert api.request_history[1].headers["Range"] == f"bytes={2 << 20}-"
    assert len(api.request_history) == 2  # the 206 continued the file: no restart


def test_download_restarts_when_the_server_ignores_range(client, api):
    api.get(
        f"{BASE}/artifacts/art_1/content",
        [{"body": BrokenBody(CONTENT, 2_500_000)}, {"status_code": 200, "content": CONTENT}],
    )
    out = io.BytesIO()
    assert client.download_artifact("art_1", out, expected_sha256=SHA) == len(CONTENT)
    assert out.getvalue() == CONTENT


def test_checksum_mismatch_raises_and_leaves_no_file(client, api, tmp_path):
    api.get(f"{BASE}/artifacts/art_1/content", content=CONTENT[:-1] + b"X", headers={"ETag": f'"{SHA}"'})
    target = tmp_path / "out.bin"
    with pytest.raises(NairiChecksumError, match=SHA):
        client.download_artifact("art_1", target)
    assert list(tmp_path.iterdir()) == []


def test_download_error_status_is_typed(client, api, tmp_path):
    api.get(f"{BASE}/artifacts/art_404/content", status_code=404, json=error_body(404, "not_found"))
    with pytest.raises(NairiError) as info:
        client.download_artifact("art_404", tmp_path / "x")
    assert info.value.status == 404
    assert list(tmp_path.iterdir()) == []


# -- endpoint table ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("call", "method", "path", "body"),
    [
        (lambda c: c.update_agent("agt_1", name="n"), "PATCH", "/agents/agt_1", {"name": "n"}),
        (lambda c: c.delete_agent("agt_1"), "DELETE", "/agents/agt_1", None),
        (
            lambda c: c.send_message("conv_1", "more"),
            "POST",
            "/conversations/conv_1/messages",
            {"content": "more"},
        ),
        (lambda c: c.cancel_conversation("conv_1"), "POST", "/conversations/conv_1/cancel", None),
        (lambda c: c.get_artifact("art_1"), "GET", "/artifacts/art_1", None),
        (lambda c: c.delete_artifact("art_1"), "DELETE", "/artifacts/art_1", None),
        (lambda c: c.get_vault("vlt_1"), "GET", "/vaults/vlt_1", None),
        (lambda c: c.delete_vault("vlt_1"), "DELETE", "/vaults/vlt_1", None),
        (
            lambda c: c.put_vault_secret("vlt_1", "TOKEN", "v"),
            "PUT",
            "/vaults/vlt_1/secrets/TOKEN",
            {"value": "v"},
        ),
        (lambda c: c.delete_vault_secret("vlt_1", "TOKEN"), "DELETE", "/vaults/vlt_1/secrets/TOKEN", None),
        (
            lambda c: c.put_env_var("MODE", "x", secret=True),
            "PUT",
            "/env-vars/MODE",
            {"value": "x", "secret": True},
        ),
        (lambda c: c.delete_env_var("MODE"), "DELETE", "/env-vars/MODE", None),
        (
            lambda c: c.create_scheduled_job("j", "agt_1", "go", "0 * * * *", timezone="UTC"),
            "POST",
            "/scheduled-jobs",
            {"name": "j", "agent_id": "agt_1", "message": "go", "cron": "0 * * * *", "timezone": "UTC"},
        ),
        (lambda c: c.get_scheduled_job("job_1"), "GET", "/scheduled-jobs/job_1", None),
        (
            lambda c: c.update_scheduled_job("job_1", enabled=False),
            "PATCH",
            "/scheduled-jobs/job_1",
            {"enabled": False},
        ),
        (lambda c: c.delete_scheduled_job("job_1"), "DELETE", "/scheduled-jobs/job_1", None),
        (lambda c: c.delete_video("vid_1"), "DELETE", "/videos/vid_1", None),
        (lambda c: c.reprocess_video("vid_1"), "POST", "/videos/vid_1/reprocess", None),
        (lambda c: c.search("q", limit=5), "POST", "/search", {"query": "q", "limit": 5}),
        (
            lambda c: c.recall("q", video_ids=["vid_1"]),
            "POST",
            "/recall",
            {"query": "q", "video_ids": ["vid_1"]},
        ),
        (lambda c: c.chat("hello"), "POST", "/chat", {"message": "hello"}),
        (lambda c: c.get_agent("a/../b"), "GET", "/agents/a%2F..%2Fb", None),
    ],
)
def test_endpoint_shapes(client, api, call, method, path, body):
    answer = [{"ok": True}] if path in ("/search", "/recall") else {"ok": True}  # the contract's shapes
    api.register_uri(method, f"{BASE}{path}", json=envelope(answer))
    call(client)
    request = api.last_request
    assert (request.method, request.path) == (method, f"/api/public/v1{path}".lower())
    assert (request.json() if request.body else None) == body
    assert ("Idempotency-Key" in request.headers) is (method == "POST")


def test_run_scheduled_job_returns_the_conversation(client, api):
    api.post(
        f"{BASE}/scheduled-jobs/job_1/run", status_code=202, json=envelope({"conversation": {"id": "conv_9"}})
    )
    assert client.run_scheduled_job("job_1") == {"id": "conv_9"}


def test_delete_returns_none_on_204(client, api):
    api.delete(f"{BASE}/agents/agt_1", status_code=204)
    assert client.delete_agent("agt_1") is None


# -- properties and settings ---------------------------------------------------------------------------------


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(total=st.integers(min_value=0, max_value=900), size=st.integers(min_value=1, max_value=200))
def test_any_list_costs_ceil_n_over_page_size_requests(client, total, size):
    """Whatever N and page size, every item comes once, in order, in max(1, ceil(N/size)) requests."""

    def answer(request, context):
        offset, limit = int(request.qs["offset"][0]), int(request.qs["limit"][0])
        chunk = [{"id": f"agt_{i}"} for i in range(offset, min(total, offset + limit))]
        return json.dumps(page(chunk, offset + len(chunk) < total))

    with requests_mock.Mocker() as api:
        api.get(f"{BASE}/agents", text=answer)
        ids = [a["id"] for a in client.paginate("/agents", page_size=size)]
        assert ids == [f"agt_{i}" for i in range(total)]
        assert api.call_count == max(1, math.ceil(total / size))


def test_tls_and_proxy_settings_reach_the_session():
    config = ClientConfig(
        api_key=KEY, base_url=BASE, verify="/etc/ssl/corp.pem", proxies={"https": "http://p:1"}
    )
    session = NairiClient(config).session
    assert session.verify == "/etc/ssl/corp.pem"
    assert session.proxies["https"] == "http://p:1"


def test_verify_false_wins_over_a_ca_bundle_in_the_environment(api, monkeypatch, sleeps):
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/etc/ssl/other.pem")
    api.get(f"{BASE}/me", json=envelope(ME))
    NairiClient(ClientConfig(api_key=KEY, base_url=BASE, verify=False), sleep=sleeps).get_me()
    assert api.last_request.verify is False


def test_configured_proxies_win_over_the_environment(api, monkeypatch, sleeps):
    monkeypatch.setenv("HTTPS_PROXY", "http://env-proxy:3128")
    api.get(f"{BASE}/me", json=envelope(ME))
    config = ClientConfig(api_key=KEY, base_url=BASE, proxies={"https": "http://corp-proxy:8080"})
    NairiClient(config, sleep=sleeps).get_me()
    assert api.last_request.proxies["https"] == "http://corp-proxy:8080"


def test_an_unseekable_source_is_refused_before_sending(client, api):
    class Pipe(io.RawIOBase):
        def readable(self):
            return True

        def seekable(self):
            return False

    with pytest.raises(NairiConfigurationError, match="not seekable"):
        client.upload_artifact(Pipe())
    assert not api.called
