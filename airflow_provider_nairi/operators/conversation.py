"""Ask a Nairi agent from a DAG: start a conversation, continue it, wait for the reply.

:class:`NairiConversationOperator` is the reusable part: "wait for a conversation's latest turn, deferrable or
not, and turn it into the XCom dict or an Airflow outcome". :class:`NairiStartConversationOperator` and
:class:`NairiSendMessageOperator` add what they send; another operator that obtains a conversation some other
way (a scheduled job's run) subclasses it the same way and calls :meth:`~NairiConversationOperator.wait_for`.

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
from typing import TYPE_CHECKING, Any, ClassVar, NoReturn

from airflow.providers.common.compat.sdk import AirflowException, ResumableJobMixin

from airflow_provider_nairi.exceptions import (
    NairiConflictError,
    NairiNotFoundError,
    NairiOutputError,
    NairiParameterError,
)
from airflow_provider_nairi.idempotency import task_idempotency_key
from airflow_provider_nairi.links import XCOM_CONVERSATION_ID, XCOM_CONVERSATION_URL, NairiConversationLink
from airflow_provider_nairi.operators.base import NairiBaseOperator
from airflow_provider_nairi.options import CONVERSATION_POLL_INTERVAL, resolve_deferrable
from airflow_provider_nairi.outcomes import ERROR, TIMEOUT, airflow_outcome, make_event, raise_for_event
from airflow_provider_nairi.resources.conversation import (
    ACTIVE_STATES,
    conversation_event,
    conversation_result,
    latest_reply,
)
from airflow_provider_nairi.resources.lookup import resolve_agent_id
from airflow_provider_nairi.resources.replies import BranchReply, TypedReply, repair_message
from airflow_provider_nairi.resources.waiting import Waiter, WaitOptions, seconds_left
from airflow_provider_nairi.sources import upload_sources
from airflow_provider_nairi.triggers.conversation import NairiConversationTrigger
from airflow_provider_nairi.validation import check_count, check_flag, check_label

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context


__all__ = [  # XCOM_CONVERSATION_ID moved to links, latest_reply and conversation_result to resources
    "XCOM_CONVERSATION_ID",
    "NairiConversationOperator",
    "NairiConversationSubmitOperator",
    "NairiSendMessageOperator",
    "NairiStartConversationOperator",
    "conversation_result",
    "latest_reply",
]
#: ``task_state_store`` key of the submission number whose create/send may have been sent (see
#: :meth:`NairiConversationSubmitOperator.submission_number`).
SUBMISSION_KEY = "nairi_submission"
#: XCom key of the submission a task with a reply format waits for (see
#: :meth:`NairiConversationSubmitOperator.follow`).
XCOM_JOB = "nairi_job"
#: ``next_method`` of a task Airflow resumes only to fail it (trigger timeout or crash).
TRIGGER_FAIL = "__fail__"


class NairiConversationOperator(NairiBaseOperator):
    """Base of the conversation operators: wait for a conversation's latest turn and return its reply.

    .. important::

        - **How completion is detected.** The conversation is read (``GET /conversations/{id}``) every
          ``poll_interval`` seconds until its latest turn is ``completed`` (success: the XCom dict),
          ``failed`` (task failure with the agent's error code and message; Airflow retries apply unless
          ``final_on_agent_failure``) or ``cancelled`` by someone else (final failure that says so).
        - **Deferrable.** With ``deferrable=True`` the wait happens in the triggerer
          (:class:`~airflow_provider_nairi.triggers.conversation.NairiConversationTrigger`) and frees the
          worker slot; transient API errors there are tolerated a few in a row. Without it, the worker polls
          (the client retries transient errors itself; what is left fails the task, and the retry reattaches).
        - **``timeout``** bounds the wait (seconds, from the moment waiting starts; ``None``: no bound). When
          it passes, the conversation is cancelled (unless ``keep_on_timeout``) and the task fails saying how
          long it waited; Airflow retries apply. **``execution_timeout``** is Airflow's bound on the whole
          task; when it hits a waiting worker, :meth:`on_kill` cancels the conversation, and when it fails a
          deferred wait, :meth:`resume_execution` cancels it (unless ``keep_on_timeout``).
        - **Kill.** Marking the task failed or success cancels the running turn: on the worker through
          :meth:`on_kill`, in the triggerer through the trigger's ``on_kill`` (Airflow 3.3+). Clearing a
          deferred task does not: its next try reattaches to the conversation and returns its reply (clearing
          a worker-side wait kills that try, which cancels; the next try then starts a new conversation).
          Cancel errors are logged, never raised.
        - **Errors.** API errors are translated by :mod:`airflow_provider_nairi.outcomes`: 401/403/404/413/422
          fail at once with the API's code, message and request id; 429/5xx/network let Airflow retry.

    :param wait_for_reply: wait for the turn to end; ``False`` returns at once with the id (``reply`` None).
    :param deferrable: wait in the triggerer. Default: ``[operators] default_deferrable``.
    :param poll_interval: seconds between two reads of the conversation (positive).
    :param timeout: seconds to wait for the reply, or ``None``.
    :param keep_on_timeout: leave the conversation running when ``timeout`` passes.
    :param final_on_agent_failure: a failed turn fails the task without Airflow retries.
    :param max_transient_errors: deferrable only: transient errors tolerated in a row while polling.
    :param conn_id: the Nairi connection.
    """

    operator_extra_links = (NairiConversationLink(),)

    def __init__(
        self,
        *,
        wait_for_reply: bool = True,
        deferrable: bool | None = None,
        poll_interval: float = CONVERSATION_POLL_INTERVAL,
        timeout: float | None = None,
        keep_on_timeout: bool = False,
        final_on_agent_failure: bool = False,
        max_transient_errors: int = 5,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.wait_options = WaitOptions(poll_interval, timeout, max_transient_errors)
        for flag, value in (
            ("wait_for_reply", wait_for_reply),
            ("keep_on_timeout", keep_on_timeout),
            ("final_on_agent_failure", final_on_agent_failure),
        ):
            check_flag(flag, value)
        self.wait_for_reply = wait_for_reply
        self.deferrable = resolve_deferrable(deferrable)
        self.poll_interval = poll_interval
        self.timeout = timeout
        self.keep_on_timeout = keep_on_timeout
        self.final_on_agent_failure = final_on_agent_failure
        self.max_transient_errors = max_transient_errors
        self.current_conversation_id: str | None = None

    def deadline(self) -> float | None:
        """``timeout`` seconds from now, as epoch seconds, or ``None``."""
        return self.wait_options.deadline()

    def publish(self, context: Context, conversation_id: str) -> str:
        """Remember the conversation (for :meth:`on_kill`), push its id and URL as XCom; return the URL."""
        self.current_conversation_id = conversation_id
        url = self.hook.dashboard_url("conversations", conversation_id)
        context["ti"].xcom_push(key=XCOM_CONVERSATION_ID, value=conversation_id)
        context["ti"].xcom_push(key=XCOM_CONVERSATION_URL, value=url)
        return url

    def wait_for(self, context: Context, conversation: Mapping[str, Any], turn: int | None = None) -> Any:
        """Wait for ``turn`` (default: the latest) of ``conversation`` and return the XCom dict.

        Defers (raises ``TaskDeferred``, resuming in :meth:`execute_complete`) when ``deferrable``; returns at
        once when not ``wait_for_reply``.
        """
        conversation_id = str(conversation["id"])
        url = self.publish(context, conversation_id)
        if not self.wait_for_reply:
            return conversation_result(conversation, None, url)
        if self.deferrable:
            self.defer(
                trigger=self.conversation_trigger(conversation_id, self.deadline(), turn=turn),
                method_name="execute_complete",
            )
        return self.finish(context, self.poll_here(conversation, turn))

    def conversation_trigger(
        self, conversation_id: str, deadline: float | None, **options: Any
    ) -> NairiConversationTrigger:
        """The trigger that waits in the triggerer for ``conversation_id`` with this operator's polling
        settings; ``options``: ``turn``, ``cancel_on_kill``."""
        return NairiConversationTrigger(
            conn_id=self.conn_id,
            resource_id=conversation_id,
            deadline=deadline,
            poll_interval=self.poll_interval,
            max_transient_errors=self.max_transient_errors,
            **options,
        )

    def poll_here(self, conversation: Mapping[str, Any], turn: int | None) -> dict[str, Any]:
        """Wait on the worker until the turn ends or the deadline passes; return the event (as a trigger's:
        the same :class:`~airflow_provider_nairi.resources.waiting.Waiter`, transient errors included)."""
        conversation_id = str(conversation["id"])
        latest = conversation

        def check() -> dict[str, Any] | None:
            nonlocal latest
            latest = self.hook.get_conversation(conversation_id)
            return conversation_event(latest, turn)

        waiter = Waiter(
            "conversation",
            conversation_id,
            deadline=self.deadline(),
            poll_interval=self.poll_interval,
            max_transient_errors=self.max_transient_errors,
            log=self.log,
            state=lambda: str(latest.get("status")),
            timeout_message="deadline passed",
        )
        first = conversation_event(conversation, turn)
        return first if first is not None else waiter.wait(check, checked=True)

    @airflow_outcome
    def execute_complete(self, context: Context, event: dict[str, Any]) -> Any:
        """Resume after the trigger: turn its event into the XCom dict or an outcome."""
        return self.finish(context, event)

    def finish(self, context: Context, event: Any) -> dict[str, Any]:
        """The XCom dict of a ``success`` event; for a timeout, cancel (unless kept) then fail."""
        if isinstance(event, dict) and event.get("status") == TIMEOUT:
            self.current_conversation_id = str(event.get("id"))
            kept = self.keep_on_timeout or not self.cancel_quietly()
            event = {
                **event,
                "message": f"conversation {self.current_conversation_id} did not reply within timeout="
                f"{self.timeout} s; it was {'left running' if kept else 'cancelled'}",
            }
        checked = raise_for_event(event, final_on_failure=self.final_on_agent_failure)
        conversation = checked["resource"]
        url = self.publish(context, str(conversation["id"]))
        result = conversation_result(conversation, latest_reply(self.hook, conversation), url)
        self.log.info("Nairi conversation %s turn %s: %s", result["conversation_id"], result["turn"], url)
        return result

    def cancel_quietly(self) -> bool:
        """Cancel the current conversation; log (never raise) a failure. Return whether it was cancelled."""
        conversation_id = self.current_conversation_id
        if conversation_id is None:
            return False
        try:
            self.hook.cancel_conversation(conversation_id)
        except Exception as error:
            self.log.warning("Could not cancel Nairi conversation %s: %s", conversation_id, error)
            return False
        self.log.info("Cancelled Nairi conversation %s", conversation_id)
        return True

    def on_kill(self) -> None:
        """Cancel the conversation this worker is waiting for (errors logged)."""
        if self.wait_for_reply:
            self.cancel_quietly()

    def resume_execution(self, next_method: str, next_kwargs: dict[str, Any] | None, context: Context) -> Any:
        """Resume after deferral.

        When Airflow fails the deferred wait itself (``execution_timeout`` reached the trigger, or the trigger
        crashed: ``next_method == "__fail__"``), the trigger's ``on_kill`` does not run, so the conversation
        pushed as XCom is cancelled here (unless ``keep_on_timeout``) before the failure.
        """
        try:
            return super().resume_execution(next_method, next_kwargs, context)
        except AirflowException:
            if next_method == TRIGGER_FAIL and not self.keep_on_timeout:
                ti = context["ti"]
                self.current_conversation_id = ti.xcom_pull(
                    task_ids=ti.task_id, key=XCOM_CONVERSATION_ID, map_indexes=ti.map_index
                )
                self.cancel_quietly()
            raise


class NairiConversationSubmitOperator(ResumableJobMixin, NairiConversationOperator):
    """What the start and send operators share: attachments, a durable submission, reattach on retry.

    .. important::

        **Retries and crashes.** On Airflow 3.3+ the conversation id (with the turn and a submission number)
        is kept in ``task_state_store``. A retried task whose conversation is still running reattaches to it;
        one whose turn completed returns that reply without asking again; one whose turn failed or was
        cancelled sends again. Each send carries an ``Idempotency-Key`` derived from the task instance and the
        submission number, which is stored *before* the request: a worker that dies between the request and
        storing its answer replays the same request on retry, and the API answers with the first result
        instead of creating a duplicate. Below 3.3 (no ``task_state_store``) every try sends anew.

    :param message: the prompt (templated; a value ending in ``.md``, ``.txt`` or ``.j2`` is read as a
        template file, so a prompt can live next to the DAG).
    :param artifact_ids: artifacts already uploaded to attach (templated).
    :param attachments: local paths, globs, URIs or ``ObjectStoragePath`` objects uploaded (streamed) first
        and attached (templated; see :mod:`airflow_provider_nairi.sources`). Give a ``pathlib.Path`` for a
        file whose name ends in ``.md`` / ``.txt`` / ``.j2``: a templated *string* with that ending would be
        read as a template.
    :param durable: reattach on retry through ``task_state_store`` (Airflow 3.3+).
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
    external_id_key = "nairi_conversation"
    #: What the idempotency key names (a subclass's kind of submission).
    submission_kind: ClassVar[str] = "conversation"

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
        self.result: dict[str, Any] | None = None
        #: The conversation as :meth:`submit_job` received it, if it did.
        self.snapshot: dict[str, Any] | None = None
        #: The submission being waited for (the external id; after a repair turn also ``first_turn`` and
        #: ``repairs``).
        self.job: dict[str, Any] | None = None

    def run(self, context: Context) -> Any:
        return self.execute_resumable(context)

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
        sent = self.hook.send_message(conversation_id, repair_message(errors), idempotency_key=key)
        sent_turn = sent.get("turn") if isinstance(sent.get("turn"), int) else turn + 1
        self.follow(context, {**job, "turn": sent_turn, "first_turn": first_turn, "repairs": repairs + 1})
        store = context.get("task_state_store") if self.durable else None
        if store is not None:
            store.set(self.external_id_key, self.job)
        pending = {"id": conversation_id, "status": "queued", "turns": sent_turn}
        repaired: dict[str, Any] = self.wait_for(context, pending, sent_turn)
        return repaired

    def submission_number(self, context: Context) -> int | str:
        """The number of this submission; stored before the request so that a lost answer is replayed.

        With ``task_state_store``: the stored pending number when its answer was never recorded (replay),
        else the recorded number plus one (a new conversation/turn after a failed one). Without it: the try.
        """
        store = context.get("task_state_store") if self.durable else None
        if store is None:
            return f"try-{context['ti'].try_number}"
        recorded = store.get(self.external_id_key)
        recorded_number = int(str(recorded["submission"])) if isinstance(recorded, dict) else 0
        pending = int(str(store.get(SUBMISSION_KEY) or 0))
        number = pending if pending > recorded_number else recorded_number + 1
        store.set(SUBMISSION_KEY, number)
        return number

    def idempotency_key(self, context: Context, number: int | str) -> str:
        return task_idempotency_key(context["ti"], self.submission_kind, number)

    def all_artifact_ids(self, context: Context, conversation_id: str | None = None) -> list[str]:
        """``artifact_ids`` plus the ids of the uploaded ``attachments`` (replayed on retry)."""
        ids = list(self.artifact_ids or [])
        if self.attachments:
            uploaded = upload_sources(
                self.hook, self.attachments, context["ti"], conversation_id=conversation_id
            )
            ids.extend(item["id"] for item in uploaded)
        return ids

    # ResumableJobMixin: the external id is {"conversation_id", "turn", "submission"}.

    def get_job_status(self, external_id: Any, context: Context) -> str:
        try:
            conversation = self.hook.get_conversation(external_id["conversation_id"])
        except NairiNotFoundError:
            return "gone"
        if conversation_event(conversation, external_id.get("turn")) is None:
            return "running"
        return str(conversation["status"])

    def is_job_active(self, status: str) -> bool:
        return status in ACTIVE_STATES

    def is_job_succeeded(self, status: str) -> bool:
        return status == "completed"

    def poll_until_complete(self, external_id: Any, context: Context) -> Any:
        self.follow(context, external_id)
        conversation_id = external_id["conversation_id"]
        if self.snapshot is not None and self.snapshot["id"] == conversation_id:
            conversation = self.snapshot  # the create's answer: no need to read it again
        else:
            conversation = self.hook.get_conversation(conversation_id)
        self.result = self.wait_for(context, conversation, external_id.get("turn"))
        return self.result

    def get_job_result(self, external_id: Any, context: Context) -> Any:
        if self.result is not None:
            return self.result
        self.follow(context, external_id)
        conversation = self.hook.get_conversation(external_id["conversation_id"])
        if not self.wait_for_reply:
            return conversation_result(conversation, None, self.publish(context, conversation["id"]))
        return self.finish(context, conversation_event(conversation, external_id.get("turn")))


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
        return resolve_agent_id(self.hook, self.agent_id, self.agent_name)

    def submit_job(self, context: Context) -> dict[str, Any]:
        agent_id = self.resolve_agent_id()
        artifact_ids = self.all_artifact_ids(context)
        number = self.submission_number(context)
        conversation = self.hook.create_conversation(
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
                message = self.hook.send_message(
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
