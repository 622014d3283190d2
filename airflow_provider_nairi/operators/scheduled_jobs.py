"""Scheduled jobs as code: declare one (:class:`NairiScheduledJobOperator`), run it now and wait for its
reply (:class:`NairiRunScheduledJobOperator`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow_provider_nairi.operators.admin import NairiAdminOperator
from airflow_provider_nairi.operators.waiting import NairiResumableOperator
from airflow_provider_nairi.resources.lookup import resolve_agent_id, resolve_job_id
from airflow_provider_nairi.resources.org import ORG_KINDS
from airflow_provider_nairi.validation import check_cron, check_flag, check_label, check_timezone

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context


class NairiScheduledJobOperator(NairiAdminOperator):
    """Ensure the scheduled job ``name`` exists: it sends ``message`` to an agent on a cron schedule.

    .. important::

        - Parameters are checked before any request (literal ``cron`` and ``timezone`` already when the DAG
          file is parsed): ``cron`` must be five cron fields (``'0 9 * * 1-5'``), ``timezone`` an IANA name,
          and exactly one of ``agent_id`` / ``agent_name`` given.
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
        # Literal values are checked when the DAG is parsed; templated ones after rendering, in run().
        if "{{" not in str(cron):
            check_cron("cron", cron)
        if "{{" not in str(timezone):
            check_timezone("timezone", timezone)
        check_flag("enabled", enabled)

    def run(self, context: Context) -> dict[str, Any]:
        name = check_label("name", self.name)
        check_label("message", self.message)
        desired: dict[str, Any] = {
            "message": self.message,
            "cron": check_cron("cron", self.cron),
            "timezone": check_timezone("timezone", self.timezone),
            "enabled": bool(self.enabled),
        }
        desired["agent_id"] = resolve_agent_id(self.api, self.agent_id, self.agent_name)

        _, plan = self.upsert("scheduled job", name, desired, **ORG_KINDS["scheduled_job"].bound(self.api))
        return {**plan, "agent_id": desired["agent_id"]}


class NairiRunScheduledJobOperator(NairiResumableOperator):
    """Run a scheduled job now (``POST /scheduled-jobs/{id}/run``) and, by default, wait for the reply.

    The run starts a conversation with the job's agent and message. From there the operator behaves exactly as
    :class:`~airflow_provider_nairi.operators.conversation.NairiStartConversationOperator`: same wait (on the
    worker or deferred to the same trigger), same ``timeout`` / ``on_kill`` / cancel behaviour, same outcomes,
    same XCom dict (``conversation_id``, ``status``, ``turn``, ``reply``, ``reply_message_id``,
    ``artifact_ids``, ``url``) and the same "Nairi conversation" link.

    .. important::

        **Retries.** The run request carries an ``Idempotency-Key`` derived from the task instance and a
        submission number kept in ``task_state_store`` (Airflow 3.3+): a retry after a lost answer replays
        the first run instead of starting a second conversation, a retry while the conversation still runs
        reattaches to it, and a retry after a failed turn runs the job again. Below 3.3 every try runs anew.

    :param job_id: the job's id (templated), or
    :param job_name: its name (templated), resolved at execute time to exactly one job (none or several fail
        the task without retries, naming the ids).

    Every parameter of :class:`~airflow_provider_nairi.operators.waiting.NairiConversationOperator`
    applies (``wait_for_reply``, ``deferrable``, ``poll_interval``, ``timeout``, ...).
    """

    template_fields: Sequence[str] = ("job_id", "job_name")
    submission_kind = "run-scheduled-job"

    def __init__(self, *, job_id: str | None = None, job_name: str | None = None, **kwargs: Any) -> None:
        # The job sends its own message: a message or attachment given here would be silently dropped.
        given = sorted(name for name in ("message", "artifact_ids", "attachments") if name in kwargs)
        if given:
            raise ValueError(
                f"NairiRunScheduledJobOperator does not take {', '.join(given)}: the job sends its own "
                "message. Change the job with NairiScheduledJobOperator, or use "
                "NairiStartConversationOperator."
            )
        super().__init__(**kwargs)
        self.job_id = job_id
        self.job_name = job_name

    def submit_job(self, context: Context) -> dict[str, Any]:
        job_id = resolve_job_id(self.api, self.job_id, self.job_name)
        number = self.submission_number(context)
        key = self.idempotency_key(context, f"{job_id}:{number}")
        conversation = self.api.run_scheduled_job(job_id, idempotency_key=key)
        self.log.info("Ran Nairi scheduled job %s: conversation %s", job_id, conversation["id"])
        self.publish(context, conversation["id"])
        return {
            "conversation_id": conversation["id"],
            "turn": conversation.get("turns"),
            "submission": number,
        }
