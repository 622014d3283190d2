"""Nairi agents as common.ai managed agents: :class:`NairiManagedAgentMixin`, mixed into ``NairiHook``.

``apache-airflow-providers-common-ai`` (1.0+, Python 3.11+; extra ``common-ai``) defines
``BaseManagedAgentHook``: a vendor hook that implements ``resolve_agent``, ``get_agent_capabilities`` (named
``agent_capabilities`` after 1.0) and ``invoke_agent`` serves every common.ai consumer (its
``ManagedAgentToolset``, its failover group)::

    from airflow.providers.common.ai.toolsets import ManagedAgentToolset

    support = NairiHook().agent("support")  # by name, or by id ("agt_...")
    toolset = ManagedAgentToolset(support, tool_name="ask_support", timeout=120)

The import of common.ai is guarded: without the extra, ``NairiHook`` works as before, this module imports
nothing from common.ai, and ``NairiHook().agent(...)`` raises ``AirflowOptionalProviderFeatureException``
naming the extra. See ``docs/common-ai.md``.
"""

from __future__ import annotations

import dataclasses
import re
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from typing import TYPE_CHECKING, Any, ClassVar

from airflow.providers.common.compat.sdk import AirflowOptionalProviderFeatureException

from airflow_provider_nairi.exceptions import (
    NairiConflictError,
    NairiError,
    NairiPayloadTooLargeError,
    NairiValidationError,
)
from airflow_provider_nairi.resources.conversation import conversation_event, latest_reply
from airflow_provider_nairi.resources.events import SUCCESS
from airflow_provider_nairi.resources.lookup import find_by_name

if TYPE_CHECKING:
    from airflow_provider_nairi.client.config import ClientConfig

try:
    try:  # after 1.0: the contract module and the renamed agent_capabilities
        from airflow.providers.common.ai.managed_agents.contract import (
            BaseManagedAgentHook,
            ManagedAgentCapabilities,
            ManagedAgentRef,
            ManagedAgentResponse,
        )
    except ImportError:  # 1.0
        from airflow.providers.common.ai.managed_agents.base import (
            BaseManagedAgentHook,
            ManagedAgentCapabilities,
            ManagedAgentRef,
            ManagedAgentResponse,
        )
    from airflow.providers.common.ai.exceptions import ManagedAgentInvocationError, ManagedAgentRejected

    COMMON_AI = True
except ImportError:  # no common.ai (or Python < 3.11): NairiHook stays a plain hook
    COMMON_AI = False

#: What to install for the feature.
EXTRA_HINT = (
    "Nairi as a common.ai managed agent needs apache-airflow-providers-common-ai 1.0+ (Python 3.11+): "
    "pip install 'airflow-provider-nairi[common-ai]'."
)
#: Seconds an invocation may take when the request gives no ``timeout``.
DEFAULT_INVOKE_TIMEOUT = 900.0
#: Seconds between two reads of the conversation while the agent works: from the first to the last.
FIRST_POLL, MAX_POLL = 0.25, 5.0
#: ``vendor_options`` an invocation accepts; anything else is refused (never silently dropped).
VENDOR_OPTIONS = frozenset({"title", "metadata", "artifact_ids"})
#: Options that would re-target the call (another agent, conversation or connection): refused by the contract.
RETARGETING = frozenset({"agent", "agent_id", "conversation_id", "session_id", "conn_id", "nairi_conn_id"})
#: A request id the trace may carry (from the server's ``X-Request-Id``: checked, never trusted).
REQUEST_ID = re.compile(r"^[A-Za-z0-9_.:\-]{1,128}$")


class _WithoutCommonAI:
    """The base without common.ai: no abstract methods, nothing imported."""

    def agent(self, agent: str) -> Any:
        """Bind one agent (common.ai's ``BoundManagedAgent``); needs the ``common-ai`` extra."""
        raise AirflowOptionalProviderFeatureException(EXTRA_HINT)


_Base: Any = BaseManagedAgentHook if COMMON_AI else _WithoutCommonAI


def _require_common_ai() -> None:
    if not COMMON_AI:
        raise AirflowOptionalProviderFeatureException(EXTRA_HINT)


def _message_text(request: Any) -> str:
    """The one user message Nairi takes: the prompt, or the text of ``messages`` (user text only)."""
    if request.prompt is not None:
        return str(request.prompt)
    texts: list[str] = []
    for message in request.messages:
        if message.get("role") != "user":
            raise ValueError(
                "Nairi keeps the conversation itself: send user messages only (continue a conversation "
                "with session_id)."
            )
        content = message.get("content")
        parts = content if isinstance(content, list) else [{"type": "text", "text": content}]
        for part in parts:
            if not (
                isinstance(part, Mapping) and part.get("type") == "text" and isinstance(part.get("text"), str)
            ):
                raise ValueError(
                    "Nairi takes text only: every message part must be {'type': 'text', 'text': ...}."
                )
            texts.append(part["text"])
    return "\n\n".join(texts)


