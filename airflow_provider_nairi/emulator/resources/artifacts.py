"""``/artifacts``: streamed uploads, streamed downloads with ``Range`` and an ``ETag`` that is the sha256."""

from __future__ import annotations

import hashlib
import mimetypes
import os

from starlette.responses import FileResponse

from airflow_provider_nairi.emulator.core import Core
from airflow_provider_nairi.emulator.protocol import Reply, invalid, page
from airflow_provider_nairi.emulator.routing import Context, route
from airflow_provider_nairi.emulator.state import Record, new_id, now, public
from airflow_provider_nairi.emulator.uploads import Upload, receive_upload

MAX_NAME = 255


def guess_type(name: str) -> str:
    return mimetypes.guess_type(name)[0] or "application/octet-stream"


def add_artifact(
    core: Core, upload: Upload, name: str, content_type: str, *, conversation_id: str | None, created_by: str
) -> Record:
    """Move an upload's file into place and record the artifact."""
    artifact_id = new_id("art")
    assert upload.path is not None
    os.replace(upload.path, core.store.file_path(artifact_id))
    record = {
        "id": artifact_id,
        "name": name,
        "content_type": content_type,
        "size_bytes": upload.size,
        "sha256": upload.sha256,
        "conversation_id": conversation_id,
        "created_by": created_by,
        "created_at": now(),
    }
    return core.store.put("artifacts", artifact_id, record)


def save_bytes(core: Core, name: str, data: bytes, *, conversation_id: str | None, created_by: str) -> Record:
    """An artifact made from bytes in memory (what agents produce)."""
    upload = Upload(path=core.store.files_dir / f"upload-{new_id('tmp')}.part", size=len(data))
    upload.path.write_bytes(data)  # type: ignore[union-attr]
    upload.sha256 = hashlib.sha256(data).hexdigest()
    return add_artifact(
        core, upload, name, guess_type(name), conversation_id=conversation_id, created_by=created_by
    )


@route("GET", "/artifacts", "read")
async def list_artifacts(ctx: Context) -> Reply:
    """List artifacts, oldest first; filter by ``conversation_id``."""
    conversation_id = ctx.query.get("conversation_id")
    items = [
        a
        for a in ctx.core.store.tables["artifacts"].values()
        if conversation_id is None or a["conversation_id"] == conversation_id
    ]
    return page(items, ctx.query, view=public)


@route("POST", "/artifacts", "write", kind="multipart", status=201)
async def upload_artifact(ctx: Context) -> Reply:
    """Upload a file (multipart: ``file``, ``name?``, ``conversation_id?``)."""
    core = ctx.core
    upload = await receive_upload(
        ctx.request, core.store.files_dir, core.settings.upload_limit, ("name", "conversation_id")
    )
    try:
        name = upload.fields.get("name") or upload.filename or "upload"
        if len(name) > MAX_NAME or not name.strip():
            raise invalid("name", f"must be 1 to {MAX_NAME} characters")
        conversation_id = upload.fields.get("conversation_id") or None
        if conversation_id is not None:
            core.find("conversations", conversation_id, "conversation", "conversation_id")
        core.authenticate(ctx.request.headers)  # a key revoked during the upload creates nothing
        content_type = upload.content_type or guess_type(name)
        return Reply(
            public(
                add_artifact(
                    core, upload, name, content_type, conversation_id=conversation_id, created_by="user"
                )
            ),
            201,
        )
    except BaseException:
        upload.discard()
        raise


@route("GET", "/artifacts/{artifact_id}", "read")
async def get_artifact(ctx: Context) -> Reply:
    """Get an artifact's metadata."""
    return Reply(public(ctx.core.find("artifacts", ctx.params["artifact_id"], "artifact")))


@route("DELETE", "/artifacts/{artifact_id}", "write")
async def delete_artifact(ctx: Context) -> Reply:
    """Delete an artifact and its bytes."""
    artifact = ctx.core.find("artifacts", ctx.params["artifact_id"], "artifact")
    ctx.core.store.delete("artifacts", artifact["id"])
    ctx.core.store.file_path(artifact["id"]).unlink(missing_ok=True)
    return Reply(status=204)


@route("GET", "/artifacts/{artifact_id}/content", "read", kind="raw")
async def download_artifact(ctx: Context) -> FileResponse:
    """The raw bytes, streamed; ``Range`` gives 206 with ``Content-Range``; ``ETag`` is the quoted sha256."""
    artifact = ctx.core.find("artifacts", ctx.params["artifact_id"], "artifact")
    return FileResponse(
        ctx.core.store.file_path(artifact["id"]),
        media_type=artifact["content_type"],
        headers={"ETag": f'"{artifact["sha256"]}"'},
    )
