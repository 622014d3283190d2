"""Connection extras round-trip through Airflow's Add/Edit connection forms: none is hidden by its masker.

Airflow's secrets masker replaces the value of any key whose name contains a sensitive word (``auth_header``,
``proxies``, ``token``, ``secret``...) by ``"***"``, in the form's metadata and in the connection it shows for
editing; saving that form then stores ``"***"``. So every extra's name must escape the masker, and a stored
``"***"`` (under a former name) must be refused, never sent.
"""

from __future__ import annotations

import json

import airflow
import pytest

from airflow_provider_nairi.client.config import EXTRA_FIELDS, REDACTED, ClientConfig, parse_extras
from airflow_provider_nairi.exceptions import NairiConfigurationError

try:  # Airflow 3.1+
    from airflow._shared.secrets_masker import redact, should_hide_value_for_key

except ImportError:
    try:  # Airflow 3.0
        from airflow.sdk.execution_time.secrets_masker import redact, should_hide_value_for_key
    except ImportError:  # Airflow 2.11
        from airflow.utils.log.secrets_masker import redact, should_hide_value_for_key

#: Airflow 3.2 added "auth" and "proxies" to the masker's sensitive words (2.11 to 3.1 leave the old names).
MASKER_HIDES_FORMER_NAMES = tuple(int(part) for part in airflow.__version__.split(".")[:2]) >= (3, 2)

KEY = "nr_" + "k" * 32
#: A value a user would set for each extra (as the form sends it).
EXAMPLES = {
    "key_header": "bearer",
    "connect_timeout": 5.0,
    "read_timeout": 30.0,
    "request_timeout": 90.0,
    "max_answer_bytes": 1048576,
    "max_retries": 2,
    "retry_max_wait": 10.0,
    "retry_total_timeout": 120.0,
    "dashboard_url": "https://app.example.com",
    "verify": "/etc/ssl/corp.pem",
    "egress_urls": json.dumps({"https": "http://egress:3128"}),
    "user_agent_suffix": "team-data",
    "allow_insecure_http": True,
}


def test_every_extra_has_an_example():
    assert set(EXAMPLES) == {spec.name for spec in EXTRA_FIELDS}


def test_the_masker_is_active_and_hides_the_former_names_so_these_tests_can_fail():
    assert should_hide_value_for_key("password") and should_hide_value_for_key("api_token")
    if MASKER_HIDES_FORMER_NAMES:
        assert should_hide_value_for_key("auth_header") and should_hide_value_for_key("proxies")


@pytest.mark.parametrize("name", [spec.name for spec in EXTRA_FIELDS])
def test_no_extra_name_is_sensitive_to_the_masker(name):
    assert not should_hide_value_for_key(name)
    assert not should_hide_value_for_key(f"extra__nairi__{name}")


def test_the_extras_of_a_connection_come_back_unchanged_from_the_masker():
    assert redact(dict(EXAMPLES)) == EXAMPLES


def test_the_connection_api_and_form_metadata_return_every_extra_unchanged():
    datamodels = pytest.importorskip("airflow.api_fastapi.core_api.datamodels.connections")
    shown = datamodels.ConnectionResponse(
        conn_id="nairi_default",
        conn_type="nairi",
        description=None,
        host=None,
        login=None,
        schema=None,
        port=None,
        password=KEY,
        extra=json.dumps(EXAMPLES),
        team_name=None,
    )
    assert json.loads(shown.extra) == EXAMPLES
    fields = {
        name: {"value": value, "schema": {"type": ["string", "null"]}} for name, value in EXAMPLES.items()
    }
    meta = datamodels.ConnectionHookMetaData(
        connection_type="nairi",
        hook_class_name="airflow_provider_nairi.hooks.nairi.NairiHook",
        default_conn_name="nairi_default",
        hook_name="Nairi",
        standard_fields=None,
        extra_fields=fields,
    )
    assert meta.extra_fields == fields


def test_the_example_extras_build_a_config():
    config = ClientConfig.from_connection(host=None, password=KEY, extras=EXAMPLES)
    assert config.auth_headers() == {"Authorization": f"Bearer {KEY}"}
    assert config.proxies == {"https": "http://egress:3128"}


@pytest.mark.parametrize(
    ("former", "current", "value", "attribute", "expected"),
    [
        ("auth_header", "key_header", "bearer", "auth_header", "bearer"),
        ("proxies", "egress_urls", "http://p:1", "proxies", {"http": "http://p:1", "https": "http://p:1"}),
    ],
)
def test_existing_connections_with_the_former_names_keep_working(former, current, value, attribute, expected):
    assert parse_extras({former: value})[attribute] == expected
    assert parse_extras({current: value})[attribute] == expected
    with pytest.raises(NairiConfigurationError, match=f"'{former}' and '{current}' are the same setting"):
        parse_extras({former: value, current: value})


@pytest.mark.parametrize(("former", "current"), [("auth_header", "key_header"), ("proxies", "egress_urls")])
def test_a_stored_mask_is_refused_with_the_fix_never_sent(former, current):
    with pytest.raises(NairiConfigurationError) as info:
        ClientConfig.from_connection(host=None, password=KEY, extras={former: REDACTED})
    assert info.value.code == "redacted_extra"
    assert f"Connection extra '{former}' is '***'" in str(info.value)
    assert f"rename it to '{current}'" in str(info.value)
