"""``/conversations``: threads that run for real, turn by turn, in the background.

A turn (see :mod:`..agent`) is ``queued`` for the first fifth of its latency, then ``running``, then
``completed`` (the reply message is written) or ``failed`` (``error`` set). ``cancel`` stops a queued or
running turn (``cancelled``); an ended conversation is returned unchanged. A message sent while a turn is
queued or running is a 409 ``conversation_busy``; after ``completed``, ``failed`` or ``cancelled`` it starts
the next turn.
"""

from __future__ import annotations

import asyncio
from typing import Any

from airflow_provider_nairi.emulator import agent, schemas
from airflow_provider_nairi.emulator.core import Core
from airflow_provider_nairi.emulator.protocol import ApiError, Reply, invalid, page
from airflow_provider_nairi.emulator.resources.artifacts import save_bytes
from airflow_provider_nairi.emulator.routing import Context, route
from airflow_provider_nairi.emulator.state import Record, public

STATUSES = ("queued", "running", "completed", "failed", "cancelled")
ACTIVE = ("queued", "running")


def view(conversation: Record) -> Record:
    return public(conversation)


def check_artifacts(core: Core, artifact_ids: list[str] | None) -> list[str]:
    for artifact_id in artifact_ids or ():
        core.find("artifacts", artifact_id, "artifact", "artifact_ids")
    return list(artifact_ids or ())


def add_message(core: Core, conversation: Record, role: str, content: str, artifact_ids: list[str]) -> Record:
    message = core.new_record(
        "messages",
        "msg",
        {
            "conversation_id": conversation["id"],
            "role": role,
            "content": content,
            "turn": conversation["turns"],
            "artifact_ids": artifact_ids,
        },
        stamp_update=False,
    )
    return message


def stored_script(conversation: Record) -> agent.Script | None:
    """The conversation's scripted replies (internal field ``_script``), if a message set some."""
    script = conversation.get("_script")
    return agent.Script(script["first_turn"], tuple(script["replies"])) if script else None


def start_turn(
    core: Core, conversation: Record, content: str, artifact_ids: list[str]
) -> tuple[Record, Record]:
    """Write the user's message as turn N+1, mark the conversation ``queued`` and start the agent."""
    turn = conversation["turns"] + 1
    conversation = {**conversation, "turns": turn}
    message = add_message(core, conversation, "user", content, artifact_ids)
    changes: dict[str, Any] = {"status": "queued", "error": None, "last_message": message}
    script = agent.conversation_script(content, turn, stored_script(conversation))
    if script is not None:
        changes["_script"] = {"first_turn": script.first_turn, "replies": list(script.replies)}
    conversation = core.update_record("conversations", conversation, changes)
    core.start(conversation["id"], run_turn(core, conversation["id"], message["id"]))
    return conversation, message


def plan_of(core: Core, conversation: Record, message: Record) -> agent.Turn:
    """The agent's plan for ``message`` (its delay, reply, error and artifacts)."""
    agent_record = core.store.get("agents", conversation["agent_id"]) or {"instructions": ""}
    names = [a["name"] for i in message["artifact_ids"] if (a := core.store.get("artifacts", i))]
    return agent.plan_turn(
        agent_record["instructions"],
        message["content"],
        message["turn"],
        names,
        core.settings.turn_latency,
        script=stored_script(conversation),
    )


async def run_turn(core: Core, conversation_id: str, message_id: str) -> None:
    """The agent's work on one user message: wait, then reply (with artifacts) or fail."""
    conversation = core.store.get("conversations", conversation_id)
    message = core.store.get("messages", message_id)
    if conversation is None or message is None:
        return
    plan = plan_of(core, conversation, message)
    await asyncio.sleep(plan.delay / 5)
    conversation = core.store.get("conversations", conversation_id)
    if conversation is None or conversation["status"] not in ACTIVE:
        return
    if conversation["status"] == "queued":  # a turn resumed after a restart may be running already
        core.update_record("conversations", conversation, {"status": "running"})
    await asyncio.sleep(plan.delay - plan.delay / 5)
    conversation = core.store.get("conversations", conversation_id)
    if conversation is None or conversation["status"] != "running":
        return
    end_turn(core, conversation, message, plan)


def end_turn(core: Core, conversation: Record, message: Record, plan: agent.Turn) -> Record:
    """End the turn of ``message`` as ``plan`` says: ``failed``, or ``completed`` with the reply written."""
    if plan.error is not None:
        return core.update_record("conversations", conversation, {"status": "failed", "error": plan.error})
    conversation_id = conversation["id"]
    produced = [
        save_bytes(
            core,
            name,
            (
                text
                if text is not None
                else agent.default_artifact_text(name, conversation_id, message["turn"])
            ).encode(),
            conversation_id=conversation_id,
            created_by="agent",
        )["id"]
        for name, text in plan.artifacts
    ]
    reply = add_message(core, conversation, "assistant", plan.reply, produced)
    return core.update_record("conversations", conversation, {"status": "completed", "last_message": reply})


