"""Finding an org's objects by name: exactly one match, or an error that names what to fix.

Names are not unique to the API, so every look-up by name reads the whole list and refuses a name shared by
two objects (the error lists their ids).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

from airflow_provider_nairi.exceptions import NairiConflictError, NairiNotFoundError
from airflow_provider_nairi.validation import check_exactly_one, check_label

if TYPE_CHECKING:
    from airflow_provider_nairi.client.api import NairiApi


def find_by_name(items: Iterable[Mapping[str, Any]], name: str, kind: str) -> dict[str, Any] | None:
    """Return the one item called ``name``, ``None`` when there is none.

    :raises NairiConflictError: two or more items share the name; the error lists their ids, so the user can
        delete or rename the extra ones (or address one by id).
    """
    matches = [dict(item) for item in items if item.get("name") == name]
    if len(matches) > 1:
        ids = ", ".join(str(item.get("id")) for item in matches)
        raise NairiConflictError(
            f"{len(matches)} {kind}s are named {name!r} ({ids}); names must be unique for the operator to "
            "know which one to manage. Delete or rename all but one of them.",
            code="duplicate_name",
        )
    return matches[0] if matches else None


def resolve_id(
    list_items: Callable[[], Iterable[Mapping[str, Any]]],
    kind: str,
    *,
    id_param: str,
    id_value: str | None,
    name_param: str,
    name_value: str | None,
) -> str:
    """The id given as ``id_value``, or the id of the one ``kind`` called ``name_value`` (exactly one given).

    ``resolve_id(api.list_agents, "agent", id_param="agent_id", id_value=None, name_param="agent_name",
    name_value="triage")``. Checks the parameters before any request; no match raises
    :class:`NairiNotFoundError`, two matches :class:`NairiConflictError` naming the ids.
    """
    if check_exactly_one(**{id_param: id_value, name_param: name_value}) == id_param:
        return check_label(id_param, id_value)
    name = check_label(name_param, name_value)
    found = find_by_name(list_items(), name, kind)
    if found is None:
        raise NairiNotFoundError(
            f"{name_param}: no {kind} is named {name!r}; create it first or give {id_param}.",
            code="not_found",
        )
    return str(found["id"])


def resolve_agent_id(api: NairiApi, agent_id: str | None, agent_name: str | None) -> str:
    """``agent_id``, or the id of the one agent called ``agent_name``."""
    return resolve_id(
        api.list_agents,
        "agent",
        id_param="agent_id",
        id_value=agent_id,
        name_param="agent_name",
        name_value=agent_name,
    )


def resolve_job_id(api: NairiApi, job_id: str | None, job_name: str | None) -> str:
    """``job_id``, or the id of the one scheduled job called ``job_name``."""
    return resolve_id(
        api.list_scheduled_jobs,
        "scheduled job",
        id_param="job_id",
        id_value=job_id,
        name_param="job_name",
        name_value=job_name,
    )
