"""``/me`` and ``/agents``."""

from __future__ import annotations

from airflow_provider_nairi.emulator import schemas
from airflow_provider_nairi.emulator.protocol import Reply, page
from airflow_provider_nairi.emulator.routing import Context, route
from airflow_provider_nairi.emulator.state import public

DEFAULT_MODEL = "nairi-default"


@route("GET", "/me", "read")
async def get_me(ctx: Context) -> Reply:
    """The org and the key of the request."""
    key = ctx.key
    return Reply(
        {
            "org": dict(ctx.core.org),
            "key": {"name": key["name"], "hint": key["hint"], "scopes": key["scopes"]},
        }
    )


def check_vaults(ctx: Context, vault_ids: list[str] | None) -> None:
    for vault_id in vault_ids or ():
        ctx.core.find("vaults", vault_id, "vault", "vault_ids")


@route("GET", "/agents", "read")
async def list_agents(ctx: Context) -> Reply:
    """List agents, oldest first."""
    return page(list(ctx.core.store.tables["agents"].values()), ctx.query, view=public)


@route("POST", "/agents", "write", body=schemas.AgentCreate, status=201)
async def create_agent(ctx: Context) -> Reply:
    """Create an agent."""
    body: schemas.AgentCreate = ctx.body
    check_vaults(ctx, body.vault_ids)
    fields = {
        "name": body.name,
        "instructions": body.instructions,
        "model": body.model or DEFAULT_MODEL,
        "vault_ids": body.vault_ids or [],
    }
    return Reply(public(ctx.core.new_record("agents", "agt", fields)), 201)


@route("GET", "/agents/{agent_id}", "read")
async def get_agent(ctx: Context) -> Reply:
    """Get an agent."""
    return Reply(public(ctx.core.find("agents", ctx.params["agent_id"], "agent")))


@route("PATCH", "/agents/{agent_id}", "write", body=schemas.AgentUpdate)
async def update_agent(ctx: Context) -> Reply:
    """Change an agent's fields (only those given)."""
    agent = ctx.core.find("agents", ctx.params["agent_id"], "agent")
    changes = ctx.body.changes()
    check_vaults(ctx, changes.get("vault_ids"))
    return Reply(public(ctx.core.update_record("agents", agent, changes)))


@route("DELETE", "/agents/{agent_id}", "write")
async def delete_agent(ctx: Context) -> Reply:
    """Delete an agent (its conversations stay)."""
    agent = ctx.core.find("agents", ctx.params["agent_id"], "agent")
    ctx.core.store.delete("agents", agent["id"])
    return Reply(status=204)
