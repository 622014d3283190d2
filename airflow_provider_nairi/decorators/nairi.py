"""TaskFlow decorators: ``@task.nairi`` asks an agent, ``@task.nairi_branch`` lets its reply choose the path.

The decorated function returns the message: a string, or a dict with ``message`` and optionally
``attachments``, ``title`` and ``metadata`` (the last two only when a new conversation starts). The task is a
:class:`~airflow_provider_nairi.operators.conversation.NairiStartConversationOperator` (or, with
``conversation_id``, a :class:`~airflow_provider_nairi.operators.conversation.NairiSendMessageOperator`),
so it returns the same XCom dict and keeps everything they guarantee: deferrable waits, durable reattach on
retry, idempotency keys, kill and timeout semantics, typed replies with repair turns (``output_type``).

The message is not rendered as a Jinja template (a function computes it; an agent's text or a document may
hold ``{{``). The function runs again on a retry (its message is then used only if a new conversation is
needed); it does not run again when a deferred wait resumes.

Imports only through ``airflow.providers.common.compat.sdk``: works on workers that have only the Task SDK,
and imports (without being usable for branching before Airflow 2.10's ``BranchMixIn``) on Airflow 2.11.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from airflow.providers.common.compat.sdk import (
    SET_DURING_EXECUTION,
    BranchMixIn,
    DecoratedOperator,
    context_merge,
    determine_kwargs,
    task_decorator_factory,
)

from airflow_provider_nairi.exceptions import NairiParameterError
from airflow_provider_nairi.operators.conversation import (
    NairiConversationSubmitOperator,
    NairiSendMessageOperator,
    NairiStartConversationOperator,
)
from airflow_provider_nairi.outcomes import airflow_outcome
from airflow_provider_nairi.resources.replies import BranchReply

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context, TaskDecorator

#: Keys a returned message dict may have, per kind of task.
START_KEYS = frozenset({"message", "attachments", "title", "metadata"})
SEND_KEYS = frozenset({"message", "attachments"})


class _NairiTask(DecoratedOperator):
    """What ``@task.nairi`` adds to a conversation operator: the message comes from the function."""

    custom_operator_name = "@task.nairi"
    message_keys: ClassVar[frozenset[str]] = START_KEYS

    def __init__(
        self,
        *,
        python_callable: Callable[..., Any],
        op_args: Collection[Any] | None = None,
        op_kwargs: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            python_callable=python_callable,
            op_args=op_args,
            op_kwargs=op_kwargs,
            message=SET_DURING_EXECUTION,
            **kwargs,
        )

    @airflow_outcome  # a message the function got wrong fails without retries, as a bad parameter does
    def execute(self, context: Context) -> Any:
        context_merge(context, self.op_kwargs)
        kwargs = determine_kwargs(self.python_callable, self.op_args, context)
        self.take_message(self.python_callable(*self.op_args, **kwargs))
        return NairiConversationSubmitOperator.execute(self, context)  # type: ignore[arg-type]

    def take_message(self, returned: Any) -> None:
        """Set ``message`` (and ``attachments``, ``title``, ``metadata``) from what the function returned."""
        fields = {"message": returned} if isinstance(returned, str) else returned
        if not isinstance(fields, Mapping) or not isinstance(fields.get("message"), str):
            raise NairiParameterError(
                f"{self.custom_operator_name}: the function must return the message (a string) or a dict "
                f"with a 'message' string; it returned {type(returned).__name__}."
            )
        unknown = sorted(set(fields) - self.message_keys)
        if unknown:
            raise NairiParameterError(
                f"{self.custom_operator_name}: the returned dict has unknown key(s) {', '.join(unknown)}; "
                f"allowed: {', '.join(sorted(self.message_keys))}."
            )
        if not fields["message"].strip():
            raise NairiParameterError(f"{self.custom_operator_name}: the function returned an empty message.")
        for name, value in fields.items():
            setattr(self, name, value)


class _NairiStartTask(_NairiTask, NairiStartConversationOperator):
    template_fields = (*DecoratedOperator.template_fields, *NairiStartConversationOperator.template_fields)


class _NairiSendTask(_NairiTask, NairiSendMessageOperator):
    message_keys = SEND_KEYS
    template_fields = (*DecoratedOperator.template_fields, *NairiSendMessageOperator.template_fields)


class _NairiBranch:
    """What ``@task.nairi_branch`` adds: the reply names the downstream task(s) to run; the others are
    skipped. The choices are the task's real downstream ids (in a task group, with the group's prefix); a
    reply naming none of them gets a repair turn; the XCom dict's ``output`` is the list of chosen ids."""

    custom_operator_name = "@task.nairi_branch"
    inherits_from_skipmixin = True

    def reply_format(self) -> BranchReply:
        return BranchReply(self.downstream_task_ids)  # type: ignore[attr-defined]

    def execute(self, context: Context) -> Any:
        return self.branch(context, super().execute(context))  # type: ignore[misc]

    def execute_complete(self, context: Context, event: dict[str, Any]) -> Any:
        return self.branch(context, super().execute_complete(context, event))  # type: ignore[misc]

    @staticmethod
    def skip_in_mapped_group(tasks: Sequence[tuple[str, int]], map_index: int | None) -> None:
        """Skip the tasks not chosen, at this task's map index too (in place of the Task SDK's
        ``SkipMixin._set_state_to_skipped``). Airflow skips an unmapped task's siblings through the API, and
        leaves a mapped instance's to the scheduler, which reads the skip XCom at map index -1 for a task
        inside a mapped task group and so skips nothing (apache/airflow#67265, open in 3.3.2): here both go
        through the API, which skips exactly ``(task_id, map_index)``, never a task running or done."""
        from airflow.providers.common.compat.sdk import DownstreamTasksSkipped  # noqa: PLC0415 (Airflow 3 only)

        if tasks and map_index is not None:
            raise DownstreamTasksSkipped(tasks=list(tasks))  # type: ignore[no-untyped-call]

    if BranchMixIn.__module__.startswith("airflow.sdk"):  # Airflow 3 (Airflow 2's skip writes the DB itself)
        _set_state_to_skipped = skip_in_mapped_group

    def branch(self, context: Context, result: dict[str, Any]) -> dict[str, Any]:
        """Push the XCom dict, then skip the tasks not chosen. When it skips (an unmapped task), Airflow does
        not push the return value itself, so it is pushed first; ``DownstreamTasksSkipped`` propagates."""
        context["ti"].xcom_push(key="return_value", value=result)
        self.do_branch(context, result["output"])  # type: ignore[attr-defined]
        return result


