"""The connection as the client sees it: extras validated from one table, key checks, base URL rules."""

from __future__ import annotations

import json
import logging
from importlib.resources import files

import pytest

from airflow_provider_nairi.client.config import (
    DEFAULT_BASE_URL,
    EXTRA_FIELDS,
    ClientConfig,
    connection_form,
    normalize_base_url,
    parse_extras,
    user_agent,
)
from airflow_provider_nairi.exceptions import NairiConfigurationError

KEY = "nr_live_Sup3rSecretKeyValue"


def build(**kwargs):
    kwargs.setdefault("host", None)
    kwargs.setdefault("password", KEY)
    return ClientConfig.from_connection(**kwargs)


def test_defaults_without_extras():
    config = build()
    assert config.base_url == DEFAULT_BASE_URL
    assert (config.auth_header, config.connect_timeout, config.read_timeout) == ("x-api-key", 10.0, 60.0)
    assert (config.max_retries, config.retry_max_wait, config.verify) == (5, 60.0, True)
    assert config.auth_headers() == {"X-API-Key": KEY}


def test_string_extras_from_a_uri_are_coerced():
    config = build(
        extras={
            "auth_header": "Bearer",
            "read_timeout": "12.5",
            "max_retries": "2",
            "verify": "false",
            "allow_insecure_http": "true",
            "proxies": "http://proxy:3128",
        }
    )
    assert config.auth_headers() == {"Authorization": f"Bearer {KEY}"}
    assert (config.read_timeout, config.max_retries, config.verify) == (12.5, 2, False)
    assert config.proxies == {"http": "http://proxy:3128", "https": "http://proxy:3128"}


def test_ca_bundle_path_and_proxy_object():
    config = build(extras={"verify": "/etc/ssl/corp.pem", "proxies": json.dumps({"https": "http://p:1"})})
    assert config.verify == "/etc/ssl/corp.pem"
    assert config.proxies == {"https": "http://p:1"}


@pytest.mark.parametrize(
    ("extras", "expected"),
    [
        ({"auth_header": "basic"}, "'auth_header' is 'basic'; expected one of 'x-api-key', 'bearer'"),
        ({"read_timeout": "soon"}, "'read_timeout' is 'soon'; expected a number"),
        ({"max_retries": -1}, "'max_retries' is -1; expected a number >= 0"),
        ({"max_retries": 1.5}, "'max_retries' is 1.5; expected an integer"),
        ({"allow_insecure_http": "maybe"}, "'allow_insecure_http' is 'maybe'; expected true or false"),
        ({"proxies": ["x"]}, "'proxies' is ['x']; expected a JSON object of URLs by scheme, or one URL"),
    ],
)
def test_wrong_extra_names_the_field_and_what_it_accepts(extras, expected):
    with pytest.raises(NairiConfigurationError, match="Connection extra") as info:
        build(extras=extras)
    assert expected in str(info.value)


def test_unknown_extra_lists_the_known_ones():
    with pytest.raises(NairiConfigurationError) as info:
        build(extras={"timeout": 5})
    text = str(info.value)
    assert "'timeout'" in text
    for spec in EXTRA_FIELDS:
        assert spec.name in text


def test_form_prefixed_and_empty_extras_are_accepted():
    values = parse_extras({"extra__nairi__read_timeout": "5", "connect_timeout": "", "proxies": None})
    assert values["read_timeout"] == 5.0
    assert values["connect_timeout"] == 10.0


@pytest.mark.parametrize(
    ("host", "base_url"),
    [
        (None, DEFAULT_BASE_URL),
        ("", DEFAULT_BASE_URL),
        ("api.niravi.io", "https://api.niravi.io/api/public/v1"),
        ("https://api.niravi.io/api/v1/", "https://api.niravi.io/api/v1"),
        ("http://127.0.0.1:8080/api/public/v1", "http://127.0.0.1:8080/api/public/v1"),
        ("http://localhost:9", "http://localhost:9/api/public/v1"),
    ],
)
def test_base_url_from_host(host, base_url):
    assert normalize_base_url(host) == base_url


