"""Ask a Nairi agent from a DAG: start a conversation, continue it, wait for the reply.

:class:`NairiStartConversationOperator` and :class:`NairiSendMessageOperator` add what they send to the
waiting bases of :mod:`airflow_provider_nairi.operators.waiting` (``NairiConversationOperator``: the wait;
``NairiResumableOperator``: the durable submission, which a scheduled job's run shares).

Every operator here returns (XCom ``return_value``) a JSON dict::

    {"conversation_id": "conv_...", "status": "completed", "turn": 1, "reply": "the agent's text",
     "reply_message_id": "msg_...", "artifact_ids": ["art_..."], "url": "https://app.nairi.ai/conversations/..."}

and pushes ``conversation_id`` and ``conversation_url`` under the constant keys :data:`XCOM_CONVERSATION_ID`
and :data:`~airflow_provider_nairi.links.XCOM_CONVERSATION_URL` as soon as the conversation is known (the
"Nairi conversation" extra link reads the latter).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, NoReturn

from airflow_provider_nairi.exceptions import NairiConflictError, NairiOutputError, NairiParameterError
from airflow_provider_nairi.links import XCOM_CONVERSATION_ID
from airflow_provider_nairi.operators.waiting import (
    SUBMISSION_KEY,
    TRIGGER_FAIL,
    NairiConversationOperator,
    NairiResumableOperator,
)
from airflow_provider_nairi.outcomes import ERROR, TIMEOUT, airflow_outcome, make_event, raise_for_event
from airflow_provider_nairi.resources.conversation import conversation_result, latest_reply
from airflow_provider_nairi.resources.lookup import resolve_agent_id
from airflow_provider_nairi.resources.replies import BranchReply, TypedReply, repair_message
from airflow_provider_nairi.resources.waiting import seconds_left
from airflow_provider_nairi.sources import upload_sources
from airflow_provider_nairi.validation import check_count, check_flag, check_label

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context

# Moved, re-exported here: XCOM_CONVERSATION_ID (links), latest_reply and conversation_result
# (resources.conversation), NairiConversationOperator, SUBMISSION_KEY, TRIGGER_FAIL (operators.waiting).
__all__ = [
    "SUBMISSION_KEY",
    "TRIGGER_FAIL",
    "XCOM_CONVERSATION_ID",
    "NairiConversationOperator",
    "NairiConversationSubmitOperator",
    "NairiSendMessageOperator",
    "NairiStartConversationOperator",
    "conversation_result",
    "latest_reply",
]
#: XCom key of the submission a task with a reply format waits for (see
#: :meth:`NairiConversationSubmitOperator.follow`).
XCOM_JOB = "nairi_job"


class NairiConversationSubmitOperator(NairiResumableOperator):
    """What the start and send operators share: a message, its attachments and the reply's format (see
    :class:`~airflow_provider_nairi.operators.waiting.NairiResumableOperator` for retries and crashes).

    :param message: the prompt (templated; a value ending in ``.md``, ``.txt`` or ``.j2`` is read as a
        template file, so a prompt can live next to the DAG).
    :param artifact_ids: artifacts already uploaded to attach (templated).
    :param attachments: local paths, globs, URIs or ``ObjectStoragePath`` objects uploaded (streamed) first
        and attached (templated; see :mod:`airflow_provider_nairi.sources`). Give a ``pathlib.Path`` for a
        file whose name ends in ``.md`` / ``.txt`` / ``.j2``: a templated *string* with that ending would be
        read as a template.
    :param output_type: what the reply must be: a pydantic model, any type a pydantic ``TypeAdapter`` takes,
        or a JSON Schema dict (see :mod:`airflow_provider_nairi.resources.replies`). The reply (the whole
        text, or its first fenced ``json`` block) is validated and the XCom dict gains ``output``, the
        validated value as JSON (``reply`` stays the raw text). An invalid reply gets a repair turn in the
        same conversation quoting the validation errors, and the operator waits again (each turn deferrable,
        with its own idempotency key and its own ``timeout``), at most ``max_repair_turns`` times; then the
        task fails with :class:`~airflow_provider_nairi.exceptions.NairiOutputError` (no Airflow retries: see
        docs/ai-workflows.md). A retry reattaches to the latest turn and never repeats a repair turn.
    :param instruct_output: append to the message the text telling the agent the expected JSON (its schema).
    :param max_repair_turns: repair turns allowed after the first reply (0: none).
    """

    template_ext: Sequence[str] = (".md", ".txt", ".j2")

    def __init__(
        self,
        *,
        message: str,
        artifact_ids: Sequence[str] | None = None,
        attachments: Any = None,
        output_type: Any = None,
        instruct_output: bool = True,
        max_repair_turns: int = 2,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        check_count("max_repair_turns", max_repair_turns)
        check_flag("instruct_output", instruct_output)
        if output_type is not None:
            TypedReply(output_type)  # refuses, while the DAG is parsed, a type that cannot validate a reply
            if not self.wait_for_reply:
                raise NairiParameterError("output_type: a typed reply needs wait_for_reply=True.")
        self.message = message
        self.artifact_ids = artifact_ids
        self.attachments = attachments
        self.output_type = output_type
        self.instruct_output = instruct_output
        self.max_repair_turns = max_repair_turns
        #: The submission being waited for (the external id; after a repair turn also ``first_turn`` and
        #: ``repairs``).
        self.job: dict[str, Any] | None = None

    def reply_format(self) -> TypedReply | BranchReply | None:
        """What the reply must be (``None``: any text)."""
        return None if self.output_type is None else TypedReply(self.output_type)

    def first_message(self) -> str:
        """``message``, followed by the reply format's instruction unless ``instruct_output`` is false."""
        reply_format = self.reply_format()
        if reply_format is None or not self.instruct_output:
            return self.message
        return f"{self.message}\n\n{reply_format.instruction()}"

    def follow(self, context: Context, job: Mapping[str, Any]) -> None:
        """Wait for ``job`` from now on; when the reply has a format, push it as XCom :data:`XCOM_JOB`, which
        :meth:`execute_complete` reads back after a deferred wait (``airflow dags test`` drops a deferral's
        kwargs when the trigger fires; XCom lasts for the try)."""
        self.job = dict(job)
        if self.reply_format() is not None:
            context["ti"].xcom_push(key=XCOM_JOB, value=self.job)

    def poll_until_complete(self, external_id: Any, context: Context) -> Any:
        self.follow(context, external_id)
        return super().poll_until_complete(external_id, context)

    def get_job_result(self, external_id: Any, context: Context) -> Any:
        if self.result is None:
            self.follow(context, external_id)
        return super().get_job_result(external_id, context)

    def execute_complete(self, context: Context, event: dict[str, Any]) -> Any:
        if self.job is None and self.reply_format() is not None:
            ti = context["ti"]
            self.job = ti.xcom_pull(task_ids=ti.task_id, key=XCOM_JOB, map_indexes=ti.map_index)
        return super().execute_complete(context, event)

    def finish(self, context: Context, event: Any) -> dict[str, Any]:
        """The XCom dict (with ``output`` when the reply has a format), after repair turns if needed."""
        result = super().finish(context, event)
        reply_format = self.reply_format()
        if reply_format is None:
            return result
        check = reply_format.check(result["reply"])
        if check.valid:
            return {**result, "output": check.value}
        return self.repair(context, result, check.errors)

    def repair(self, context: Context, result: dict[str, Any], errors: Sequence[str]) -> dict[str, Any]:
        """Send a repair turn quoting ``errors`` and wait for its reply; after ``max_repair_turns``, fail
        with :class:`NairiOutputError`. The repairs made are counted from the turns (the reply's turn minus
        the first turn of this submission) and kept with the job, so a retry never repeats one."""
        conversation_id = str(result["conversation_id"])
        turn = result["turn"] if isinstance(result["turn"], int) else 0
        job = self.job
        if job is None:  # every path that waits sets it first; without it the repairs could not be counted
            raise NairiOutputError(
                f"conversation {conversation_id}: the task lost track of its repair turns", errors=errors
            )
        first_turn = int(job.get("first_turn", job["turn"]))
        repairs = max(turn - first_turn, int(job.get("repairs", 0)))
        if repairs >= self.max_repair_turns:
            raise NairiOutputError(
                f"the reply to turn {turn} of conversation {conversation_id} is still not valid after "
                f"{repairs} repair turn(s) (max_repair_turns={self.max_repair_turns}): " + "; ".join(errors),
                errors=errors,
                conversation_id=conversation_id,
                turn=turn,
            )
        self.log.warning(
            "Nairi conversation %s turn %s: the reply is not valid (%s); sending repair turn %s of %s",
            conversation_id,
            turn,
            "; ".join(errors),
            repairs + 1,
            self.max_repair_turns,
        )
        key = self.idempotency_key(context, f"{conversation_id}:{job['submission']}:repair:{repairs + 1}")
        sent = self.api.send_message(conversation_id, repair_message(errors), idempotency_key=key)
        sent_turn = sent.get("turn") if isinstance(sent.get("turn"), int) else turn + 1
        self.follow(context, {**job, "turn": sent_turn, "first_turn": first_turn, "repairs": repairs + 1})
        store = context.get("task_state_store") if self.durable else None
        if store is not None:
            store.set(self.external_id_key, self.job)
        pending = {"id": conversation_id, "status": "queued", "turns": sent_turn}
        repaired: dict[str, Any] = self.wait_for(context, pending, sent_turn)
        return repaired

    def all_artifact_ids(self, context: Context, conversation_id: str | None = None) -> list[str]:
        """``artifact_ids`` plus the ids of the uploaded ``attachments`` (replayed on retry)."""
        ids = list(self.artifact_ids or [])
        if self.attachments:
            uploaded = upload_sources(
                self.api, self.attachments, context["ti"], conversation_id=conversation_id
            )
            ids.extend(item["id"] for item in uploaded)
        return ids


