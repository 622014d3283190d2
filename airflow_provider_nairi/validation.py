"""Checks of operator parameters, run before any request is sent.

Every check raises :class:`~airflow_provider_nairi.exceptions.NairiConfigurationError` whose text names
the parameter, shows the rejected value (never a secret value: these checks only ever see names, cron
expressions, time zones, numbers and flags) and says how to fix it. ``outcomes.py`` turns that error into a
failed task with no retries. The number and flag checks (:func:`check_seconds`, :func:`check_count`,
:func:`check_flag`) raise its subclass :class:`~airflow_provider_nairi.exceptions.NairiParameterError`
(also a ``ValueError``): operators, sensors and triggers call them in ``__init__``, so a wrong value is
refused while the DAG file is parsed.

Pure: imports no Airflow (croniter ships with Airflow but is a plain library).
"""

from __future__ import annotations

import math
import re
import zoneinfo
from collections.abc import Iterable, Mapping
from datetime import timedelta
from typing import Any, TypeVar

from croniter import croniter

from airflow_provider_nairi.exceptions import NairiConfigurationError, NairiParameterError

#: The contract's pattern for secret and env var names (they appear in URL paths).
T = TypeVar("T")

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


def _is_number(value: object) -> bool:
    """An ``int`` or ``float`` (``bool`` excluded: ``True`` seconds is a mistake, not 1 s) that is finite."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def check_seconds(param: str, value: T, *, optional: bool = False) -> T:
    """Return ``value`` if it is a positive, finite number of seconds (or ``None`` when ``optional``).

    Refused: ``0`` and negatives (a poll every 0 s is a busy loop, a 0 s timeout ends before it starts),
    ``nan`` (every comparison with it is false, so a deadline built from it never passes), ``inf`` (a
    deadline that never passes, and not JSON for a trigger's kwargs), booleans and strings.
    """
    if (optional and value is None) or (_is_number(value) and value > 0):  # type: ignore[operator]
        return value
    raise NairiParameterError(
        f"{param} must be positive and finite: a number of seconds such as 30"
        f"{' or None' if optional else ''} (got {value!r})."
    )


def check_sensor_timing(kwargs: Mapping[str, object]) -> None:
    """Check ``poke_interval`` and ``timeout`` among a sensor's keyword arguments, before
    ``BaseSensorOperator`` sees them (it lets ``nan`` and ``inf`` through or fails on them with a bare
    ``OverflowError``). A ``timedelta`` is checked by its seconds."""
    for param in ("poke_interval", "timeout"):
        if param in kwargs:
            value = kwargs[param]
            check_seconds(param, value.total_seconds() if isinstance(value, timedelta) else value)


def check_count(param: str, value: object) -> int:
    """Return ``value`` if it is a whole number, 0 or more (``max_transient_errors``)."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    raise NairiParameterError(f"{param} must be a whole number, 0 or more (got {value!r}).")


def check_flag(param: str, value: object) -> bool:
    """Return ``value`` if it is ``True`` or ``False`` (the string ``"false"`` would count as true)."""
    if isinstance(value, bool):
        return value
    raise NairiParameterError(f"{param} must be True or False (got {value!r}).")


def ids_of(values: str | Iterable[str | Mapping[str, Any]] | None, param: str) -> list[str] | None:
    """Normalise ids given as one id, a list of ids, or the dicts another Nairi operator returned.

    ``video_ids=upload_videos.output`` and ``artifact_ids=upload.output`` work as they are: every dict
    contributes its ``"id"``.
    """
    if values is None:
        return None
    items = (
        list(values) if isinstance(values, Iterable) and not isinstance(values, (str, Mapping)) else [values]
    )
    ids = []
    for item in items:
        value = item.get("id") if isinstance(item, Mapping) else item
        if not isinstance(value, str) or not value:
            raise NairiConfigurationError(
                f"{param}: {item!r} is not an id. Give ids such as 'vid_...' / 'art_...', or the list "
                "another Nairi operator returned (dicts with an 'id')."
            )
        ids.append(value)
    return ids
