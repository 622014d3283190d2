"""``/vaults`` (write-only secrets) and ``/env-vars``. Names in paths match the contract's pattern."""

from __future__ import annotations

from airflow_provider_nairi.emulator import schemas
from airflow_provider_nairi.emulator.protocol import Reply, invalid, not_found, page
from airflow_provider_nairi.emulator.routing import Context, route
from airflow_provider_nairi.emulator.state import Record, now, public
from airflow_provider_nairi.validation import NAME_PATTERN


def checked_name(ctx: Context) -> str:
    name = ctx.params["name"]
    if not NAME_PATTERN.fullmatch(name):
        raise invalid("name", "must match ^[A-Za-z_][A-Za-z0-9_]{0,127}$")
    return name


@route("GET", "/vaults", "read")
async def list_vaults(ctx: Context) -> Reply:
    """List vaults (secret names only, never values)."""
    return page(list(ctx.core.store.tables["vaults"].values()), ctx.query, view=public)


@route("POST", "/vaults", "write", body=schemas.VaultCreate, status=201)
async def create_vault(ctx: Context) -> Reply:
    """Create an empty vault."""
    return Reply(
        public(ctx.core.new_record("vaults", "vlt", {"name": ctx.body.name, "secret_names": []})), 201
    )


@route("GET", "/vaults/{vault_id}", "read")
async def get_vault(ctx: Context) -> Reply:
    """Get a vault."""
    return Reply(public(ctx.core.find("vaults", ctx.params["vault_id"], "vault")))


@route("DELETE", "/vaults/{vault_id}", "write")
async def delete_vault(ctx: Context) -> Reply:
    """Delete a vault and its secrets."""
    vault = ctx.core.find("vaults", ctx.params["vault_id"], "vault")
    for name in vault["secret_names"]:
        ctx.core.store.delete("secrets", f"{vault['id']}/{name}")
    ctx.core.store.delete("vaults", vault["id"])
    return Reply(status=204)


@route("PUT", "/vaults/{vault_id}/secrets/{name}", "write", body=schemas.SecretPut)
async def put_secret(ctx: Context) -> Reply:
    """Set a secret's value (write-only: no call ever returns it)."""
    name = checked_name(ctx)
    vault = ctx.core.find("vaults", ctx.params["vault_id"], "vault")
    stamp = now()
    ctx.core.store.put("secrets", f"{vault['id']}/{name}", {"value": ctx.body.value, "updated_at": stamp})
    if name not in vault["secret_names"]:
        ctx.core.update_record("vaults", vault, {"secret_names": [*vault["secret_names"], name]})
    return Reply({"name": name, "updated_at": stamp})


@route("DELETE", "/vaults/{vault_id}/secrets/{name}", "write")
async def delete_secret(ctx: Context) -> Reply:
    """Delete a secret; 404 when the vault has no such secret."""
    name = checked_name(ctx)
    vault = ctx.core.find("vaults", ctx.params["vault_id"], "vault")
    if name not in vault["secret_names"]:
        raise not_found("secret")
    ctx.core.store.delete("secrets", f"{vault['id']}/{name}")
    ctx.core.update_record("vaults", vault, {"secret_names": [n for n in vault["secret_names"] if n != name]})
    return Reply(status=204)


def env_view(record: Record) -> Record:
    return {
        "name": record["name"],
        "value": None if record["secret"] else record["value"],
        "secret": record["secret"],
        "updated_at": record["updated_at"],
    }


@route("GET", "/env-vars", "read")
async def list_env_vars(ctx: Context) -> Reply:
    """List env vars (values of secret ones are null)."""
    return page(list(ctx.core.store.tables["env_vars"].values()), ctx.query, view=env_view)


@route("PUT", "/env-vars/{name}", "write", body=schemas.EnvVarPut)
async def put_env_var(ctx: Context) -> Reply:
    """Create or replace an env var; ``secret`` defaults to false."""
    name = checked_name(ctx)
    record = {"name": name, "value": ctx.body.value, "secret": bool(ctx.body.secret), "updated_at": now()}
    return Reply(env_view(ctx.core.store.put("env_vars", name, record)))


@route("DELETE", "/env-vars/{name}", "write")
async def delete_env_var(ctx: Context) -> Reply:
    """Delete an env var."""
    name = checked_name(ctx)
    ctx.core.find("env_vars", name, "env var")
    ctx.core.store.delete("env_vars", name)
    return Reply(status=204)
