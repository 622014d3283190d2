"""``/scheduled-jobs``: cron jobs that start a conversation; ``run`` starts one now.

The emulator never fires jobs on its own: ``next_run_at`` is computed (croniter, in the job's time zone) and
shown, and ``POST /scheduled-jobs/{id}/run`` starts the conversation at once. Cron and time zone follow the
provider's own checks (:mod:`airflow_provider_nairi.validation`): five fields, IANA zone names.
"""

from __future__ import annotations

import datetime
import zoneinfo
from typing import Any

from croniter import croniter

from airflow_provider_nairi.emulator import schemas
from airflow_provider_nairi.emulator.protocol import ApiError, Reply, invalid, page
from airflow_provider_nairi.emulator.resources.conversations import create as create_conversation
from airflow_provider_nairi.emulator.resources.conversations import view as conversation_view
from airflow_provider_nairi.emulator.routing import Context, route
from airflow_provider_nairi.emulator.state import Record, now, public
from airflow_provider_nairi.exceptions import NairiConfigurationError
from airflow_provider_nairi.validation import check_cron, check_timezone

DEFAULT_TIMEZONE = "UTC"


def checked(fields: dict[str, Any]) -> dict[str, Any]:
    """Validate cron and time zone (422 naming the field) and compute ``next_run_at``."""
    for name, check in (("cron", check_cron), ("timezone", check_timezone)):
        try:
            check(name, fields[name])
        except NairiConfigurationError as error:
            raise invalid(name, error.message) from None
    next_run = None
    if fields["enabled"]:
        zone = zoneinfo.ZoneInfo(fields["timezone"])
        moment = croniter(fields["cron"], datetime.datetime.now(zone)).get_next(datetime.datetime)
        next_run = (
            moment.astimezone(datetime.timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")
        )
    return {**fields, "next_run_at": next_run}


@route("GET", "/scheduled-jobs", "read")
async def list_jobs(ctx: Context) -> Reply:
    """List scheduled jobs."""
    return page(list(ctx.core.store.tables["scheduled_jobs"].values()), ctx.query, view=public)


@route("POST", "/scheduled-jobs", "write", body=schemas.JobCreate, status=201)
async def create_job(ctx: Context) -> Reply:
    """Create a scheduled job (enabled and in UTC unless told otherwise)."""
    body: schemas.JobCreate = ctx.body
    ctx.core.find("agents", body.agent_id, "agent", "agent_id")
    fields = body.model_dump()
    fields["timezone"] = body.timezone or DEFAULT_TIMEZONE
    fields["enabled"] = True if body.enabled is None else body.enabled
    fields["last_run"] = None
    return Reply(public(ctx.core.new_record("scheduled_jobs", "job", checked(fields))), 201)


def find_job(ctx: Context) -> Record:
    return ctx.core.find("scheduled_jobs", ctx.params["job_id"], "scheduled job")


@route("GET", "/scheduled-jobs/{job_id}", "read")
async def get_job(ctx: Context) -> Reply:
    """Get a scheduled job."""
    return Reply(public(find_job(ctx)))


@route("PATCH", "/scheduled-jobs/{job_id}", "write", body=schemas.JobUpdate)
async def update_job(ctx: Context) -> Reply:
    """Change a job's fields (only those given)."""
    job = find_job(ctx)
    changes = ctx.body.changes()
    if "agent_id" in changes:
        ctx.core.find("agents", changes["agent_id"], "agent", "agent_id")
    fields = checked(
        {k: v for k, v in {**job, **changes}.items() if k not in ("id", "created_at", "updated_at")}
    )
    return Reply(public(ctx.core.update_record("scheduled_jobs", job, fields)))


@route("DELETE", "/scheduled-jobs/{job_id}", "write")
async def delete_job(ctx: Context) -> Reply:
    """Delete a scheduled job."""
    ctx.core.store.delete("scheduled_jobs", find_job(ctx)["id"])
    return Reply(status=204)


@route("POST", "/scheduled-jobs/{job_id}/run", "write", body=schemas.Empty, body_optional=True, status=202)
async def run_job(ctx: Context) -> Reply:
    """Start the job's conversation now; 409 ``conflict`` when its agent was deleted."""
    job = find_job(ctx)
    if ctx.core.store.get("agents", job["agent_id"]) is None:
        raise ApiError(409, "conflict", "The job's agent no longer exists; point the job at another agent.")
    conversation = create_conversation(
        ctx.core,
        agent_id=job["agent_id"],
        message=job["message"],
        title=job["name"],
        metadata={"job_id": job["id"]},
    )
    ctx.core.update_record(
        "scheduled_jobs", job, {"last_run": {"conversation_id": conversation["id"], "started_at": now()}}
    )
    return Reply({"conversation": conversation_view(conversation)}, 202)