class _NairiBranchStartTask(_NairiBranch, _NairiStartTask, BranchMixIn):  # type: ignore[misc]
    pass


class _NairiBranchSendTask(_NairiBranch, _NairiSendTask, BranchMixIn):  # type: ignore[misc]
    message_keys = SEND_KEYS


def nairi_task(python_callable: Callable[..., Any] | None = None, **kwargs: Any) -> TaskDecorator:
    """``@task.nairi(agent_id=..., agent_name=..., conversation_id=..., output_type=..., ...)``: the function
    returns the message; the task starts a conversation (or continues ``conversation_id``) and returns the
    conversation operators' XCom dict. Every keyword of
    :class:`~airflow_provider_nairi.operators.conversation.NairiStartConversationOperator` (or, with
    ``conversation_id``, of :class:`~airflow_provider_nairi.operators.conversation.NairiSendMessageOperator`)
    is taken, and Airflow's task keywords (``retries``, ``pool``...)."""
    kwargs.setdefault("multiple_outputs", False)  # the XCom dict stays one value, whatever the annotation
    operator_class = _NairiSendTask if "conversation_id" in kwargs else _NairiStartTask
    return task_decorator_factory(
        python_callable=python_callable, decorated_operator_class=operator_class, **kwargs
    )


def nairi_branch_task(python_callable: Callable[..., Any] | None = None, **kwargs: Any) -> TaskDecorator:
    """``@task.nairi_branch(...)``: as ``@task.nairi``, and the agent's reply chooses the downstream task(s)
    to run (exactly one task id, or a JSON list of them; the first message lists the choices); the others are
    skipped. A reply naming none of them gets a repair turn (``max_repair_turns``); then the task fails with
    :class:`~airflow_provider_nairi.exceptions.NairiOutputError`. Inside ``.expand()``, each mapped instance
    skips its own downstream tasks when they are mapped with it (a mapped task group)."""
    for taken in ("output_type", "wait_for_reply"):
        if taken in kwargs:
            raise NairiParameterError(f"@task.nairi_branch: the reply is the choice; {taken} is not taken.")
    kwargs.setdefault("multiple_outputs", False)
    operator_class = _NairiBranchSendTask if "conversation_id" in kwargs else _NairiBranchStartTask
    return task_decorator_factory(
        python_callable=python_callable, decorated_operator_class=operator_class, **kwargs
    )
