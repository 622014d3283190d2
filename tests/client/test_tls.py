"""TLS with a real handshake on loopback: both clients trust the same CAs and refuse what they must not.

A throw-away CA (trustme) signs a certificate for 127.0.0.1; a stdlib HTTPS server in a thread answers
``GET /me``. The sync client (requests) and the async one (aiohttp) must agree on every row: a worker and a
triggerer reading the same connection trust the same servers.
"""

from __future__ import annotations

import asyncio
import json
import ssl
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import trustme
from client_helpers import KEY, envelope

from airflow_provider_nairi.client import ClientConfig, NairiClient
from airflow_provider_nairi.client.aio import AsyncNairiClient
from airflow_provider_nairi.exceptions import NairiConnectionError, NairiTLSError

ME = {"org": {"id": "org_1", "name": "Acme"}, "key": {"name": "ci", "hint": "nr_…e", "scopes": ["read"]}}
CA_VARIABLES = ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "SSL_CERT_FILE", "SSL_CERT_DIR")


class MeHandler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = json.dumps(envelope(ME)).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="module")
def https_base_url(ca: trustme.CA) -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), MeHandler)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"https://127.0.0.1:{server.server_address[1]}/api/public/v1"
    server.shutdown()
    server.server_close()


@pytest.fixture
def ca_file(ca: trustme.CA, tmp_path) -> str:
    path = tmp_path / "corporate-ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return str(path)


@pytest.fixture(autouse=True)
def no_ca_from_the_environment(monkeypatch):
    for name in CA_VARIABLES:
        monkeypatch.delenv(name, raising=False)


def get_me_both_ways(base_url: str, verify: bool | str = True) -> list[object]:
    """``GET /me`` through the sync and the async client: each one's answer, or the error it raised."""
    config = ClientConfig(api_key=KEY, base_url=base_url, verify=verify, max_retries=0)
    results: list[object] = []
    try:
        with NairiClient(config) as client:
            results.append(client.get_me())
    except NairiConnectionError as error:
        results.append(error)

    async def get_me_async() -> object:
        try:
            async with AsyncNairiClient(config) as client:
                return await client.request("GET", "/me")
        except NairiConnectionError as error:
            return error

    results.append(asyncio.run(get_me_async()))
    return results


def test_an_unknown_ca_is_refused_by_both_without_retry(https_base_url):
    for error in get_me_both_ways(https_base_url):
        assert isinstance(error, NairiTLSError) and isinstance(error, NairiConnectionError)
        assert error.code == "tls_error" and error.retryable is False
        assert NairiTLSError.retryable is False  # a fact of the class, not of one instance
        assert "TLS verification failed" in str(error)


def test_the_connections_ca_bundle_is_trusted_by_both(https_base_url, ca_file):
    assert get_me_both_ways(https_base_url, verify=ca_file) == [ME, ME]


def test_requests_ca_bundle_from_the_environment_is_trusted_by_both(https_base_url, ca_file, monkeypatch):
    """Corporate CAs are often given to a whole deployment as REQUESTS_CA_BUNDLE: the triggerer must honour
    it too, or deferrable tasks fail where the same task on a worker succeeds."""
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", ca_file)
    assert get_me_both_ways(https_base_url) == [ME, ME]


def test_curl_ca_bundle_is_the_fallback(https_base_url, ca_file, monkeypatch):
    monkeypatch.setenv("CURL_CA_BUNDLE", ca_file)
    assert get_me_both_ways(https_base_url) == [ME, ME]


def test_a_directory_in_requests_ca_bundle_is_read_as_a_ca_directory_by_both(
    https_base_url, ca, tmp_path, monkeypatch
):
    """requests accepts a directory (OpenSSL's hashed ``capath``); so does the async client. This one holds
    the CA under a plain name, which OpenSSL does not look up: both refuse alike, neither crashes."""
    ca.cert_pem.write_to_path(str(tmp_path / "corporate.pem"))
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(tmp_path))
    results = get_me_both_ways(https_base_url)
    assert [type(result) for result in results] == [NairiTLSError, NairiTLSError]
    assert [result.code for result in results] == ["tls_error", "tls_error"]


def test_verify_false_skips_verification_in_both(https_base_url):
    assert get_me_both_ways(https_base_url, verify=False) == [ME, ME]
