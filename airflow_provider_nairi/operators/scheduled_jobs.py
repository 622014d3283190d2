"""Scheduled jobs as code: declare a job (:class:`NairiScheduledJobOperator`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow_provider_nairi.exceptions import NairiNotFoundError
from airflow_provider_nairi.idempotency import task_idempotency_key
from airflow_provider_nairi.operators.admin import (
    CREATED,
    UNCHANGED,
    UPDATED,
    NairiAdminOperator,
    changed_fields,
    find_by_name,
)
from airflow_provider_nairi.validation import check_cron, check_exactly_one, check_label, check_timezone

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context


class NairiScheduledJobOperator(NairiAdminOperator):
    """Ensure the scheduled job ``name`` exists: it sends ``message`` to an agent on a cron schedule.

    .. important::

        - Parameters are checked before any request: ``cron`` must be five cron fields (``'0 9 * * 1-5'``),
          ``timezone`` an IANA name, and exactly one of ``agent_id`` / ``agent_name`` given.
        - The job is found by name among all jobs of the org: absent, it is created; present, the fields that
          differ (agent, message, cron, time zone, enabled) are patched; equal, nothing is sent. Two jobs (or,
          with ``agent_name``, two agents) with the same name fail the task with their ids.
        - The create carries an idempotency key derived from the task instance, so a retry does not make a
          twin.

    Returns (XCom) ``{"kind": "scheduled_job", "id", "name", "agent_id", "action", "fields"}``.

    :param name: the job's name (templated).
    :param message: what the job sends to the agent on each run (templated).
    :param cron: five-field cron expression (templated).
    :param agent_id: the agent's id (templated), or
    :param agent_name: the agent's name, looked up at execute time (templated).
    :param timezone: IANA time zone the cron expression is read in (templated). Default ``UTC``.
    :param enabled: whether the job runs on its schedule.
    :param conn_id: the Nairi connection.
    """

    template_fields: Sequence[str] = ("name", "message", "cron", "agent_id", "agent_name", "timezone")

    def __init__(
        self,
        *,
        name: str,
        message: str,
        cron: str,
        agent_id: str | None = None,
        agent_name: str | None = None,
        timezone: str = "UTC",
        enabled: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.name = name
        self.message = message
        self.cron = cron
        self.agent_id = agent_id
        self.agent_name = agent_name
        self.timezone = timezone
        self.enabled = enabled

    def _agent_id(self) -> str:
        if check_exactly_one(agent_id=self.agent_id, agent_name=self.agent_name) == "agent_id":
            return check_label("agent_id", self.agent_id)
        agent_name = check_label("agent_name", self.agent_name)
        agent = find_by_name(self.hook.list_agents(), agent_name, "agent")
        if agent is None:
            raise NairiNotFoundError(
                f"agent_name: no agent is named {agent_name!r}; create it first (NairiAgentOperator) or give "
                "agent_id.",
                code="not_found",
            )
        return str(agent["id"])

    def apply(self, context: Context) -> dict[str, Any]:
        name = check_label("name", self.name)
        check_label("message", self.message)
        desired: dict[str, Any] = {
            "message": self.message,
            "cron": check_cron("cron", self.cron),
            "timezone": check_timezone("timezone", self.timezone),
            "enabled": bool(self.enabled),
        }
        desired["agent_id"] = self._agent_id()

        job = find_by_name(self.hook.list_scheduled_jobs(), name, "scheduled job")
        fields: list[str] = []
        if job is None:
            key = task_idempotency_key(context["ti"], "create-scheduled-job", name)
            job = self.hook.create_scheduled_job(name, idempotency_key=key, **desired)
            action = CREATED
        else:
            fields = changed_fields(job, desired)
            if fields:
                job = self.hook.update_scheduled_job(job["id"], **{field: desired[field] for field in fields})
            action = UPDATED if fields else UNCHANGED
        self.log.info("Nairi scheduled job %r (%s): %s %s", name, job["id"], action, ", ".join(fields))
        return {
            "kind": "scheduled_job",
            "id": job["id"],
            "name": name,
            "agent_id": desired["agent_id"],
            "action": action,
            "fields": fields,
        }
