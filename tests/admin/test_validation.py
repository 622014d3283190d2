"""Parameter checks: what a user sees when a name, cron expression, time zone or id/name pair is wrong."""

from __future__ import annotations

import pytest

from airflow_provider_nairi.exceptions import NairiConfigurationError
from airflow_provider_nairi.validation import (
    check_cron,
    check_exactly_one,
    check_label,
    check_name,
    check_timezone,
)


@pytest.mark.parametrize("name", ["A", "_x", "DB_PASSWORD", "a1_b2", "X" * 128])
def test_valid_names_pass(name):
    assert check_name("secrets", name) == name


@pytest.mark.parametrize("name", ["", "1ABC", "DB-PASSWORD", "with space", "X" * 129, "é", None, 5])
def test_invalid_names_name_the_parameter_and_the_rule(name):
    with pytest.raises(NairiConfigurationError) as info:
        check_name("secrets", name)
    assert str(info.value).startswith(f"secrets: {name!r} is not a valid name")
    assert "letters, digits and underscores" in str(info.value)


@pytest.mark.parametrize("expression", ["0 9 * * 1-5", "*/15 * * * *", "0 0 1 JAN MON", "5,35 8-18 * * *"])
def test_five_field_cron_passes(expression):
    assert check_cron("cron", expression) == expression


@pytest.mark.parametrize("expression", ["61 * * * *", "0 9 * *", "* * * * * *", "@daily", "bad", "", None])
def test_bad_cron_is_refused_with_an_example(expression):
    with pytest.raises(
        NairiConfigurationError, match=r"^cron: .* is not a valid cron expression.*'0 9 \* \* 1-5'"
    ):
        check_cron("cron", expression)


@pytest.mark.parametrize("zone", ["UTC", "Europe/Paris", "America/Argentina/Buenos_Aires"])
def test_known_timezones_pass(zone):
    assert check_timezone("timezone", zone) == zone


@pytest.mark.parametrize("zone", ["Mars/Olympus", "", "../../etc/passwd", "+02:00", None])
def test_unknown_timezones_are_refused(zone):
    with pytest.raises(NairiConfigurationError, match=r"^timezone: .* is not a known time zone"):
        check_timezone("timezone", zone)


def test_exactly_one_returns_the_given_parameter():
    assert check_exactly_one(agent_id=None, agent_name="triage") == "agent_name"
    assert check_exactly_one(agent_id="agt_1", agent_name=None) == "agent_id"


@pytest.mark.parametrize(
    ("agent_id", "agent_name", "found"),
    [(None, None, "got neither"), ("agt_1", "x", "got agent_id, agent_name")],
)
def test_exactly_one_refuses_none_or_both(agent_id, agent_name, found):
    with pytest.raises(NairiConfigurationError) as info:
        check_exactly_one(agent_id=agent_id, agent_name=agent_name)
    assert str(info.value) == f"Give exactly one of agent_id or agent_name ({found})."


@pytest.mark.parametrize("value", ["", "   ", None])
def test_blank_labels_are_refused(value):
    with pytest.raises(NairiConfigurationError, match=r"^vault_name: give a non-empty name"):
        check_label("vault_name", value)