class NairiManagedAgentMixin(_Base):  # type: ignore[misc]
    """The common.ai managed-agent contract for a Nairi connection (mixed into ``NairiHook``).

    - ``agent``: an agent id (``agt_...``) or an agent name, looked up at the first invocation (exactly one
      agent of that name; none or several: ``ManagedAgentInvocationError``).
    - Capabilities: ``sessions`` (the conversation id is the session: pass the ``session_id`` of a response to
      continue that conversation) and ``trace`` (``trace_ref`` is the request id of the call that sent the
      message). No usage, no structured output.
    - ``timeout`` of the request bounds the whole invocation (every HTTP call and the wait for the reply);
      when it passes, the conversation is cancelled and ``TimeoutError`` raised. Without one:
      :data:`DEFAULT_INVOKE_TIMEOUT`.
    - ``vendor_options``: ``title``, ``metadata`` (new conversations), ``artifact_ids``; options naming
      another agent, conversation or connection are refused (``ValueError``), unknown options too.
    - Errors, as the contract sorts them: a message the API refuses (400, 422, 413) is
      ``ManagedAgentRejected`` (rephrase); bad key, missing agent or session, a failed or cancelled turn are
      ``ManagedAgentInvocationError``; 429, 5xx, network errors, a busy session and the timeout propagate
      unchanged for Airflow's retries.
    """

    agent_platform: ClassVar[str] = "nairi"

    if TYPE_CHECKING:

        @property
        def config(self) -> ClientConfig: ...

    def resolve_agent(self, agent: str) -> Any:
        """``ManagedAgentRef(platform="nairi", name=agent)``: the id or name as given (no network call)."""
        _require_common_ai()
        return ManagedAgentRef(platform=self.agent_platform, name=agent)

    def get_agent_capabilities(self, agent: str) -> Any:
        """Sessions and trace refs (no network call)."""
        _require_common_ai()
        return ManagedAgentCapabilities(sessions=True, trace=True)

    def agent_capabilities(self, agent: str) -> Any:
        """The name common.ai uses after 1.0 for :meth:`get_agent_capabilities`."""
        return self.get_agent_capabilities(agent)

    def invoke_agent(self, agent: str, request: Any) -> Any:
        """Send the request's message to ``agent`` (a new conversation, or ``request.session_id``'s) and
        wait for the reply, within ``request.timeout``."""
        _require_common_ai()
        options = dict(request.vendor_options or {})
        refused = sorted(set(options) - VENDOR_OPTIONS)
        if refused:
            why = "would re-target the call" if set(refused) & RETARGETING else "are not Nairi options"
            raise ValueError(
                f"vendor_options {', '.join(refused)} {why}; accepted: {sorted(VENDOR_OPTIONS)}."
            )
        text = _message_text(request)
        timeout = DEFAULT_INVOKE_TIMEOUT if request.timeout is None else float(request.timeout)
        if not timeout > 0:
            raise ValueError(f"timeout must be positive, got {request.timeout!r}.")
        call = _Invocation(self.config, time.monotonic() + timeout)
        try:
            return call.run(self, agent, text, request.session_id, options)
        except NairiError as error:
            raise _sorted(error) from error
        finally:
            call.session.close()

    # Name -> id lookups of this hook (one list walk per name).
    _agent_ids: dict[str, str] | None = None

    def _agent_id(self, agent: str, client: Any) -> str:
        """``agent`` when it is an id (``agt_...``), else the id of the one agent of that name (cached)."""
        if agent.startswith("agt_"):
            return agent
        if self._agent_ids is None:
            self._agent_ids = {}
        if agent not in self._agent_ids:
            found = find_by_name(client.list_agents(), agent, "agent")  # two of that name: NairiConflictError
            if found is None:
                raise ManagedAgentInvocationError(f"Nairi has no agent named {agent!r}.")
            self._agent_ids[agent] = str(found["id"])
        return self._agent_ids[agent]


def _sorted(error: NairiError) -> Exception:
    """The contract's class for a Nairi error; transient ones (and a busy session) unchanged."""
    if error.retryable or (isinstance(error, NairiConflictError) and error.code == "conversation_busy"):
        return error
    if isinstance(error, (NairiValidationError, NairiPayloadTooLargeError)):
        return ManagedAgentRejected(f"Nairi refused the message: {error}")
    return ManagedAgentInvocationError(f"Nairi agent invocation failed: {error}")


