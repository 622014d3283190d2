"""NairiHook as a common.ai managed agent, against the emulator over real HTTP: invoke, sessions, trace ref,
timeout, the contract's three error classes, and a pydantic-ai agent (offline function model, no LLM) that
calls Nairi through common.ai's ManagedAgentToolset. Without common.ai (Airflow 2.11 venv) only the
"absent extra" test runs."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

from airflow_provider_nairi import exceptions as nx
from airflow_provider_nairi.hooks.nairi import NairiHook


def test_without_common_ai_the_hook_works_and_agent_names_the_extra():
    probe = """
import sys

class WithoutCommonAI:  # as if the extra were not installed (Airflow's provider discovery still runs)
    def find_spec(self, name, path=None, target=None):
        if name.startswith(("airflow.providers.common.ai.managed_agents", "airflow.providers.common.ai.exc")):
            raise ImportError(f"No module named {name!r}")

sys.meta_path.insert(0, WithoutCommonAI())
from airflow_provider_nairi.hooks.nairi import NairiHook
from airflow_provider_nairi.operators.conversation import NairiStartConversationOperator
hook = NairiHook()
try:
    hook.agent("support")
except Exception as error:
    print(type(error).__name__, "|", error)
print(sorted(m for m in sys.modules if m.startswith("airflow.providers.common.ai.managed")))
"""
    args = [sys.executable, "-c", probe]
    result = subprocess.run(args, check=False, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    error, imported = result.stdout.strip().splitlines()[-2:]
    assert error.startswith("AirflowOptionalProviderFeatureException |")
    assert "airflow-provider-nairi[common-ai]" in error
    assert imported == "[]"


managed = pytest.importorskip(
    "airflow.providers.common.ai.managed_agents.base", reason="common.ai is the common-ai extra (3.11+)"
)
cai_errors = pytest.importorskip("airflow.providers.common.ai.exceptions")
ManagedAgentRequest = managed.ManagedAgentRequest


@pytest.fixture
def hook(nairi_emulator):
    hook = NairiHook()
    support = hook.client.create_agent("support", "Answer briefly.")
    hook.client.create_agent("twin", "a")
    hook.client.create_agent("twin", "b")
    yield hook, support
    hook.close()


def test_ref_and_capabilities_need_no_network(monkeypatch):
    monkeypatch.delenv("AIRFLOW_CONN_NAIRI_DEFAULT", raising=False)  # no connection at all
    bound = NairiHook().agent("support")
    assert bound.ref == managed.ManagedAgentRef(platform="nairi", name="support")
    assert bound.capabilities == managed.ManagedAgentCapabilities(sessions=True, trace=True)
    assert NairiHook().agent_capabilities("support") == bound.capabilities  # common.ai's name after 1.0
    assert isinstance(NairiHook(), managed.BaseManagedAgentHook)


def test_invoke_returns_the_reply_and_a_session_that_continues_the_conversation(hook, nairi_emulator):
    nairi, support = hook
    bound = nairi.agent("support")
    first = bound.invoke(ManagedAgentRequest(prompt="reset my password"))
    assert first.text.startswith("Reply to turn 1: reset my password")
    assert first.session_id.startswith("conv_") and first.raw["agent_id"] == support["id"]
    posts = [r for r in nairi_emulator.admin.requests_log() if r["method"] == "POST"]
    assert first.trace_ref == posts[-1]["request_id"]  # the request that sent the message

    second = bound.invoke(ManagedAgentRequest(prompt="it worked, thanks", session_id=first.session_id))
    assert second.session_id == first.session_id
    assert second.text.startswith("Reply to turn 2: it worked, thanks")
    conversation = nairi.client.get_conversation(first.session_id)
    assert (conversation["turns"], conversation["status"]) == (2, "completed")
    assert second.trace_ref not in (None, first.trace_ref)


def test_an_agent_by_id_and_messages_instead_of_a_prompt(hook):
    nairi, support = hook
    request = ManagedAgentRequest(
        messages=[{"role": "user", "content": "hello"}], vendor_options={"title": "T"}
    )
    response = nairi.agent(support["id"]).invoke(request)
    assert response.text.startswith("Reply to turn 1: hello")
    assert nairi.client.get_conversation(response.session_id)["title"] == "T"


def test_the_timeout_bounds_the_invocation_and_cancels_the_conversation(hook):
    nairi, _ = hook
    started = time.monotonic()
    with pytest.raises(TimeoutError):
        nairi.agent("support").invoke(ManagedAgentRequest(prompt="slow [[delay:30]]", timeout=0.6))
    assert time.monotonic() - started < 3
    [conversation] = [c for c in nairi.client.list_conversations() if c["title"] is None and c["turns"] == 1][
        -1:
    ]
    assert conversation["status"] == "cancelled"


def test_errors_are_sorted_as_the_contract_asks(hook, nairi_emulator, monkeypatch):
    nairi, support = hook
    with pytest.raises(cai_errors.ManagedAgentInvocationError, match="no agent named 'ghost'"):
        nairi.agent("ghost").invoke(ManagedAgentRequest(prompt="hi"))
    with pytest.raises(cai_errors.ManagedAgentInvocationError, match="2 agents"):
        nairi.agent("twin").invoke(ManagedAgentRequest(prompt="hi"))
    with pytest.raises(cai_errors.ManagedAgentInvocationError, match="failed: quota: over budget"):
        nairi.agent("support").invoke(ManagedAgentRequest(prompt="[[fail:quota:over budget]]"))
    with pytest.raises(cai_errors.ManagedAgentRejected, match="422"):
        nairi.agent("support").invoke(ManagedAgentRequest(prompt=""))  # the API refuses an empty message
    with pytest.raises(cai_errors.ManagedAgentInvocationError, match="404"):
        nairi.agent("support").invoke(ManagedAgentRequest(prompt="hi", session_id="conv_missing"))
    other = nairi.client.create_conversation(nairi.client.create_agent("other", "x")["id"], "hello")
    with pytest.raises(cai_errors.ManagedAgentInvocationError, match="another agent"):
        nairi.agent("support").invoke(ManagedAgentRequest(prompt="hi", session_id=other["id"]))
    with pytest.raises(ValueError, match="re-target"):
        nairi.agent("support").invoke(ManagedAgentRequest(prompt="hi", vendor_options={"agent_id": "agt_x"}))

    connection = {"conn_type": "nairi", "host": nairi_emulator.base_url, "password": nairi_emulator.api_key}
    monkeypatch.setenv("AIRFLOW_CONN_NAIRI_DEFAULT", json.dumps({**connection, "extra": {"max_retries": 0}}))
    nairi_emulator.admin.set_faults(rate=1.0, kinds=["503"])
    try:
        with pytest.raises(nx.NairiServerError):  # transient: unchanged, for Airflow's retries
            NairiHook().agent(support["id"]).invoke(ManagedAgentRequest(prompt="hi"))
    finally:
        nairi_emulator.admin.clear_faults()
    key = nairi_emulator.admin.create_key(["read", "write"])
    nairi_emulator.admin.revoke_key(key)
    monkeypatch.setenv("AIRFLOW_CONN_NAIRI_DEFAULT", json.dumps({**connection, "password": key}))
    with pytest.raises(cai_errors.ManagedAgentInvocationError, match="401"):
        NairiHook().agent(support["id"]).invoke(ManagedAgentRequest(prompt="hi"))


def test_a_common_ai_agent_calls_nairi_through_the_managed_agent_toolset(hook):
    pydantic_ai = pytest.importorskip("pydantic_ai")
    from airflow.providers.common.ai.toolsets import ManagedAgentToolset  # noqa: PLC0415
    from pydantic_ai.messages import ModelResponse, TextPart, ToolCallPart, ToolReturnPart  # noqa: PLC0415
    from pydantic_ai.models.function import FunctionModel  # noqa: PLC0415

    nairi, _ = hook
    toolset = ManagedAgentToolset(nairi.agent("support"), tool_name="ask_support", timeout=30)

    def script(messages, info):
        """An offline model: first call the Nairi tool, then answer with what it returned."""
        returned = [p for m in messages for p in getattr(m, "parts", []) if isinstance(p, ToolReturnPart)]
        if not returned:
            return ModelResponse(
                parts=[ToolCallPart("ask_support", {"prompt": "How do I reset a password?"})]
            )
        return ModelResponse(parts=[TextPart(f"Support says: {returned[0].content}")])

    result = pydantic_ai.Agent(FunctionModel(script), toolsets=[toolset]).run_sync("help the user")
    assert result.output.startswith("Support says: Reply to turn 1: How do I reset a password?")
    [conversation] = [c for c in nairi.client.list_conversations() if c["status"] == "completed"]
    assert conversation["turns"] == 1
