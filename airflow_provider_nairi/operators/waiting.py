"""The operators that wait: the bases of every operator whose remote work takes a while.

- :class:`NairiConversationOperator`: wait for a conversation's latest turn, deferrable or not, and turn it
  into the XCom dict (:func:`~airflow_provider_nairi.resources.conversation.conversation_result`) or an
  Airflow outcome; cancel it on kill and timeout.
- :class:`NairiResumableOperator`: submit work that is a conversation (start, send, run a scheduled job)
  durably, and reattach to it on retry (Airflow 3.3+ ``task_state_store``).
- :class:`NairiVideoOperator`: start video processing and wait until it ends.

The wait itself is :class:`~airflow_provider_nairi.resources.waiting.Waiter` on the worker and the
resource's trigger in the triggerer; the options are those of :mod:`airflow_provider_nairi.options`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar

from airflow.providers.common.compat.sdk import AirflowException, ResumableJobMixin

from airflow_provider_nairi.exceptions import NairiNotFoundError
from airflow_provider_nairi.idempotency import task_idempotency_key
from airflow_provider_nairi.lineage import Lineage, conversation_lineage, video_lineage
from airflow_provider_nairi.links import (
    XCOM_CONVERSATION_ID,
    XCOM_CONVERSATION_URL,
    NairiConversationLink,
    NairiVideoLink,
    publish_video_link,
)
from airflow_provider_nairi.operators.base import NairiBaseOperator
from airflow_provider_nairi.options import CONVERSATION_POLL_INTERVAL, VIDEO_POLL_INTERVAL, resolve_deferrable
from airflow_provider_nairi.outcomes import TIMEOUT, airflow_outcome, raise_for_event
from airflow_provider_nairi.resources.conversation import (
    ACTIVE_STATES,
    conversation_event,
    conversation_result,
    latest_reply,
)
from airflow_provider_nairi.resources.video import KIND as VIDEO
from airflow_provider_nairi.resources.video import check_videos, videos_id
from airflow_provider_nairi.resources.waiting import Waiter, WaitOptions
from airflow_provider_nairi.triggers.conversation import NairiConversationTrigger
from airflow_provider_nairi.triggers.video import NairiVideoTrigger
from airflow_provider_nairi.validation import check_flag

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context

#: ``task_state_store`` key of the submission number whose create/send may have been sent (see
#: :meth:`NairiResumableOperator.submission_number`).
SUBMISSION_KEY = "nairi_submission"
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
            latest = self.api.get_conversation(conversation_id)
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
            last_answer=lambda: self.api.last_answer,
        )
        first = waiter.read(lambda: conversation_event(conversation, turn))
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
        result = conversation_result(conversation, latest_reply(self.api, conversation), url)
        self.log.info("Nairi conversation %s turn %s: %s", result["conversation_id"], result["turn"], url)
        return result

    def lineage(self, namespace: str, result: Any) -> Lineage | None:
        """The attached artifacts read, the reply's artifacts written, the conversation (run facet) and the
        agent when the task names it (job facet)."""
        if not isinstance(result, Mapping):
            return None
        agent = getattr(self, "agent_id", None) or getattr(self, "agent_name", None)
        given = getattr(self, "artifact_ids", None) or []
        return conversation_lineage(
            namespace, result, agent=agent, attachments=[i for i in given if isinstance(i, str)]
        )

    def cancel_quietly(self) -> bool:
        """Cancel the current conversation; log (never raise) a failure. Return whether it was cancelled."""
        conversation_id = self.current_conversation_id
        if conversation_id is None:
            return False
        try:
            self.api.cancel_conversation(conversation_id)
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


class NairiResumableOperator(ResumableJobMixin, NairiConversationOperator):
    """An operator that submits work which is a conversation (a start, a send, a scheduled job's run) and
    waits for it: a durable submission, reattach on retry.

    Subclasses implement ``submit_job(context)`` (returning ``{"conversation_id", "turn", "submission"}``,
    with the number from :meth:`submission_number` and a key from :meth:`idempotency_key`).

    .. important::

        **Retries and crashes.** On Airflow 3.3+ the conversation id (with the turn and a submission number)
        is kept in ``task_state_store``. A retried task whose conversation is still running reattaches to it;
        one whose turn completed returns that reply without asking again; one whose turn failed or was
        cancelled sends again. Each send carries an ``Idempotency-Key`` derived from the task instance and the
        submission number, which is stored *before* the request: a worker that dies between the request and
        storing its answer replays the same request on retry, and the API answers with the first result
        instead of creating a duplicate. Below 3.3 (no ``task_state_store``) every try sends anew.

    :param durable: reattach on retry through ``task_state_store`` (Airflow 3.3+).
    """

    external_id_key = "nairi_conversation"
    #: What the idempotency key names (a subclass's kind of submission).
    submission_kind: ClassVar[str] = "conversation"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.result: dict[str, Any] | None = None
        #: The conversation as :meth:`submit_job` received it, if it did.
        self.snapshot: dict[str, Any] | None = None

    def run(self, context: Context) -> Any:
        return self.execute_resumable(context)

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

    # ResumableJobMixin: the external id is {"conversation_id", "turn", "submission"}.

    def get_job_status(self, external_id: Any, context: Context) -> str:
        try:
            conversation = self.api.get_conversation(external_id["conversation_id"])
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
        conversation_id = external_id["conversation_id"]
        if self.snapshot is not None and self.snapshot["id"] == conversation_id:
            conversation = self.snapshot  # the create's answer: no need to read it again
        else:
            conversation = self.api.get_conversation(conversation_id)
        self.result = self.wait_for(context, conversation, external_id.get("turn"))
        return self.result

    def get_job_result(self, external_id: Any, context: Context) -> Any:
        if self.result is not None:
            return self.result
        conversation = self.api.get_conversation(external_id["conversation_id"])
        if not self.wait_for_reply:
            return conversation_result(conversation, None, self.publish(context, conversation["id"]))
        return self.finish(context, conversation_event(conversation, external_id.get("turn")))


class NairiVideoOperator(NairiBaseOperator):
    """Base of the operators that start video processing and, by default, wait until it ends.

    How completion is detected: every ``poll_interval`` seconds each video is read (``GET /videos/{id}``); the
    wait ends when all are ``ready`` (the XCom is the list of Video objects) or as soon as one is ``failed``
    (the task fails with the API's reason). ``timeout`` is an absolute budget for the wait, counted from the
    start of processing; when it passes the task fails and Airflow's retries apply (the videos are left
    alone). With ``deferrable=True`` the wait happens in the triggerer (:class:`NairiVideoTrigger`), otherwise
    on the worker: the same wait either way (:mod:`airflow_provider_nairi.resources.waiting`).

    :param wait_until_ready: wait for processing to end; ``False`` returns the videos as ``processing``.
    :param deferrable, poll_interval, timeout, max_transient_errors: the waiting options
        (:mod:`airflow_provider_nairi.options`; ``timeout`` ``None``: no bound of its own).
    :param conn_id: the Nairi connection.
    """

    #: A ``failed`` video fails the task without Airflow retries (retrying would not change it).
    final_on_failure: ClassVar[bool] = True
    operator_extra_links = (NairiVideoLink(),)

    def __init__(
        self,
        *,
        wait_until_ready: bool = True,
        deferrable: bool | None = None,
        poll_interval: float = VIDEO_POLL_INTERVAL,
        timeout: float | None = None,
        max_transient_errors: int = 5,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.wait_options = WaitOptions(poll_interval, timeout, max_transient_errors)
        self.wait_until_ready = check_flag("wait_until_ready", wait_until_ready)
        self.deferrable = resolve_deferrable(deferrable)
        self.poll_interval = poll_interval
        self.timeout = timeout
        self.max_transient_errors = max_transient_errors

    def start(self, context: Context) -> list[dict[str, Any]]:
        """Start processing; return the Video objects."""
        raise NotImplementedError

    def run(self, context: Context) -> list[dict[str, Any]]:
        videos = self.start(context)
        video_ids = [video["id"] for video in videos]
        publish_video_link(self.hook, context, video_ids)
        if not self.wait_until_ready:
            return videos
        if self.deferrable:
            self.defer(
                trigger=NairiVideoTrigger(
                    conn_id=self.conn_id,
                    video_ids=video_ids,
                    deadline=self.wait_options.deadline(),
                    poll_interval=self.poll_interval,
                    max_transient_errors=self.max_transient_errors,
                ),
                method_name="execute_complete",
            )
        waiter = Waiter(
            VIDEO,
            videos_id(video_ids),
            deadline=self.wait_options.deadline(),
            poll_interval=self.poll_interval,
            max_transient_errors=self.max_transient_errors,
            log=self.log,
            state=lambda: "processing",
            timeout_message=self.timeout_text(video_ids),
            last_answer=lambda: self.api.last_answer,
        )
        return self.execute_complete(context, waiter.wait(lambda: check_videos(self.api, video_ids)))

    def timeout_text(self, video_ids: list[str]) -> str:
        """What a timeout says, on the worker and deferred alike."""
        waited = "at the deadline" if self.timeout is None else f"after {self.timeout:g} s"
        return f"video(s) {', '.join(video_ids)} not ready {waited}"

    def lineage(self, namespace: str, result: Any) -> Lineage | None:
        """The videos written; an upload's sources as given, when they are plain paths or URIs."""
        given = getattr(self, "sources", None)
        given = [given] if isinstance(given, str) else given if isinstance(given, list) else []
        plain = [s for s in given if isinstance(s, str) and not any(c in s for c in "*?[")]
        return video_lineage(namespace, result or [], plain)

    def execute_complete(self, context: Context, event: dict[str, Any]) -> list[dict[str, Any]]:
        """Resume after the wait: the ready videos, or the outcome of a failure, timeout or polling error."""
        if isinstance(event, dict) and event.get("status") == TIMEOUT:
            video_ids = [str(video_id) for video_id in str(event.get("id")).split(", ")]
            event = {**event, "message": self.timeout_text(video_ids)}
        ready: list[dict[str, Any]] = raise_for_event(event, final_on_failure=self.final_on_failure)[
            "resource"
        ]["videos"]
        return ready
