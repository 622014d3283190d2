"""A bounded property-based run: random calls to every route find no 5xx and no envelope violation."""

from __future__ import annotations

import json
import urllib.parse

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from airflow_provider_nairi.emulator import routing, run_emulator
from airflow_provider_nairi.emulator.protocol import ERROR_CODES

JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**40), 2**40)
    | st.floats(allow_nan=False)
    | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=10,
)
FIELDS = [
    "name",
    "instructions",
    "agent_id",
    "message",
    "content",
    "query",
    "value",
    "cron",
    "timezone",
    "limit",
    "video_ids",
    "artifact_ids",
    "metadata",
    "enabled",
    "secret",
    "title",
    "model",
    "vault_ids",
]
SEGMENT = st.text(
    st.characters(blacklist_characters="/?#%", blacklist_categories=("Cs",)), min_size=1, max_size=12
)


@st.composite
def calls(draw):
    route = draw(st.sampled_from(routing.ROUTES))
    params = {name: draw(SEGMENT | st.just("x")) for name in route.pattern.groupindex}
    path = route.template.format(**{k: urllib.parse.quote(v, safe="") for k, v in params.items()})
    query = draw(
        st.dictionaries(
            st.sampled_from(["limit", "offset", "status", "agent_id"]),
            st.integers(-5, 300).map(str) | st.text(max_size=5),
            max_size=3,
        )
    )
    body = draw(st.dictionaries(st.sampled_from(FIELDS), JSON, max_size=5) | JSON)
    raw = draw(st.sampled_from(["json", "json", "garbage", "none"]))
    content = {"json": json.dumps(body).encode(), "garbage": b"\x00{\xff", "none": b""}[raw]
    token = st.text(st.characters(min_codepoint=33, max_codepoint=126), min_size=1, max_size=300)
    idempotency = draw(st.none() | token)
    return route.method, path, query, content, idempotency


@pytest.fixture(scope="module")
def emu():
    with run_emulator(turn_latency=0.0, video_delay=0.0) as running:
        yield running


@pytest.fixture(scope="module")
def client(emu):
    with httpx.Client(base_url=emu.base_url, timeout=10) as shared:  # one client: no TLS set-up per call
        yield shared


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(call=calls())
def test_no_5xx_and_always_an_envelope(emu, client, call):
    method, path, query, content, idempotency = call
    headers = {"X-API-Key": emu.api_key, "Content-Type": "application/json"}
    if idempotency is not None:
        headers["Idempotency-Key"] = idempotency
    response = client.request(method, path, params=query, content=content, headers=headers)
    assert response.status_code < 500, response.text
    if response.status_code == 204 or (path.endswith("/content") and response.status_code in (200, 206)):
        return
    body = response.json()
    assert body["meta"]["request_id"] == response.headers["X-Request-Id"]
    if response.is_success:
        assert body["success"] is True
        assert "data" in body
    else:
        assert body["success"] is False
        assert body["error"]["status"] == response.status_code
        assert body["error"]["code"] in ERROR_CODES[response.status_code]
