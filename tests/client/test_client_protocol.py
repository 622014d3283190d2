"""The one protocol implementation both clients use: error mapping, retry decision, Retry-After, pages."""

from __future__ import annotations

import json
from email.utils import formatdate

import pytest
from client_helpers import KEY, envelope, error_body

from airflow_provider_nairi.client.config import ClientConfig
from airflow_provider_nairi.client.protocol import (
    Envelope,
    PageCursor,
    RateLimit,
    idempotency_key_for,
    parse_response,
    parse_retry_after,
    rate_limit_wait,
    should_retry,
    transport_error,
)
from airflow_provider_nairi.exceptions import (
    NairiAuthError,
    NairiConfigurationError,
    NairiConflictError,
    NairiConnectionError,
    NairiError,
    NairiNotFoundError,
    NairiPayloadTooLargeError,
    NairiRateLimitError,
    NairiServerError,
    NairiValidationError,
)

CONFIG = ClientConfig(api_key=KEY, base_url="https://api.nairi.test/api/public/v1", retry_max_wait=30)


def answer(status, body, headers=None):
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return parse_response(CONFIG, status, headers or {}, raw, method="POST", path="/conversations")


@pytest.mark.parametrize(
    ("status", "code", "cls"),
    [
        (400, "bad_request", NairiValidationError),
        (401, "unauthorized", NairiAuthError),
        (401, "agent_key_not_allowed", NairiAuthError),
        (403, "insufficient_scope", NairiAuthError),
        (404, "not_found", NairiNotFoundError),
        (409, "conversation_busy", NairiConflictError),
        (413, "payload_too_large", NairiPayloadTooLargeError),
        (422, "validation_error", NairiValidationError),
        (429, "rate_limited", NairiRateLimitError),
        (500, "internal_error", NairiServerError),
        (503, "service_unavailable", NairiServerError),
        (418, "teapot", NairiError),
    ],
)
def test_status_maps_to_one_error_class(status, code, cls):
    with pytest.raises(NairiError) as info:
        answer(status, error_body(status, code, "it failed"))
    error = info.value
    assert type(error) is cls
    assert (error.status, error.code, error.request_id) == (status, code, f"req_{status}")
    assert str(error) == f"POST /conversations: {status} {code}: it failed (request id req_{status})"


def test_validation_error_lists_the_fields():
    details = [{"field": "agent_id", "message": "unknown agent"}]
    with pytest.raises(NairiValidationError) as info:
        answer(422, error_body(422, "validation_error", "invalid body", details))
    assert info.value.fields == ["agent_id"]
    assert "(agent_id: unknown agent)" in str(info.value)


def test_key_echoed_by_the_server_is_redacted():
    with pytest.raises(NairiAuthError) as info:
        answer(401, error_body(401, "unauthorized", f"key {KEY} revoked", [{"message": KEY}]))
    assert KEY not in str(info.value)
    assert "***" in str(info.value)


@pytest.mark.parametrize(
    ("status", "body", "cls"),
    [
        (502, b"<html>Bad gateway</html>", NairiServerError),
        (200, b"<html>login</html>", NairiServerError),
        (200, b'{"data": [1]', NairiServerError),  # truncated JSON
        (200, b'{"ok": true}', NairiServerError),  # JSON, not an envelope
        (401, b"<html>proxy says no</html>", NairiAuthError),
    ],
)
def test_non_envelope_answers_are_typed_not_crashes(status, body, cls):
    with pytest.raises(NairiError) as info:
        answer(status, body, {"Content-Type": "text/html", "X-Request-Id": "req_proxy"})
    assert type(info.value) is cls
    assert info.value.request_id == "req_proxy"


def test_answers_are_utf8_a_byte_order_mark_skipped_another_encoding_malformed():
    text = json.dumps(envelope({"id": "conv_1", "title": "caf\u00e9"}, "req_ok"), ensure_ascii=False)
    assert answer(200, b"\xef\xbb\xbf" + text.encode()).data == {"id": "conv_1", "title": "caf\u00e9"}
    with pytest.raises(NairiServerError) as info:  # json.loads would have guessed UTF-16 and read it
        answer(200, text.encode("utf-16"), {"X-Request-Id": "req_16"})
    assert info.value.code == "malformed_answer" and info.value.retryable
    assert info.value.request_id == "req_16"


def test_success_envelope_and_204():
    parsed = answer(200, envelope({"id": "conv_1"}, "req_ok"))
    assert parsed == Envelope({"id": "conv_1"}, None, "req_ok")
    assert answer(204, b"", {"X-Request-Id": "req_del"}) == Envelope(None, None, "req_del")