@pytest.mark.parametrize("host", ["127.0.0.1:8080/api/public/v1", "localhost:8080"])
def test_a_loopback_host_without_scheme_names_the_http_fix(host):
    """Not a bare TLS "wrong version number" from https:// to the plain-http emulator."""
    with pytest.raises(NairiConfigurationError) as info:
        build(host=host)
    assert info.value.code == "invalid_host"
    assert str(info.value).endswith(f"write http://{host}")


def test_plain_http_to_a_remote_host_needs_the_explicit_extra():
    with pytest.raises(NairiConfigurationError, match="allow_insecure_http"):
        build(host="http://nairi.internal")
    assert build(host="http://nairi.internal", extras={"allow_insecure_http": True}).base_url == (
        "http://nairi.internal/api/public/v1"
    )


def test_not_a_url_is_refused():
    with pytest.raises(NairiConfigurationError, match="not an http"):
        normalize_base_url("ftp://files.example")


@pytest.mark.parametrize(
    ("key", "code", "words"),
    [
        (None, "missing_api_key", "Settings → API Key"),
        ("", "missing_api_key", "password field"),
        (" nr_abc ", "api_key_whitespace", "whitespace"),
        ("nr_abc\n", "api_key_whitespace", "whitespace"),
        ("ccagent_0123456789", "agent_key_not_allowed", "Settings → API Key"),
    ],
)
def test_key_checks_before_any_request(key, code, words):
    with pytest.raises(NairiConfigurationError) as info:
        build(password=key)
    assert info.value.code == code
    assert words in str(info.value)
    if key:
        assert key.strip() not in str(info.value)


def test_unknown_prefix_warns_without_showing_the_key(caplog):
    with caplog.at_level(logging.WARNING, logger="airflow_provider_nairi.client.config"):
        config = build(password="sk_live_abcdefgh123")
    assert config.api_key == "sk_live_abcdefgh123"
    assert "nr_ or nv_" in caplog.text
    assert "sk_live_abcdefgh123" not in caplog.text


def test_niravi_keys_are_accepted_silently(caplog):
    with caplog.at_level(logging.WARNING):
        build(password="nv_abcdefgh")
    assert not caplog.records


def test_repr_and_redact_hide_the_key():
    config = build()
    assert KEY not in repr(config)
    assert config.redact(f"bad key {KEY}!") == "bad key ***!"


def test_user_agent_names_provider_airflow_python_and_suffix():
    agent = user_agent("3.3.2", "team-data")
    assert agent.startswith("airflow-provider-nairi/0.1.0 apache-airflow/3.3.2 python/3.")
    assert agent.endswith(" team-data")
    assert build(extras={"user_agent_suffix": "dag-x"}, airflow_version="2.11.0").user_agent.endswith(
        "apache-airflow/2.11.0 python/" + agent.split("python/")[1].split()[0] + " dag-x"
    )


def test_connection_form_matches_the_provider_yaml_schema():
    jsonschema = pytest.importorskip("jsonschema")
    schema = json.loads(files("airflow").joinpath("provider.yaml.schema.json").read_text())
    conn_types = schema["properties"]["connection-types"]["items"]
    form = connection_form()
    entry = {
        "hook-class-name": "airflow_provider_nairi.hooks.nairi.NairiHook",
        "connection-type": "nairi",
        **form,
    }
    jsonschema.validate(entry, conn_types)
    assert set(form["conn-fields"]) == {spec.name for spec in EXTRA_FIELDS}
    assert form["conn-fields"]["key_header"]["schema"]["enum"] == ["x-api-key", "bearer"]
    assert form["ui-field-behaviour"]["relabeling"] == {"host": "Base URL", "password": "API key"}