class NairiStartConversationOperator(NairiConversationSubmitOperator):
    """Start a conversation with an agent and (by default) wait for its reply.

    Returns the XCom dict described in :mod:`airflow_provider_nairi.operators.conversation`. See
    :class:`NairiConversationOperator` for waiting, timeouts and kills, and
    :class:`NairiConversationSubmitOperator` for retries.

    :param agent_id: the agent's id (templated), or
    :param agent_name: its name (templated), resolved at execute time to exactly one agent (none or several
        fail the task without retries, naming the ids).
    :param title: the conversation's title (templated).
    :param metadata: ``{str: str}`` stored with the conversation (templated).
    """

    template_fields: Sequence[str] = (
        "message",
        "agent_id",
        "agent_name",
        "artifact_ids",
        "attachments",
        "title",
        "metadata",
    )
    submission_kind = "start-conversation"

    def __init__(
        self,
        *,
        message: str,
        agent_id: str | None = None,
        agent_name: str | None = None,
        title: str | None = None,
        metadata: Mapping[str, str] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(message=message, **kwargs)
        self.agent_id = agent_id
        self.agent_name = agent_name
        self.title = title
        self.metadata = metadata

    def resolve_agent_id(self) -> str:
        """``agent_id``, or the id of the one agent called ``agent_name``."""
        return resolve_agent_id(self.api, self.agent_id, self.agent_name)

    def submit_job(self, context: Context) -> dict[str, Any]:
        agent_id = self.resolve_agent_id()
        artifact_ids = self.all_artifact_ids(context)
        number = self.submission_number(context)
        conversation = self.api.create_conversation(
            agent_id,
            self.first_message(),
            artifact_ids=artifact_ids or None,
            title=self.title,
            metadata=dict(self.metadata) if self.metadata else None,
            idempotency_key=self.idempotency_key(context, number),
        )
        self.log.info("Started Nairi conversation %s with agent %s", conversation["id"], agent_id)
        self.publish(context, conversation["id"])
        self.snapshot = conversation
        return {"conversation_id": conversation["id"], "turn": 1, "submission": number}


class NairiSendMessageOperator(NairiConversationSubmitOperator):
    """Send the next message of a conversation and (by default) wait for the agent's reply to it.

    If the agent is still working on an earlier turn (``409 conversation_busy``), the operator waits for
    that turn to end instead of failing, within ``timeout`` (counted from the first busy answer; when it
    passes, the task fails saying the message was not sent, and Airflow retries apply). On the worker it
    tries again every ``poll_interval`` seconds. With ``deferrable=True`` it waits in the triggerer instead
    (a :class:`~airflow_provider_nairi.triggers.conversation.NairiConversationTrigger` on the current turn,
    which a kill does not cancel: that turn is not this task's) and sends when the turn ends, whatever its
    outcome. Every attempt carries the same ``Idempotency-Key``, and the attachments are uploaded once.
    Returns the XCom dict for the new turn. See :class:`NairiConversationOperator` and
    :class:`NairiConversationSubmitOperator`.

    :param conversation_id: the conversation to continue (templated), e.g.
        ``"{{ ti.xcom_pull('ask', key='conversation_id') }}"``.
    """

    template_fields: Sequence[str] = ("conversation_id", "message", "artifact_ids", "attachments")
    submission_kind = "send-message"

    def __init__(self, *, conversation_id: str, message: str, **kwargs: Any) -> None:
        super().__init__(message=message, **kwargs)
        self.conversation_id = conversation_id
        #: Set when resuming after a deferred busy wait: the uploaded artifact ids and the busy deadline.
        self.resumed_send: dict[str, Any] | None = None

    def submit_job(self, context: Context) -> dict[str, Any]:
        conversation_id = check_label("conversation_id", self.conversation_id)
        resumed = self.resumed_send
        if resumed is not None:
            artifact_ids, deadline = list(resumed["artifact_ids"]), resumed["deadline"]
        else:
            artifact_ids, deadline = self.all_artifact_ids(context, conversation_id), self.deadline()
        number = self.submission_number(context)
        key = self.idempotency_key(context, f"{conversation_id}:{number}")
        while True:
            try:
                message = self.api.send_message(
                    conversation_id,
                    self.first_message(),
                    artifact_ids=artifact_ids or None,
                    idempotency_key=key,
                )
                break
            except NairiConflictError as error:
                if error.code != "conversation_busy":
                    raise
                left = seconds_left(deadline)
                if left is not None and left <= 0:
                    self.fail_busy(conversation_id)
                if self.deferrable:
                    self.log.info("Conversation %s is busy; waiting in the triggerer", conversation_id)
                    self.defer(
                        trigger=self.conversation_trigger(conversation_id, deadline, cancel_on_kill=False),
                        method_name="send_when_idle",
                        kwargs={"artifact_ids": artifact_ids, "deadline": deadline},
                    )
                self.log.info(
                    "Conversation %s is busy; trying again in %s s", conversation_id, self.poll_interval
                )
                time.sleep(self.poll_interval)
        self.log.info("Sent turn %s of Nairi conversation %s", message.get("turn"), conversation_id)
        self.publish(context, conversation_id)
        return {"conversation_id": conversation_id, "turn": message.get("turn"), "submission": number}

    @airflow_outcome
    def send_when_idle(
        self, context: Context, event: dict[str, Any], artifact_ids: list[str], deadline: float | None
    ) -> Any:
        """Resume after a deferred busy wait: the earlier turn ended (completed, failed or cancelled: the
        conversation takes messages again), so send now, with the same idempotency key; a ``timeout`` event
        fails the task (the message was not sent), an ``error`` event fails it as any polling error does."""
        if event.get("status") == TIMEOUT:
            self.fail_busy(str(event.get("id")))
        if event.get("status") == ERROR:
            raise_for_event(event)
        self.resumed_send = {"artifact_ids": artifact_ids, "deadline": deadline}
        return self.execute(context)

    def fail_busy(self, conversation_id: str) -> NoReturn:
        """Fail the task: the conversation stayed busy past ``timeout`` (Airflow retries apply)."""
        raise_for_event(
            make_event(
                TIMEOUT,
                kind="conversation",
                resource_id=conversation_id,
                message=f"conversation {conversation_id} stayed busy for timeout={self.timeout} s; the "
                "message was not sent",
            )
        )
        raise AssertionError("unreachable: raise_for_event raises for a timeout")  # pragma: no cover
