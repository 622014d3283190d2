"""Checks of operator parameters, run before any request is sent.

Every check raises :class:`~airflow_provider_nairi.exceptions.NairiConfigurationError` whose text names
the parameter, shows the rejected value (never a secret value: these checks only ever see names, cron
expressions and time zones) and says how to fix it. ``outcomes.py`` turns that error into a failed task
with no retries.

Pure: imports no Airflow (croniter ships with Airflow but is a plain library).
"""

from __future__ import annotations

import re
import zoneinfo
from collections.abc import Iterable

from croniter import croniter

from airflow_provider_nairi.exceptions import NairiConfigurationError

#: The contract's pattern for secret and env var names (they appear in URL paths).
NAME_PATTERN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")


def check_name(param: str, name: object) -> str:
    """Return ``name`` if it matches :data:`NAME_PATTERN` (a secret or env var name), else raise."""
    if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name):
        raise NairiConfigurationError(
            f"{param}: {name!r} is not a valid name. Use 1 to 128 characters: letters, digits and "
            "underscores, not starting with a digit (for example DB_PASSWORD)."
        )
    return name


def check_names(param: str, names: Iterable[object]) -> list[str]:
    """Check every name of a mapping or list; the error names the first bad one."""
    return [check_name(param, name) for name in names]


def check_label(param: str, value: object) -> str:
    """Return ``value`` if it is a non-blank string (an agent, vault or job name), else raise."""
    if not isinstance(value, str) or not value.strip():
        raise NairiConfigurationError(f"{param}: give a non-empty name (got {value!r}).")
    return value


def check_cron(param: str, expression: object) -> str:
    """Return ``expression`` if it is a five-field cron expression (``minute hour day month weekday``).

    Contract decision: the API's cron syntax is the classic five fields; names (``MON``, ``JAN``), ranges,
    lists and steps are accepted, while ``@daily``-style aliases and a sixth seconds field are refused, so
    that a job means the same thing on every Nairi deployment.
    """
    if not isinstance(expression, str) or len(expression.split()) != 5 or not croniter.is_valid(expression):
        raise NairiConfigurationError(
            f"{param}: {expression!r} is not a valid cron expression. Give five fields, "
            "'minute hour day-of-month month day-of-week', for example '0 9 * * 1-5' (09:00 on weekdays)."
        )
    return expression


def check_timezone(param: str, name: object) -> str:
    """Return ``name`` if it is an IANA time zone name known to this machine (``Europe/Paris``, ``UTC``)."""
    try:
        if not isinstance(name, str) or not name:
            raise ValueError(name)
        zoneinfo.ZoneInfo(name)
    except (ValueError, zoneinfo.ZoneInfoNotFoundError):
        raise NairiConfigurationError(
            f"{param}: {name!r} is not a known time zone. Give an IANA name such as 'UTC' or 'Europe/Paris'."
        ) from None
    return name


def check_exactly_one(**params: object) -> str:
    """Return the name of the one parameter that is set (not ``None``) among ``params``, else raise.

    ``check_exactly_one(agent_id=None, agent_name="triage")`` returns ``"agent_name"``.
    """
    given = [name for name, value in params.items() if value is not None]
    if len(given) != 1:
        names = " or ".join(params)
        found = f"got {', '.join(given)}" if given else "got neither"
        raise NairiConfigurationError(f"Give exactly one of {names} ({found}).")
    return given[0]