@pytest.mark.parametrize(
    ("error", "retried"),
    [
        (NairiServerError("x", status=500), True),
        (NairiServerError("x", status=503), True),
        (NairiConnectionError("reset"), True),
        (NairiRateLimitError("x", status=429), True),
        (NairiRateLimitError("x", status=429, retry_after=30), True),
        (NairiRateLimitError("x", status=429, retry_after=31), False),
        (NairiValidationError("x", status=400), False),
        (NairiAuthError("x", status=401), False),
        (NairiAuthError("x", status=403), False),
        (NairiNotFoundError("x", status=404), False),
        (NairiConflictError("x", status=409), False),
        (NairiPayloadTooLargeError("x", status=413), False),
        (NairiValidationError("x", status=422), False),
        (NairiConfigurationError("x"), False),
        (NairiError("redirect", status=302, code="redirect_refused"), False),
        (ValueError("a bug"), False),
    ],
)
def test_retry_table(error, retried):
    assert should_retry(error, CONFIG) is retried


def test_tls_failures_are_not_retried_but_resets_are():
    tls = transport_error(CONFIG, OSError("certificate verify failed"), method="GET", path="/me", tls=True)
    reset = transport_error(CONFIG, OSError("connection reset"), method="GET", path="/me")
    assert (tls.code, should_retry(tls, CONFIG)) == ("tls_error", False)
    assert (reset.code, should_retry(reset, CONFIG)) == ("connection_error", True)


def test_retry_after_both_forms():
    now = 1_800_000_000.0
    assert parse_retry_after("7", now) == 7.0
    assert parse_retry_after(formatdate(now + 42, usegmt=True), now) == pytest.approx(42.0)
    assert parse_retry_after(formatdate(now - 5, usegmt=True), now) == 0.0
    assert parse_retry_after(None) is None
    assert parse_retry_after("soon") is None


def test_429_carries_retry_after_in_the_error():
    with pytest.raises(NairiRateLimitError) as info:
        answer(429, error_body(429, "rate_limited", "slow down"), {"Retry-After": "12"})
    assert info.value.retry_after == 12.0
    assert "Retry-After: 12 s" in str(info.value)


def test_rate_limit_headers_and_wait():
    headers = {"X-RateLimit-Limit": "100", "X-RateLimit-Remaining": "0", "X-RateLimit-Reset": "1000"}
    limit = RateLimit.from_headers(headers)
    assert limit == RateLimit(100, 0, 1000.0)
    assert rate_limit_wait(limit, CONFIG, now=990.0) == 10.0
    assert rate_limit_wait(limit, CONFIG, now=1001.0) == 0.0
    assert rate_limit_wait(RateLimit(100, 1, 1000.0), CONFIG, now=990.0) == 0.0
    with pytest.raises(NairiRateLimitError, match="longer than retry_max_wait"):
        rate_limit_wait(limit, CONFIG, now=900.0)
    assert RateLimit.from_headers({}) is None


def test_idempotency_key_only_for_post_and_kept_when_given():
    generated = idempotency_key_for("POST", None)
    assert generated and len(generated) == 36
    assert idempotency_key_for("POST", "airflow-abc") == "airflow-abc"
    assert idempotency_key_for("PUT", "ignored") is None
    assert idempotency_key_for("GET", None) is None
    with pytest.raises(NairiConfigurationError):
        idempotency_key_for("POST", "x" * 256)


def env_page(items, has_more):
    return Envelope(items, {"has_more": has_more}, "req_p")


def test_cursor_advances_by_items_and_deduplicates():
    cursor = PageCursor({"agent_id": "agt_1", "status": None}, 2)
    assert cursor.params() == {"agent_id": "agt_1", "limit": 2, "offset": 0}
    assert cursor.accept(env_page([{"id": "a"}, {"id": "b"}], True), method="GET", path="/x") == [
        {"id": "a"},
        {"id": "b"},
    ]
    assert cursor.params()["offset"] == 2
    assert cursor.accept(env_page([{"id": "b"}, {"id": "c"}], False), method="GET", path="/x") == [
        {"id": "c"}
    ]
    assert cursor.done


def test_cursor_refuses_has_more_with_an_empty_page():
    cursor = PageCursor(None, 200)
    with pytest.raises(NairiServerError, match="empty page"):
        cursor.accept(env_page([], True), method="GET", path="/agents")


@pytest.mark.parametrize("size", [0, 201])
def test_page_size_bounds(size):
    with pytest.raises(NairiConfigurationError, match="page_size"):
        PageCursor(None, size)
