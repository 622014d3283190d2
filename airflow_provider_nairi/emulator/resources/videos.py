"""``/videos`` and the corpus calls ``/search``, ``/recall``, ``/chat`` over their transcripts.

Processing rule: a video is ``processing`` for ``video_delay`` seconds, then

- a transcript (file name ending ``.txt``, ``.vtt`` or ``.srt``) that is UTF-8 and has text: ``ready``, its
  segments searchable, ``duration_s`` = the end of its last segment;
- a media file whose first bytes are a known container (MP4/MOV ``ftyp``, Matroska/WebM, AVI, MPEG-TS/PS,
  Ogg): ``ready`` with ``duration_s`` null and nothing to search;
- anything else (empty, undecodable, unknown bytes): ``failed`` with ``error {code: "unreadable_file"}``.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

from airflow_provider_nairi.emulator import corpus, schemas
from airflow_provider_nairi.emulator.core import Core
from airflow_provider_nairi.emulator.protocol import Reply, invalid, page
from airflow_provider_nairi.emulator.routing import Context, route
from airflow_provider_nairi.emulator.state import Record, new_id, now, public
from airflow_provider_nairi.emulator.uploads import receive_upload

DEFAULT_LIMIT = 10
RECALL_WINDOW = 3
CHAT_PASSAGES = 3
SUMMARY_CHARS = 200
#: Magic bytes of the media containers the emulator calls readable: ``(offset, bytes)``.
MEDIA_SIGNATURES = (
    (4, b"ftyp"),
    (0, b"\x1a\x45\xdf\xa3"),
    (8, b"AVI "),
    (0, b"OggS"),
    (0, b"\x00\x00\x01\xba"),
)


def is_media(head: bytes) -> bool:
    if len(head) >= 189 and head[0] == 0x47 and head[188] == 0x47:  # MPEG-TS packets
        return True
    return any(head[offset : offset + len(magic)] == magic for offset, magic in MEDIA_SIGNATURES)


def inspect(core: Core, video: Record) -> dict[str, Any]:
    """The fields a finished processing run sets (see the module docstring)."""
    path = core.store.file_path(video["id"])
    filename = video["_filename"].lower()
    try:
        if filename.endswith(corpus.TRANSCRIPT_SUFFIXES):
            segments = corpus.parse_transcript(filename, path.read_bytes())
            rows = [[s.start_s, s.end_s, s.text] for s in segments]
            return {"status": "ready", "duration_s": segments[-1].end_s, "error": None, "_segments": rows}
        with path.open("rb") as handle:
            if is_media(handle.read(256)):
                return {"status": "ready", "duration_s": None, "error": None, "_segments": []}
        reason = "the file is not a transcript (.txt, .vtt, .srt) nor a known video container"
    except (OSError, ValueError) as error:
        reason = f"the file cannot be read: {error}"
    return {"status": "failed", "error": {"code": "unreadable_file", "message": reason}, "_segments": []}


async def process(core: Core, video_id: str) -> None:
    await asyncio.sleep(core.settings.video_delay)
    video = core.store.get("videos", video_id)
    if video is not None and video["status"] == "processing":
        core.update_record("videos", video, inspect(core, video))


def resume(core: Core) -> None:
    for video in list(core.store.tables["videos"].values()):
        if video["status"] == "processing":
            core.start(video["id"], process(core, video["id"]))


@route("GET", "/videos", "read")
async def list_videos(ctx: Context) -> Reply:
    """List videos."""
    return page(list(ctx.core.store.tables["videos"].values()), ctx.query, view=public)


@route("POST", "/videos", "write", kind="multipart", status=202)
async def upload_video(ctx: Context) -> Reply:
    """Upload a video or transcript (multipart: ``file``, ``title?``); it starts ``processing``."""
    core = ctx.core
    upload = await receive_upload(ctx.request, core.store.files_dir, core.settings.upload_limit, ("title",))
    try:
        title = upload.fields.get("title") or upload.filename or "video"
        if len(title) > 200 or not title.strip():
            raise invalid("title", "must be 1 to 200 characters")
        core.authenticate(ctx.request.headers)  # a key revoked during the upload creates nothing
        video_id = new_id("vid")
        assert upload.path is not None
        os.replace(upload.path, core.store.file_path(video_id))
    except BaseException:
        upload.discard()
        raise
    stamp = now()
    video = {
        "id": video_id,
        "title": title,
        "status": "processing",
        "size_bytes": upload.size,
        "duration_s": None,
        "error": None,
        "created_at": stamp,
        "updated_at": stamp,
        "_filename": upload.filename or title,
        "_segments": [],
    }
    core.store.put("videos", video_id, video)
    core.start(video_id, process(core, video_id))
    return Reply(public(video), 202)


@route("GET", "/videos/{video_id}", "read")
async def get_video(ctx: Context) -> Reply:
    """Get a video (poll its ``status``)."""
    return Reply(public(ctx.core.find("videos", ctx.params["video_id"], "video")))


@route("DELETE", "/videos/{video_id}", "write")
async def delete_video(ctx: Context) -> Reply:
    """Delete a video, its file and its transcript."""
    video = ctx.core.find("videos", ctx.params["video_id"], "video")
    ctx.core.stop(video["id"])
    ctx.core.store.delete("videos", video["id"])
    ctx.core.store.file_path(video["id"]).unlink(missing_ok=True)
    return Reply(status=204)


@route("POST", "/videos/{video_id}/reprocess", "write", body=schemas.Empty, body_optional=True, status=202)
async def reprocess_video(ctx: Context) -> Reply:
    """Process a video again; it goes back to ``processing``."""
    video = ctx.core.find("videos", ctx.params["video_id"], "video")
    video = ctx.core.update_record("videos", video, {"status": "processing", "error": None})
    ctx.core.start(video["id"], process(ctx.core, video["id"]))
    return Reply(public(video), 202)


def segments_in_scope(core: Core, video_ids: list[str] | None) -> list[tuple[str, list[list[Any]]]]:
    """``(video_id, segments)`` of the ready videos asked for (all when ``video_ids`` is None)."""
    for video_id in video_ids or ():
        core.find("videos", video_id, "video", "video_ids")
    wanted = set(video_ids) if video_ids is not None else None
    return [
        (v["id"], v["_segments"])
        for v in core.store.tables["videos"].values()
        if v["status"] == "ready" and (wanted is None or v["id"] in wanted)
    ]


def ranked(documents: list[dict[str, Any]], query: str, limit: int) -> list[dict[str, Any]]:
    scores = corpus.bm25(query, [d["text"] for d in documents])
    hits = [{**d, "score": s} for d, s in zip(documents, scores, strict=True) if s > 0]
    hits.sort(key=lambda h: -h["score"])  # stable: ties keep upload and time order
    return hits[:limit]


def search_hits(core: Core, query: str, video_ids: list[str] | None, limit: int) -> list[dict[str, Any]]:
    documents = [
        {"video_id": video_id, "start_s": start, "end_s": end, "text": text}
        for video_id, segments in segments_in_scope(core, video_ids)
        for start, end, text in segments
    ]
    return ranked(documents, query, limit)


@route("POST", "/search", "read", body=schemas.Query)
async def search(ctx: Context) -> Reply:
    """Transcript segments that match a query, best first (BM25)."""
    body: schemas.Query = ctx.body
    return Reply(search_hits(ctx.core, body.query, body.video_ids, body.limit or DEFAULT_LIMIT))


@route("POST", "/recall", "read", body=schemas.Query)
async def recall(ctx: Context) -> Reply:
    """Passages (three consecutive segments) that match a query, best first, with a short summary."""
    body: schemas.Query = ctx.body
    documents = []
    for video_id, segments in segments_in_scope(ctx.core, body.video_ids):
        for first in range(0, len(segments), RECALL_WINDOW):
            window = segments[first : first + RECALL_WINDOW]
            text = " ".join(s[2] for s in window)
            documents.append(
                {"video_id": video_id, "start_s": window[0][0], "end_s": window[-1][1], "text": text}
            )
    hits = ranked(documents, body.query, body.limit or DEFAULT_LIMIT)
    for hit in hits:
        text = hit.pop("text")
        hit["summary"] = text if len(text) <= SUMMARY_CHARS else text[: SUMMARY_CHARS - 1].rstrip() + "…"
    return Reply(hits)


@route("POST", "/chat", "read", body=schemas.Chat)
async def chat(ctx: Context) -> Reply:
    """An answer built from the three best-matching segments, with their citations."""
    body: schemas.Chat = ctx.body
    hits = search_hits(ctx.core, body.message, body.video_ids, CHAT_PASSAGES)
    if not hits:
        return Reply({"answer": "I found nothing about that in your videos.", "citations": []})
    answer = "From your videos: " + " ... ".join(hit["text"] for hit in hits)
    citations = [{k: hit[k] for k in ("video_id", "start_s", "end_s")} for hit in hits]
    return Reply({"answer": answer, "citations": citations})
