"""Proxies: the worker (sync client) and the triggerer (async client) choose "direct or proxy" alike, for
every ``NO_PROXY`` form requests reads. requests' own decision, taken from the sync client's real request, is
the oracle; the table's own column says what that decision is, so a change in requests shows up too."""

from __future__ import annotations

import pytest
import requests
from hostile_servers import HostileServer, answer, envelope
from requests.utils import select_proxy
from wire_clients import KEY, async_client, sync_client

from airflow_provider_nairi.client.aio import proxy_for
from airflow_provider_nairi.client.config import ClientConfig
from airflow_provider_nairi.client.sync import NairiClient

pytestmark = pytest.mark.timeout(30)

ENV_PROXY = "http://env-proxy.corp:3128"
CONN_PROXY = "http://conn-proxy.corp:8080"
PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY")

#: (id, environment, connection proxies, base URL, the proxy requests chooses or None for direct)
TABLE = [
    ("no-no_proxy", {"HTTPS_PROXY": ENV_PROXY}, None, "https://api.nairi.ai", ENV_PROXY),
    (
        "exact-host",
        {"HTTPS_PROXY": ENV_PROXY, "NO_PROXY": "api.nairi.ai"},
        None,
        "https://api.nairi.ai",
        None,
    ),
    ("suffix", {"HTTPS_PROXY": ENV_PROXY, "NO_PROXY": "nairi.ai"}, None, "https://api.nairi.ai", None),
    ("leading-dot", {"HTTPS_PROXY": ENV_PROXY, "NO_PROXY": ".nairi.ai"}, None, "https://api.nairi.ai", None),
    (
        "other-host",
        {"HTTPS_PROXY": ENV_PROXY, "NO_PROXY": "nairi.example"},
        None,
        "https://api.nairi.ai",
        ENV_PROXY,
    ),
    ("star", {"HTTPS_PROXY": ENV_PROXY, "NO_PROXY": "*"}, None, "https://api.nairi.ai", None),
    (
        "list-spaces",
        {"HTTPS_PROXY": ENV_PROXY, "NO_PROXY": "x.example, api.nairi.ai"},
        None,
        "https://api.nairi.ai",
        None,
    ),
    (
        "host-port",
        {"HTTPS_PROXY": ENV_PROXY, "NO_PROXY": "api.nairi.ai:8443"},
        None,
        "https://api.nairi.ai:8443",
        None,
    ),
    (
        "other-port",
        {"HTTPS_PROXY": ENV_PROXY, "NO_PROXY": "api.nairi.ai:8443"},
        None,
        "https://api.nairi.ai",
        ENV_PROXY,
    ),
    ("ip", {"HTTPS_PROXY": ENV_PROXY, "NO_PROXY": "10.1.2.3"}, None, "https://10.1.2.3:8443", None),
    ("cidr-in", {"HTTPS_PROXY": ENV_PROXY, "NO_PROXY": "10.0.0.0/8"}, None, "https://10.1.2.3", None),
    ("cidr-out", {"HTTPS_PROXY": ENV_PROXY, "NO_PROXY": "10.0.0.0/8"}, None, "https://11.1.2.3", ENV_PROXY),
    ("all_proxy", {"ALL_PROXY": ENV_PROXY}, None, "https://api.nairi.ai", ENV_PROXY),
    (
        "http-scheme",
        {"HTTP_PROXY": ENV_PROXY, "HTTPS_PROXY": CONN_PROXY},
        None,
        "http://localhost:8080",
        ENV_PROXY,
    ),
    (
        "localhost-excluded",
        {"HTTP_PROXY": ENV_PROXY, "NO_PROXY": "localhost"},
        None,
        "http://localhost:8080",
        None,
    ),
    ("connection-proxy", {}, {"https": CONN_PROXY}, "https://api.nairi.ai", CONN_PROXY),
    # requests keeps a connection's explicit proxy even for a host NO_PROXY names (NO_PROXY filters only
    # the environment's proxies); both clients follow it
    (
        "connection-over-no_proxy",
        {"NO_PROXY": "api.nairi.ai"},
        {"https": CONN_PROXY},
        "https://api.nairi.ai",
        CONN_PROXY,
    ),
    (
        "connection-no_proxy-key",
        {"HTTPS_PROXY": ENV_PROXY},
        {"no_proxy": "api.nairi.ai"},
        "https://api.nairi.ai",
        None,
    ),
    ("per-host-key", {}, {"https://api.nairi.ai": CONN_PROXY}, "https://api.nairi.ai", CONN_PROXY),
]


@pytest.fixture
def environment(monkeypatch):
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)

    def set_environment(values):
        for name, value in values.items():
            monkeypatch.setenv(name, value)

    return set_environment


def sync_decision(config, monkeypatch):
    """The proxy the sync client's real request goes through: what requests' adapter selects."""
    seen = {}

    def send(adapter, request, **kwargs):
        seen["proxy"] = select_proxy(request.url, kwargs["proxies"])
        raise requests.ConnectionError("stop here")

    monkeypatch.setattr(requests.adapters.HTTPAdapter, "send", send)
    with NairiClient(config, sleep=lambda _: None) as client, pytest.raises(Exception):  # noqa: B017
        client.request("GET", "/me")
    return seen["proxy"]


@pytest.mark.parametrize(
    ("environ", "proxies", "base", "expected"), [row[1:] for row in TABLE], ids=[r[0] for r in TABLE]
)
def test_both_clients_take_requests_decision(environment, monkeypatch, environ, proxies, base, expected):
    environment(environ)
    config = ClientConfig(api_key=KEY, base_url=base + "/api/public/v1", proxies=proxies, max_retries=0)
    assert sync_decision(config, monkeypatch) == expected
    assert proxy_for(config.base_url, config.proxies) == expected


@pytest.mark.parametrize("excluded", [True, False], ids=["no_proxy-covers-the-api", "through-the-proxy"])
@pytest.mark.parametrize("flavour", ["sync", "async"])
async def test_over_loopback_the_key_reaches_the_proxy_only_when_not_excluded(environment, flavour, excluded):
    with (
        HostileServer(answer(200, envelope({"id": "v1"}))) as api,
        HostileServer(answer(200, envelope({"id": "v1"}))) as proxy,
    ):
        environment({"HTTP_PROXY": proxy.url, "NO_PROXY": "127.0.0.1" if excluded else "example.invalid"})
        if flavour == "sync":
            with sync_client(api) as client:
                client.get_video("v1")
        else:
            client = async_client(api)
            try:
                await client.get_video("v1")
            finally:
                await client.close()
    assert len(api.requests) == (1 if excluded else 0)
    assert len(proxy.requests) == (0 if excluded else 1)
    if not excluded:
        assert proxy.requests[0].target == f"{api.base_url}/videos/v1"
