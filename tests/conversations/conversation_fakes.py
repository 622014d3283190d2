"""Conversation snapshots and helpers shared by the conversation tests."""

from __future__ import annotations

import pytest
from airflow.providers.common.compat.sdk import ResumableJobMixin


def conversation(status="completed", turns=1, conversation_id="conv_1", reply="the answer", **fields):
    last = None
    if status == "completed":
        last = {
            "id": f"msg_reply_{turns}",
            "conversation_id": conversation_id,
            "role": "assistant",
            "content": reply,
            "turn": turns,
            "artifact_ids": ["art_out"],
        }
    return {
        "id": conversation_id,
        "agent_id": "agt_1",
        "status": status,
        "turns": turns,
        "last_message": last,
        "error": None,
        **fields,
    }


def with_hook(operator, hook):
    """Give ``operator`` the mocked hook in place of its cached_property."""
    operator.__dict__["hook"] = hook
    return operator


#: Durable reattach needs Airflow 3.3's ResumableJobMixin; below it, common.compat's stand-in sends anew.
DURABLE = ResumableJobMixin.__module__.startswith("airflow.sdk")
durable_only = pytest.mark.skipif(not DURABLE, reason="task_state_store arrived in Airflow 3.3")
