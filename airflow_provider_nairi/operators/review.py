"""Human review of an agent's reply, on Airflow's human-in-the-loop operators (Airflow 3.1+).

:class:`NairiReviewOperator` is one round: it shows the reviewer the conversation's latest reply (and its
artifacts) with the choices Approve, Request changes (with a free-text field) and Reject. :func:`nairi_review`
builds the loop as a task group, one review task per round::

    review_1 ──Request changes──► revise_1 ──► review_2 ──► ... ──► review_N
        │                                          │                  │
        └──────────────Approve──────────► approved ◄──────────────────┘

- **Approve**: ``approved`` returns the conversation result of the approved turn (the conversation
  operators' XCom dict) and the tasks after the group run.
- **Request changes**: ``revise_i`` sends the reviewer's text as the next turn of the same conversation and
  waits for the reply (a :class:`~airflow_provider_nairi.operators.conversation.NairiSendMessageOperator`:
  deferrable, idempotent, with ``output_type`` the revised reply is validated and repaired first); then the
  next round shows that reply. The last round offers only Approve and Reject.
- **Reject**: everything after the review is skipped (not a failure), as Airflow's ``ApprovalOperator`` does.
- **Nobody answers** within ``timeout`` (per round): the round fails (Airflow's ``HITLTimeoutError``) and so
  does the group; a retry of that round asks again.

Why one task per round: Airflow stores one human-in-the-loop request per task *try*, and asking again within
a try keeps the first request's subject and body, so a single task could only ever show round 1's reply. One
task per round shows each reviewer the reply they are deciding on, and keeps every decision in the UI.

No worker slot is held while a human thinks: on Airflow 3.3 a round waits in the ``awaiting_input`` state
(no triggerer needed); on 3.1 and 3.2 it defers to Airflow's ``HITLTrigger``. Before 3.1 both refuse when
the DAG is parsed, naming the version.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import BaseOperator, BranchMixIn, Param, TaskGroup

from airflow_provider_nairi.exceptions import NairiConfigurationError, NairiOutputError, NairiParameterError
from airflow_provider_nairi.hook_mixin import NairiHookMixin
from airflow_provider_nairi.links import XCOM_CONVERSATION_URL, NairiConversationLink
from airflow_provider_nairi.operators.conversation import NairiSendMessageOperator
from airflow_provider_nairi.outcomes import airflow_outcome
from airflow_provider_nairi.resources.conversation import conversation_result, latest_reply
from airflow_provider_nairi.resources.replies import TypedReply
from airflow_provider_nairi.validation import check_count, check_label

try:  # the module raises at import before Airflow 3.1
    from airflow.providers.standard.operators.hitl import HITLOperator
except Exception:  # AirflowOptionalProviderFeatureException, or no standard provider
    HITLOperator = BaseOperator  # type: ignore[misc,assignment]  # NairiReviewOperator refuses in __init__

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context

APPROVE = "Approve"
REQUEST_CHANGES = "Request changes"
REJECT = "Reject"
#: The form field of "Request changes".
CHANGES = "changes"
#: Longest reply shown in the review form, in characters (the rest is on the conversation's page).
MAX_SHOWN_CHARS = 20_000
#: Most artifacts listed in the review form.
MAX_SHOWN_ARTIFACTS = 20
#: XCom key of the reviewed conversation result, read back when the reviewer answers.
XCOM_REVIEWED = "nairi_reviewed"
#: What a revise turn says when the reviewer asked for changes without writing any.
NO_CHANGES_GIVEN = "The reviewer asked for changes without saying which; please revise your answer."


def require_hitl(what: str) -> None:
    """Refuse (when the DAG is parsed) on an Airflow without human-in-the-loop operators."""
    if HITLOperator is BaseOperator:
        from airflow import __version__  # noqa: PLC0415

        raise NairiConfigurationError(
            f"{what} needs Airflow 3.1 or later (human-in-the-loop operators of "
            f"apache-airflow-providers-standard); this is Airflow {__version__}."
        )


def fenced(text: str) -> str:
    """``text`` in a Markdown code fence longer than any run of backticks in it (agent text is never
    rendered as Markdown or HTML in the form)."""
    longest = run = 0
    for char in text:
        run = run + 1 if char == "`" else 0
        longest = max(longest, run)
    fence = "`" * max(3, longest + 1)
    return f"{fence}text\n{text}\n{fence}"


class NairiReviewOperator(NairiHookMixin, HITLOperator, BranchMixIn):
    """One review round of a conversation's latest reply (see the module docstring for the loop).

    Returns (XCom) ``{"decision": "approve" | "request_changes" | "reject", "changes": str, "round": int,
    "result": <the conversation operators' XCom dict of the reviewed turn>, "responded_by": {"id", "name"} |
    None}``. Approve follows every downstream task but ``request_changes_to``; Request changes follows only
    that task; Reject skips them all.

    :param conversation_id: the conversation under review (templated).
    :param assigned_users: who may answer: ``{"id": ..., "name": ...}`` or a list of them (``None``: anyone
        allowed by Airflow's auth manager).
    :param timeout: how long the reviewer has (a ``timedelta`` or seconds; ``None``: no bound); then the
        task fails.
    :param request_changes_to: the task that sends the requested changes (offers "Request changes" when set).
    :param review_round: this round's number, shown in the subject.
    :param review_rounds: the number of rounds, shown in the subject.
    :param output_type: what the reply under review must be (see the conversation operators): the result
        gains ``output``, the validated value, as theirs does; a reply that is not valid fails the round with
        :class:`~airflow_provider_nairi.exceptions.NairiOutputError` before anyone is asked (give the
        drafting task the same ``output_type``: it repairs the reply first).
    :param conn_id: the Nairi connection.
    """

    template_fields: Sequence[str] = ("conversation_id",)
    operator_extra_links = (NairiConversationLink(),)
    inherits_from_skipmixin = True

    def __init__(
        self,
        *,
        conversation_id: str,
        assigned_users: Any = None,
        timeout: timedelta | float | None = None,
        request_changes_to: str | None = None,
        review_round: int = 1,
        review_rounds: int = 1,
        output_type: Any = None,
        conn_id: str = "nairi_default",
        **kwargs: Any,
    ) -> None:
        require_hitl("NairiReviewOperator")
        if output_type is not None:
            TypedReply(output_type)  # refuses, while the DAG is parsed, a type that cannot validate a reply
        check_count("review_round", review_round)
        check_count("review_rounds", review_rounds)
        if isinstance(timeout, bool) or not (timeout is None or isinstance(timeout, (int, float, timedelta))):
            raise NairiParameterError(f"timeout: {timeout!r} is neither a timedelta nor seconds.")
        response_timeout = timedelta(seconds=timeout) if isinstance(timeout, (int, float)) else timeout
        options = [APPROVE, REQUEST_CHANGES, REJECT] if request_changes_to else [APPROVE, REJECT]
        # Airflow hands the DAG's params in too (the form shows only the task's own).
        params = kwargs.pop("params", None) or {}
        params = dict(params) if isinstance(params, dict) else params
        # Optional ("null" in its type): Airflow's UI disables every option while a required field is empty,
        # so a required field would keep Approve and Reject greyed out until the reviewer typed something.
        params[CHANGES] = Param(
            "", type=["null", "string"], title="Requested changes (for Request changes)", source="task"
        )
        super().__init__(
            subject=f"Review the agent's reply (round {review_round} of {review_rounds})",
            options=options,
            params=params,
            assigned_users=assigned_users,
            response_timeout=response_timeout,
            **kwargs,
        )
        self.conversation_id = conversation_id
        self.request_changes_to = request_changes_to
        self.review_round = review_round
        self.review_rounds = review_rounds
        self.output_type = output_type
        self.conn_id = conn_id

    @airflow_outcome
    def execute(self, context: Context) -> Any:
        """Read the latest reply, write the review request with it, and wait for the reviewer (a Nairi
        error ends the task as everywhere: :func:`~airflow_provider_nairi.outcomes.airflow_outcome`)."""
        result = self.reviewed()
        context["ti"].xcom_push(key=XCOM_REVIEWED, value=result)
        context["ti"].xcom_push(
            key=XCOM_CONVERSATION_URL, value=result["url"]
        )  # the "Nairi conversation" link
        self.body = self.review_body(result)  # set after rendering: the agent's text is never a template
        return super().execute(context)

    def reviewed(self) -> dict[str, Any]:
        """The conversation result of the latest reply (with ``output`` when ``output_type`` is set)."""
        conversation_id = check_label("conversation_id", self.conversation_id)
        conversation = self.api.get_conversation(conversation_id)
        url = self.hook.dashboard_url("conversations", conversation_id)
        result = conversation_result(conversation, latest_reply(self.api, conversation), url)
        if self.output_type is None:
            return result
        check = TypedReply(self.output_type).check(result["reply"])
        if not check.valid:
            raise NairiOutputError(
                f"the reply to turn {result['turn']} of conversation {conversation_id} under review is not "
                "valid for output_type (give the drafting task the same output_type): "
                + "; ".join(check.errors),
                errors=check.errors,
                conversation_id=conversation_id,
                turn=result["turn"] if isinstance(result["turn"], int) else None,
            )
        return {**result, "output": check.value}

    def review_body(self, result: Mapping[str, Any]) -> str:
        """The form's Markdown: the reply (fenced, cut at :data:`MAX_SHOWN_CHARS`), its artifacts, the
        link."""
        text = result["reply"] if isinstance(result["reply"], str) else "(no reply)"
        shown = text[:MAX_SHOWN_CHARS]
        if len(text) > MAX_SHOWN_CHARS:
            shown += f"\n[... {len(text) - MAX_SHOWN_CHARS} more characters on the conversation's page]"
        lines = [
            f"Turn {result['turn']} of [conversation {result['conversation_id']}]({result['url']}), "
            f"status {result['status']}:",
            "",
            fenced(shown),
        ]
        artifact_ids = list(result["artifact_ids"])
        if artifact_ids:
            lines += ["", "Artifacts (on the conversation's page):"]
            lines += [f"- `{artifact_id}`" for artifact_id in artifact_ids[:MAX_SHOWN_ARTIFACTS]]
            if len(artifact_ids) > MAX_SHOWN_ARTIFACTS:
                lines.append(f"- ... and {len(artifact_ids) - MAX_SHOWN_ARTIFACTS} more")
        if self.request_changes_to:
            lines += [
                "",
                f"*Request changes* sends your text to the agent as the next turn; round "
                f"{self.review_round + 1} then shows its reply.",
            ]
        return "\n".join(lines)

    def execute_complete(self, context: Context, event: dict[str, Any]) -> Any:
        """The reviewer answered (or the time ran out: Airflow's ``HITLTimeoutError``)."""
        answer = super().execute_complete(context, event)
        ti = context["ti"]
        chosen = answer["chosen_options"][0]
        changes = str((answer["params_input"] or {}).get(CHANGES) or "").strip()
        decision = {APPROVE: "approve", REQUEST_CHANGES: "request_changes", REJECT: "reject"}[chosen]
        outcome = {
            "decision": decision,
            "changes": (changes or NO_CHANGES_GIVEN) if decision == "request_changes" else changes,
            "round": self.review_round,
            "result": ti.xcom_pull(task_ids=ti.task_id, key=XCOM_REVIEWED, map_indexes=ti.map_index),
            "responded_by": answer["responded_by_user"],
        }
        self.log.info("Review round %s: %s", self.review_round, chosen)
        # Pushed before branching: a skip of an unmapped task's siblings ends the task before Airflow pushes.
        ti.xcom_push(key="return_value", value=outcome)
        downstream = sorted(self.downstream_task_ids)
        if decision == "approve":
            self.do_branch(context, [t for t in downstream if t != self.request_changes_to])
        elif decision == "request_changes" and self.request_changes_to:
            self.do_branch(context, [self.request_changes_to])
        else:
            self.do_branch(context, [])
        return outcome


class NairiApprovedReplyOperator(BaseOperator):
    """The end of a :func:`nairi_review` group: returns the conversation result of the approved turn (runs
    when one round approved; skipped when a round rejected).

    :param review_task_ids: the review rounds' task ids.
    """

    def __init__(self, *, review_task_ids: Sequence[str], **kwargs: Any) -> None:
        kwargs.setdefault("trigger_rule", "none_failed_min_one_success")
        super().__init__(**kwargs)
        self.review_task_ids = list(review_task_ids)

    def execute(self, context: Context) -> Any:
        ti = context["ti"]
        for task_id in self.review_task_ids:
            outcome = ti.xcom_pull(task_ids=task_id, map_indexes=ti.map_index)
            if isinstance(outcome, dict) and outcome.get("decision") == "approve":
                return outcome["result"]
        raise NairiConfigurationError("no review round approved, yet the approved task ran")


def nairi_review(
    *,
    group_id: str = "review",
    conversation_id: Any,
    assigned_users: Any = None,
    max_iterations: int = 3,
    timeout: timedelta | float | None = None,
    output_type: Any = None,
    max_repair_turns: int = 2,
    conn_id: str = "nairi_default",
    **send_kwargs: Any,
) -> TaskGroup:
    """A task group that has a human review the conversation's latest reply, at most ``max_iterations``
    rounds (see the module docstring). Use it like a task: ``draft >> nairi_review(...) >> publish``; its
    ``approved`` task returns the approved turn's conversation result.

    :param conversation_id: the conversation (templated string or an ``XComArg``).
    :param assigned_users, timeout: see :class:`NairiReviewOperator` (``timeout`` is per round).
    :param max_iterations: review rounds at most (1: a plain approve/reject gate).
    :param output_type, max_repair_turns: a revised reply must be this type, repaired as the conversation
        operators do, before it is shown (a reply under review has already passed ``output_type``); each
        round checks the reply it shows, and ``approved`` returns it with ``output``, the validated value.
    :param send_kwargs: more keywords of the revise turns
        (:class:`~airflow_provider_nairi.operators.conversation.NairiSendMessageOperator`:
        ``deferrable``, ``poll_interval``, ``timeout`` is named ``reply_timeout`` here...).
    """
    require_hitl("nairi_review")
    check_count("max_iterations", max_iterations)
    if max_iterations < 1:
        raise NairiParameterError("max_iterations: at least 1 review round.")
    if "timeout" in send_kwargs or "message" in send_kwargs:
        raise NairiParameterError(
            "nairi_review: the revise turns take reply_timeout, and their message is the reviewer's."
        )
    reply_timeout = send_kwargs.pop("reply_timeout", None)
    with TaskGroup(group_id=group_id) as group:
        reviews: list[NairiReviewOperator] = []
        previous: BaseOperator | None = None
        for number in range(1, max_iterations + 1):
            last = number == max_iterations
            review = NairiReviewOperator(
                task_id=f"review_{number}",
                conversation_id=conversation_id,
                assigned_users=assigned_users,
                timeout=timeout,
                request_changes_to=None if last else group.child_id(f"revise_{number}"),  # type: ignore[no-untyped-call]
                review_round=number,
                review_rounds=max_iterations,
                output_type=output_type,
                conn_id=conn_id,
            )
            if previous is not None:
                previous >> review
            reviews.append(review)
            if not last:
                previous = NairiSendMessageOperator(
                    task_id=f"revise_{number}",
                    conversation_id=conversation_id,
                    message=f"{{{{ ti.xcom_pull(task_ids='{review.task_id}')['changes'] }}}}",
                    output_type=output_type,
                    instruct_output=False,
                    max_repair_turns=max_repair_turns,
                    timeout=reply_timeout,
                    conn_id=conn_id,
                    **send_kwargs,
                )
                review >> previous
        approved = NairiApprovedReplyOperator(
            task_id="approved", review_task_ids=[review.task_id for review in reviews]
        )
        for review in reviews:
            review >> approved
    return group
