"""The org's declarable objects (agents, vaults, scheduled jobs, env vars): how each is listed, read, created,
patched and deleted, as typed callables over an API object (never method names), for the org-as-code
operators.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from airflow_provider_nairi.client.api import NairiApi

Item = dict[str, Any]


@dataclass(frozen=True)
class OrgKind:
    """One kind of org object.

    :param label: how messages name it (``"scheduled job"``).
    :param create: ``create(api, name, idempotency_key=..., **fields)``; ``None``: not created by name.
    :param update: ``update(api, id, **fields)``; ``None``: nothing to patch.
    """

    label: str
    list_items: Callable[[NairiApi], Iterable[Item]]
    delete: Callable[[NairiApi, str], None]
    get: Callable[[NairiApi, str], Item] | None = None
    create: Callable[..., Item] | None = None
    update: Callable[..., Item] | None = None

    def bound(self, api: NairiApi) -> dict[str, Callable[..., Any]]:
        """``list_items``, ``get``, ``create`` and ``update`` bound to ``api`` (those the kind has), as
        keyword arguments of :meth:`~airflow_provider_nairi.operators.admin.NairiAdminOperator.upsert`."""
        calls: dict[str, Callable[..., Any] | None] = {
            "list_items": lambda: self.list_items(api),
            "get": None if self.get is None else lambda object_id: self.get(api, object_id),  # type: ignore[misc]
            "create": None if self.create is None else lambda *a, **k: self.create(api, *a, **k),  # type: ignore[misc]
            "update": None if self.update is None else lambda *a, **k: self.update(api, *a, **k),  # type: ignore[misc]
        }
        return {name: call for name, call in calls.items() if call is not None}


#: Every declarable kind, by the name ``NairiDeleteOperator(kind=...)`` takes.
ORG_KINDS: dict[str, OrgKind] = {
    "agent": OrgKind(
        "agent",
        list_items=lambda api: api.list_agents(),
        delete=lambda api, agent_id: api.delete_agent(agent_id),
        get=lambda api, agent_id: api.get_agent(agent_id),
        create=lambda api, *args, **kwargs: api.create_agent(*args, **kwargs),
        update=lambda api, agent_id, **fields: api.update_agent(agent_id, **fields),
    ),
    "vault": OrgKind(
        "vault",
        list_items=lambda api: api.list_vaults(),
        delete=lambda api, vault_id: api.delete_vault(vault_id),
        get=lambda api, vault_id: api.get_vault(vault_id),
        create=lambda api, *args, **kwargs: api.create_vault(*args, **kwargs),
    ),
    "scheduled_job": OrgKind(
        "scheduled job",
        list_items=lambda api: api.list_scheduled_jobs(),
        delete=lambda api, job_id: api.delete_scheduled_job(job_id),
        get=lambda api, job_id: api.get_scheduled_job(job_id),
        create=lambda api, *args, **kwargs: api.create_scheduled_job(*args, **kwargs),
        update=lambda api, job_id, **fields: api.update_scheduled_job(job_id, **fields),
    ),
    "env_var": OrgKind(
        "env var",
        list_items=lambda api: api.list_env_vars(),
        delete=lambda api, name: api.delete_env_var(name),
    ),
}