def finish_now(core: Core, conversation_id: str) -> Record | None:
    """End a queued or running turn at once, as its delay running out would (admin ``finish``); return the
    conversation, or ``None`` when it has no turn under way (unknown, or already ended)."""
    conversation = core.store.get("conversations", conversation_id)
    if conversation is None or conversation["status"] not in ACTIVE or not conversation["last_message"]:
        return None
    message = core.store.get("messages", conversation["last_message"]["id"])
    if message is None:
        return None
    core.stop(conversation_id)
    return end_turn(core, conversation, message, plan_of(core, conversation, message))


def resume(core: Core) -> None:
    """Restart the turns that were queued or running when a persistent emulator stopped."""
    for conversation in list(core.store.tables["conversations"].values()):
        if conversation["status"] in ACTIVE and conversation["last_message"]:
            core.start(
                conversation["id"], run_turn(core, conversation["id"], conversation["last_message"]["id"])
            )


@route("GET", "/conversations", "read")
async def list_conversations(ctx: Context) -> Reply:
    """List conversations, oldest first; filter by ``agent_id`` and ``status``."""
    agent_id = ctx.query.get("agent_id")
    status = ctx.query.get("status")
    if status is not None and status not in STATUSES:
        raise invalid("status", f"must be one of {', '.join(STATUSES)}")
    items = [
        c
        for c in ctx.core.store.tables["conversations"].values()
        if (agent_id is None or c["agent_id"] == agent_id) and (status is None or c["status"] == status)
    ]
    return page(items, ctx.query, view=view)


def create(
    core: Core,
    *,
    agent_id: str,
    message: str,
    artifact_ids: list[str] | None = None,
    title: str | None = None,
    metadata: dict[str, str] | None = None,
) -> Record:
    """Create a conversation and start its first turn (also used by scheduled jobs)."""
    core.find("agents", agent_id, "agent", "agent_id")
    attached = check_artifacts(core, artifact_ids)
    fields: dict[str, Any] = {
        "agent_id": agent_id,
        "title": title,
        "status": "queued",
        "turns": 0,
        "last_message": None,
        "error": None,
        "metadata": metadata or {},
    }
    conversation = core.new_record("conversations", "conv", fields)
    conversation, _ = start_turn(core, conversation, message, attached)
    return conversation


@route("POST", "/conversations", "write", body=schemas.ConversationCreate, status=201)
async def create_conversation(ctx: Context) -> Reply:
    """Start a conversation with an agent; it begins ``queued``."""
    body: schemas.ConversationCreate = ctx.body
    conversation = create(
        ctx.core,
        agent_id=body.agent_id,
        message=body.message,
        artifact_ids=body.artifact_ids,
        title=body.title,
        metadata=body.metadata,
    )
    return Reply(view(conversation), 201)


@route("GET", "/conversations/{conversation_id}", "read")
async def get_conversation(ctx: Context) -> Reply:
    """Get a conversation (poll its ``status``)."""
    return Reply(view(ctx.core.find("conversations", ctx.params["conversation_id"], "conversation")))


@route("GET", "/conversations/{conversation_id}/messages", "read")
async def list_messages(ctx: Context) -> Reply:
    """List a conversation's messages, oldest first."""
    conversation_id = ctx.core.find("conversations", ctx.params["conversation_id"], "conversation")["id"]
    items = [m for m in ctx.core.store.tables["messages"].values() if m["conversation_id"] == conversation_id]
    return page(items, ctx.query)


@route("POST", "/conversations/{conversation_id}/messages", "write", body=schemas.MessageCreate, status=201)
async def send_message(ctx: Context) -> Reply:
    """Send the next user message; 409 ``conversation_busy`` while a turn is queued or running."""
    body: schemas.MessageCreate = ctx.body
    core = ctx.core
    conversation = core.find("conversations", ctx.params["conversation_id"], "conversation")
    if conversation["status"] in ACTIVE:
        raise ApiError(
            409,
            "conversation_busy",
            f"The conversation is {conversation['status']}; wait for the agent's reply.",
        )
    artifact_ids = check_artifacts(core, body.artifact_ids)
    _, message = start_turn(core, conversation, body.content, artifact_ids)
    return Reply(message, 201)


@route("POST", "/conversations/{conversation_id}/cancel", "write", body=schemas.Empty, body_optional=True)
async def cancel_conversation(ctx: Context) -> Reply:
    """Cancel the running turn; an ended conversation is returned unchanged."""
    core = ctx.core
    conversation = core.find("conversations", ctx.params["conversation_id"], "conversation")
    if conversation["status"] in ACTIVE:
        core.stop(conversation["id"])
        conversation = core.update_record("conversations", conversation, {"status": "cancelled"})
    return Reply(view(conversation))