class _Invocation:
    """One invocation: its own HTTP session (closed by the caller), a client per call whose timeouts end at
    the deadline, the request id of the call that sent the message, the wait for the reply, the cancel on
    timeout. Invocations of one hook may run at once (the toolset runs tool calls in threads): nothing is
    shared but the name lookups."""

    def __init__(self, config: ClientConfig, deadline: float) -> None:
        from airflow_provider_nairi.client.sync import new_session  # noqa: PLC0415

        self.config = config
        self.deadline = deadline
        self.session = new_session(config)
        self.trace_ref: str | None = None

    def left(self) -> float:
        return self.deadline - time.monotonic()

    def client(self) -> Any:
        """A client over the hook's session whose timeouts and retry budget end at the deadline."""
        from airflow_provider_nairi.client.sync import NairiClient  # noqa: PLC0415

        left = self.left()
        if left <= 0:
            raise TimeoutError("the Nairi agent did not reply within the request's timeout")
        config = dataclasses.replace(
            self.config,
            connect_timeout=min(self.config.connect_timeout, left),
            read_timeout=min(self.config.read_timeout, left),
            retry_total_timeout=min(self.config.retry_total_timeout, left),
            retry_max_wait=min(self.config.retry_max_wait, left),
        )
        return NairiClient(config, session=self.session)

    @contextmanager
    def tracing(self) -> Iterator[None]:
        """Record the request id of the POST sent inside (the message)."""

        def record(response: Any, *args: Any, **kwargs: Any) -> None:
            request_id = response.headers.get("X-Request-Id", "")
            if response.request.method == "POST" and REQUEST_ID.fullmatch(request_id):
                self.trace_ref = request_id

        hooks = self.session.hooks["response"]
        hooks.append(record)
        try:
            yield
        finally:
            hooks.remove(record)

    def run(
        self,
        hook: NairiManagedAgentMixin,
        agent: str,
        text: str,
        session_id: str | None,
        options: dict[str, Any],
    ) -> Any:
        agent_id = hook._agent_id(agent, self.client())
        if session_id is None:
            with self.tracing():
                conversation = self.client().create_conversation(
                    agent_id,
                    text,
                    artifact_ids=options.get("artifact_ids"),
                    title=options.get("title"),
                    metadata=options.get("metadata"),
                )
            conversation_id, turn = str(conversation["id"]), 1
        else:
            current = self.client().get_conversation(session_id)
            if current.get("agent_id") != agent_id:
                raise ManagedAgentInvocationError(
                    f"session {session_id} is a conversation of another agent; start a new session."
                )
            with self.tracing():
                message = self.client().send_message(
                    session_id, text, artifact_ids=options.get("artifact_ids")
                )
            conversation_id, turn = session_id, int(message.get("turn") or int(current.get("turns") or 0) + 1)
        conversation = self.wait(conversation_id, turn)
        return ManagedAgentResponse(
            text=str((latest_reply(self.client(), conversation) or {}).get("content") or ""),
            raw=conversation,
            session_id=conversation_id,
            trace_ref=self.trace_ref,
        )

    def wait(self, conversation_id: str, turn: int) -> dict[str, Any]:
        """Poll until turn ``turn`` ended; at the deadline cancel the conversation, raise ``TimeoutError``.

        Not the provider's ``Waiter``: the contract wants transient errors to propagate unchanged (the waiter
        tolerates them and turns the last into an event), and every call here gets the time left."""
        delay = FIRST_POLL
        while True:
            try:
                conversation = self.client().get_conversation(conversation_id)
            except (TimeoutError, NairiError) as error:
                if isinstance(error, NairiError) and self.left() > 0:
                    raise
                break  # the deadline passed during the read
            event = conversation_event(conversation, turn)  # an unknown status: NairiServerError
            if event is not None:
                if event["status"] != SUCCESS:
                    remote = conversation.get("error") or {}
                    raise ManagedAgentInvocationError(
                        f"Nairi conversation {conversation_id} {conversation['status']}: "
                        f"{remote.get('code') or 'no code'}: {remote.get('message') or 'no message'}"
                    )
                return dict(conversation)
            if self.left() <= delay:
                time.sleep(max(self.left(), 0))
                break
            time.sleep(delay)
            delay = min(delay * 1.5, MAX_POLL)
        self.cancel(conversation_id)
        raise TimeoutError(f"Nairi conversation {conversation_id} did not reply within the request's timeout")

    def cancel(self, conversation_id: str) -> None:
        """Best effort, within a few seconds of its own: a session left running would answer 409 next time."""
        self.deadline = time.monotonic() + 5
        with suppress(NairiError, TimeoutError):
            self.client().cancel_conversation(conversation_id)
