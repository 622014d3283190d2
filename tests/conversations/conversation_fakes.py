"""Conversation snapshots and helpers shared by the conversation tests."""

from __future__ import annotations


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
