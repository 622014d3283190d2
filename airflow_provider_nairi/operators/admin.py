"""What every org-as-code operator shares: the plan's id as XCom, name look-ups, plans and removal.

The declarative operators (:mod:`.agents`, :mod:`.secrets`, :mod:`.scheduled_jobs`) all work the same way:

1. check their parameters (:mod:`airflow_provider_nairi.validation`) before any request;
2. read the current state (every page of the list, de-duplicated by the hook);
3. compare it with what the DAG declares and apply only the difference;
4. return the plan they applied as XCom: plain JSON with ids, names, actions and changed field names, never a
   secret value.

Actions in a plan are ``created``, ``updated`` (with the changed ``fields``), ``unchanged``, ``deleted`` and
``already absent``. Re-running a task after a partial failure converges: the second try reads the state the
first one left and applies what is still missing; creations carry an idempotency key derived from the task
instance, so a POST whose answer was lost is replayed by the API instead of creating a twin.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from airflow_provider_nairi.exceptions import NairiConfigurationError, NairiNotFoundError
from airflow_provider_nairi.idempotency import declaration_idempotency_key
from airflow_provider_nairi.operators.base import NairiBaseOperator
from airflow_provider_nairi.resources.lookup import find_by_name
from airflow_provider_nairi.resources.org import ORG_KINDS
from airflow_provider_nairi.validation import check_exactly_one, check_label, check_name

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context


#: XCom key of the managed resource's id, pushed besides the plan: ``vault_task.output["id"]`` in a DAG.
XCOM_ID = "id"

CREATED = "created"
UPDATED = "updated"
UNCHANGED = "unchanged"
DELETED = "deleted"
ALREADY_ABSENT = "already absent"


class NairiAdminOperator(NairiBaseOperator):
    """Base of the org-as-code operators: what :class:`~.base.NairiBaseOperator` gives (one connection, one
    hook, errors translated in one place), plus the plan's resource id as an XCom of its own.

    Subclasses implement :meth:`run`, which returns the plan (XCom ``return_value``); when the plan names
    a resource id, it is also pushed under the XCom key ``id`` (:data:`XCOM_ID`), so a downstream task can
    take ``vault_task.output["id"]``. A parameter check that fails, an API error or a name shared by two
    resources fails the task at once; 429, 5xx and network errors let Airflow's retries apply.

    :param conn_id: the Nairi connection.
    """

    def execute(self, context: Context) -> Any:
        plan = super().execute(context)
        if isinstance(plan, dict) and plan.get("id"):
            context["ti"].xcom_push(key=XCOM_ID, value=plan["id"])
        return plan

    def upsert(
        self,
        kind: str,
        name: str,
        desired: Mapping[str, Any],
        *,
        list_items: Callable[[], Iterable[Mapping[str, Any]]],
        create: Callable[..., dict[str, Any]],
        get: Callable[[str], Any],
        update: Callable[..., Any] | None = None,
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """Make the ``kind`` called ``name`` match ``desired``; return it and the plan.

        Absent: created (:meth:`create_once`). Present: ``update(id, **differing_fields)`` when some field
        differs (a kind with nothing to patch, a vault, passes an empty ``desired`` and no ``update``). The
        plan is ``{"kind", "id", "name", "action", "fields"}``.
        """
        resource = find_by_name(list_items(), name, kind)
        fields: list[str] = []
        if resource is None:
            resource = self.create_once(kind, name, desired, create=create, get=get)
            action = CREATED
        else:
            fields = changed_fields(resource, desired)
            if fields and update is not None:
                update(resource["id"], **{field: desired[field] for field in fields})
            action = UPDATED if fields else UNCHANGED
        self.log.info("Nairi %s %r (%s): %s %s", kind, name, resource["id"], action, ", ".join(fields))
        plan = {"id": resource["id"], "name": name, "action": action, "fields": fields}
        return resource, {"kind": kind.replace(" ", "_"), **plan}

    def create_once(
        self,
        kind: str,
        name: str,
        desired: Mapping[str, Any],
        *,
        create: Callable[..., dict[str, Any]],
        get: Callable[[str], Any],
    ) -> dict[str, Any]:
        """``create(name, idempotency_key=..., **desired)``, keyed on the declaration: kind, name and body.

        Not from the task instance: two DAG runs (or DAGs) that declare the same resource at once send the
        same key, so the API creates it once and replays that answer to the other (keyed on the task
        instance, both saw it absent and each created one: a twin, and every later run failed with
        ``duplicate_name``). A lost answer is replayed too. The body is part of the key, so another
        declaration is a new request (the same key with another body would be a 409). A replay of an earlier
        create whose resource was deleted since would hand back a dead id: ``get`` checks it, and on 404 the
        create is sent once more under a key naming the deleted id (the same for every task that finds it
        deleted).
        """
        parts = (f"create-{kind.replace(' ', '-')}", name, json.dumps(desired, sort_keys=True))
        resource = create(name, idempotency_key=declaration_idempotency_key(*parts), **desired)
        try:
            get(resource["id"])
        except NairiNotFoundError:
            resource = create(
                name, idempotency_key=declaration_idempotency_key(*parts, resource["id"]), **desired
            )
        return resource


def _comparable(value: Any) -> Any:
    # Lists of ids (vault_ids) are sets to the API: their order is not a difference.
    return sorted(value) if isinstance(value, list) else value


def changed_fields(current: Mapping[str, Any], desired: Mapping[str, Any]) -> list[str]:
    """Names of the ``desired`` fields whose value differs from ``current``, sorted."""
    return sorted(
        key for key, value in desired.items() if _comparable(current.get(key)) != _comparable(value)
    )


def overall_action(top: str, items: Sequence[Mapping[str, Any]] = ()) -> str:
    """The action of a whole plan: ``top``, or ``updated`` if ``top`` is ``unchanged`` but an item changed."""
    if top == UNCHANGED and any(item["action"] != UNCHANGED for item in items):
        return UPDATED
    return top


class NairiDeleteOperator(NairiAdminOperator):
    """Remove one agent, vault, scheduled job or env var, by id or by name; safe when it is already gone.

    Give ``resource_id`` or ``name`` (exactly one; env vars are addressed by name only). A name is looked up
    in the full list first: no match means ``already absent``, two matches fail with both ids. A 404 on the
    delete itself (someone removed it in between) is also ``already absent``. Returns
    ``{"kind", "id", "name", "action"}`` with ``action`` ``deleted`` or ``already absent``.

    :param kind: ``agent``, ``vault``, ``scheduled_job`` or ``env_var``.
    :param resource_id: the id (``agt_...``, ``vlt_...``, ``job_...``).
    :param name: the name.
    """

    template_fields = ("resource_id", "name")

    def __init__(
        self, *, kind: str, resource_id: str | None = None, name: str | None = None, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        if kind not in ORG_KINDS:
            raise ValueError(f"kind: {kind!r} is not one of {', '.join(ORG_KINDS)}.")
        self.kind = kind
        self.resource_id = resource_id
        self.name = name

    def run(self, context: Context) -> dict[str, Any]:
        check_exactly_one(resource_id=self.resource_id, name=self.name)
        org_kind = ORG_KINDS[self.kind]
        target: str | None
        if self.kind == "env_var":
            if self.name is None:
                raise NairiConfigurationError(
                    "resource_id: env vars have no id; give name='THE_NAME' instead."
                )
            target = check_name("name", self.name)
        elif self.name is not None:
            found = find_by_name(org_kind.list_items(self.api), check_label("name", self.name), self.kind)
            target = str(found["id"]) if found else None
        else:
            target = check_label("resource_id", self.resource_id)
        action = ALREADY_ABSENT
        if target is not None:
            try:
                org_kind.delete(self.api, target)
                action = DELETED
            except NairiNotFoundError:
                pass
        self.log.info("Nairi %s %s: %s", self.kind, self.name or self.resource_id, action)
        resource_id = None if self.kind == "env_var" else target
        return {"kind": self.kind, "id": resource_id, "name": self.name, "action": action}
