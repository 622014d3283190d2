"""Event-driven DAGs: :class:`NairiEventTrigger`, a ``BaseEventTrigger`` for an ``AssetWatcher``.

It announces what happened in Nairi, one trigger event per item: each run of a scheduled job that ended,
each conversation of an agent that ended, or each video that became ready. Airflow turns every event into an
asset event (``extra["payload"]`` is the dict below) and runs the DAGs scheduled on that asset::

    nightly = Asset(
        "nairi://jobs/nightly-report",
        watchers=[AssetWatcher(name="nairi_nightly", trigger=NairiEventTrigger(job_name="nightly-report"))],
    )

    @dag(schedule=[nightly])
    def after_nightly(): ...

How it finds what ended (the contract has no "runs of a job" endpoint; ``docs/assets-and-events.md``): the
conversation list of the agent (``GET /conversations?agent_id=``) and the video list (``GET /videos``) are
ordered by creation and only ever grow, so the trigger keeps its **position** in that list (how many items it
has read) plus the ids it read while they were still working (``pending``, re-read one by one with ``GET``
until they end). A conversation is a run of the job when its ``metadata.job_id`` is the job's id or when it is
the job's ``last_run``.

Delivery guarantee (Airflow 3.3+, where the triggerer gives event triggers ``asset_state_store``):
**at-least-once, de-duplicated by id**. The position is written to the asset's state store
:data:`SETTLE_SECONDS` after the events it covers were handed to the triggerer (which persists them within
about two seconds), never before; the last :data:`RECENT_IDS` announced ids are kept with it. So a triggerer
restart neither loses an item nor announces it again, except when the triggerer dies within those seconds:
then the items of that one poll are announced a second time. Before 3.3 the position lives only in memory: a
restart starts again from the end of the list, and items that ended while no triggerer ran are not announced.

The trigger never ends and never raises (the triggerer would restart a failed watcher every second): every
error, transient or not, is logged and the poll retried with exponential backoff up to
:data:`MAX_BACKOFF_SECONDS` (at least ``Retry-After``).
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from airflow.providers.common.compat.triggers import BaseEventTrigger
from airflow.triggers.base import TriggerEvent

from airflow_provider_nairi.client.protocol import segment
from airflow_provider_nairi.exceptions import (
    NairiError,
    NairiNotFoundError,
    NairiRateLimitError,
    NairiServerError,
)
from airflow_provider_nairi.resources.conversation import ConversationStatus
from airflow_provider_nairi.resources.events import RemoteStatus
from airflow_provider_nairi.resources.lookup import find_by_name
from airflow_provider_nairi.resources.video import VideoStatus
from airflow_provider_nairi.validation import check_count, check_exactly_one, check_label, check_seconds

if TYPE_CHECKING:
    from airflow_provider_nairi.hooks.nairi import NairiAsyncHook

#: Seconds between handing events to the triggerer and writing the position past them: the triggerer ships
#: events to its supervisor about once a second, which persists them on its next loop.
SETTLE_SECONDS = 5.0
#: The longest wait between two polls after errors in a row.
MAX_BACKOFF_SECONDS = 600.0
#: Announced ids kept with the position to de-duplicate.
RECENT_IDS = 200
#: Items read per request, and pages read per poll at most (the rest is read on the next poll).
PAGE_SIZE = 200
MAX_PAGES_PER_POLL = 25
#: Pages the first walk of a list may read (to find its end) before it counts as a broken server.
MAX_START_PAGES = 10_000
#: An id the trigger accepts from the server: the contract's prefixed ids, bounded.
ID_PATTERN = re.compile(r"^[A-Za-z0-9_\-]{1,128}$")


def _statuses(enum: type[RemoteStatus], ended: bool) -> tuple[str, ...]:
    return tuple(member.value for member in enum if member.is_terminal == ended)


CONVERSATION_ENDED = _statuses(ConversationStatus, ended=True)  # completed, failed, cancelled
CONVERSATION_ACTIVE = _statuses(ConversationStatus, ended=False)
VIDEO_ENDED = _statuses(VideoStatus, ended=True)  # ready, failed
VIDEO_ACTIVE = _statuses(VideoStatus, ended=False)


def _checked_id(value: object) -> str | None:
    return value if isinstance(value, str) and ID_PATTERN.fullmatch(value) else None


def _short(value: object, limit: int = 64) -> str | None:
    return value[:limit] if isinstance(value, str) else None


@dataclass
class Position:
    """Where a feed stands: items of the list read, ids still working, ids announced lately.

    :param scope: the list the offset counts in (the job's agent id; ``"videos"``). When a job moves to
        another agent, the feed starts again at the end of the new agent's list.
    """

    scope: str
    offset: int = 0
    pending: list[str] = field(default_factory=list)
    recent: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"scope": self.scope, "offset": self.offset, "pending": self.pending, "recent": self.recent}

    @classmethod
    def from_json(cls, value: object) -> Position | None:
        """The stored position; ``None`` when there is none or it is not one (the feed starts anew)."""
        if not isinstance(value, Mapping):
            return None
        scope, offset = value.get("scope"), value.get("offset")
        pending, recent = value.get("pending"), value.get("recent")
        if not (isinstance(scope, str) and isinstance(offset, int) and offset >= 0):
            return None
        if not (isinstance(pending, list) and isinstance(recent, list)):
            return None
        return cls(
            scope,
            offset,
            [i for i in pending if _checked_id(i)],
            [i for i in recent if _checked_id(i)][-RECENT_IDS:],
        )

    def copy(self) -> Position:
        return Position(self.scope, self.offset, list(self.pending), list(self.recent))

    def announced(self, item_id: str) -> None:
        self.recent = [*self.recent, item_id][-RECENT_IDS:]


@dataclass
class Feed:
    """One source of events and the pure bookkeeping of its position (the trigger does the I/O).

    :param kind: ``scheduled_job_run``, ``conversation`` or ``video``.
    :param statuses: the ended statuses that are announced (others end silently).
    :param job_id: for ``scheduled_job_run``: the job whose runs count.
    :param max_pending: ids kept while they work; beyond it the oldest is given up (logged).
    """

    kind: str
    statuses: tuple[str, ...]
    job_id: str | None = None
    max_pending: int = 100
    dropped: list[str] = field(default_factory=list)

    @property
    def ended(self) -> tuple[str, ...]:
        return VIDEO_ENDED if self.kind == "video" else CONVERSATION_ENDED

    @property
    def active(self) -> tuple[str, ...]:
        return VIDEO_ACTIVE if self.kind == "video" else CONVERSATION_ACTIVE

    def belongs(self, item: Mapping[str, Any]) -> bool:
        """Whether a listed item is one this feed announces (a conversation of the job, for job runs)."""
        if self.kind != "scheduled_job_run":
            return True
        metadata = item.get("metadata")
        return isinstance(metadata, Mapping) and metadata.get("job_id") == self.job_id

    def read(
        self, position: Position, item: Mapping[str, Any], *, start: bool = False
    ) -> list[dict[str, Any]]:
        """Account for one item read from the list (or re-read while pending); the payloads to announce.

        ``start``: the first walk of a new feed, which announces nothing and only remembers what still works.
        An item whose id or status is not the contract's is skipped (never trusted, never announced).
        """
        item_id = _checked_id(item.get("id"))
        status = item.get("status")
        if item_id is None or status not in (*self.active, *self.ended):
            return []
        if status in self.active:
            if item_id not in position.pending:
                position.pending.append(item_id)
                while len(position.pending) > self.max_pending:
                    self.dropped.append(position.pending.pop(0))
            return []
        if item_id in position.pending:
            position.pending.remove(item_id)
        if item_id in position.recent:
            return []
        position.announced(item_id)  # ended: never announced again (nor when it ended before the feed began)
        if start or status not in self.statuses:
            return []
        return [self.payload(item_id, str(status), item)]

    def payload(self, item_id: str, status: str, item: Mapping[str, Any]) -> dict[str, Any]:
        """What an asset event carries: ids, status, counts and times; never a message text or a secret."""
        if self.kind == "video":
            return {
                "kind": "video",
                "video_id": item_id,
                "status": status,
                "size_bytes": item.get("size_bytes") if isinstance(item.get("size_bytes"), int) else None,
                "updated_at": _short(item.get("updated_at")),
            }
        last = item.get("last_message")
        reply_id = None
        if isinstance(last, Mapping) and last.get("role") == "assistant":
            reply_id = _checked_id(last.get("id"))
        error = item.get("error")
        payload: dict[str, Any] = {
            "kind": self.kind,
            "conversation_id": item_id,
            "status": status,
            "agent_id": _checked_id(item.get("agent_id")),
            "turns": item.get("turns") if isinstance(item.get("turns"), int) else None,
            "reply_message_id": reply_id,
            "error_code": _short(error.get("code")) if isinstance(error, Mapping) else None,
            "updated_at": _short(item.get("updated_at")),
        }
        if self.job_id is not None:
            payload["job_id"] = self.job_id
        return payload


class NairiEventTrigger(BaseEventTrigger):
    """Announce every run of a scheduled job that ended, every ended conversation of an agent, or every video
    that became ready: one trigger event each, for an ``AssetWatcher`` (Airflow 3).

    Give exactly one source: ``job_id`` or ``job_name`` (runs of a scheduled job), ``agent_id`` or
    ``agent_name`` (conversations of an agent), or ``videos=True``. Names are looked up when the trigger
    starts (one match exactly; none or several are logged and looked up again after a backoff).

    The event payload (``triggering_asset_events[asset][i].extra["payload"]``): ``kind``
    (``scheduled_job_run``, ``conversation``, ``video``), the ids (``conversation_id``, ``agent_id``,
    ``job_id``, ``reply_message_id``; or ``video_id``), ``status``, ``turns``, ``error_code``,
    ``updated_at``. Never the agent's text: read it with the ids.

    Guarantee, position, errors: see the module docstring and ``docs/assets-and-events.md``. Only the
    connection id and these parameters are serialized (never the position, never the key), so the watcher's
    identity does not change while it runs.

    :param job_id: the scheduled job whose runs are announced (or ``job_name``).
    :param agent_id: the agent whose conversations are announced (or ``agent_name``).
    :param videos: announce the org's videos that become ready.
    :param statuses: the ended statuses announced. Default ``("completed",)`` for conversations and job runs
        (also ``failed``, ``cancelled``), ``("ready",)`` for videos (also ``failed``).
    :param poll_interval: seconds between two polls (at least :data:`SETTLE_SECONDS`). Default 60.
    :param max_pending: items followed at once while they work (default 100); beyond it the oldest is given
        up, with a warning.
    :param conn_id: the Nairi connection.
    """

    #: Key prefix in the asset's state store (shared with tasks that use the asset: namespaced).
    STATE_KEY_PREFIX: ClassVar[str] = "nairi-event-trigger"

    def __init__(
        self,
        *,
        job_id: str | None = None,
        job_name: str | None = None,
        agent_id: str | None = None,
        agent_name: str | None = None,
        videos: bool = False,
        statuses: Sequence[str] | None = None,
        poll_interval: float = 60.0,
        max_pending: int = 100,
        conn_id: str = "nairi_default",
    ) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        source = check_exactly_one(
            job_id=job_id, job_name=job_name, agent_id=agent_id, agent_name=agent_name, videos=videos or None
        )
        if source != "videos":
            check_label(source, locals()[source])
        self.kind = {"videos": "video", "agent_id": "conversation", "agent_name": "conversation"}.get(
            source, "scheduled_job_run"
        )
        ended = VIDEO_ENDED if self.kind == "video" else CONVERSATION_ENDED
        chosen = tuple(statuses) if statuses is not None else ended[:1]
        if not chosen or any(s not in ended for s in chosen):
            raise ValueError(
                f"statuses: choose among {', '.join(ended)} for a {self.kind} feed, got {chosen!r}"
            )
        check_seconds("poll_interval", poll_interval)
        if poll_interval < SETTLE_SECONDS:
            raise ValueError(f"poll_interval: at least {SETTLE_SECONDS:g} seconds, got {poll_interval!r}")
        if check_count("max_pending", max_pending) < 1:
            raise ValueError("max_pending: at least 1")
        self.job_id, self.job_name = job_id, job_name
        self.agent_id, self.agent_name = agent_id, agent_name
        self.videos = bool(videos)
        self.statuses = chosen
        self.poll_interval = float(poll_interval)
        self.max_pending = int(max_pending)
        self.conn_id = conn_id
        self._resolved: str | None = None  # the id of the job or agent named, looked up once per run

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "job_id": self.job_id,
                "job_name": self.job_name,
                "agent_id": self.agent_id,
                "agent_name": self.agent_name,
                "videos": self.videos,
                "statuses": list(self.statuses),
                "poll_interval": self.poll_interval,
                "max_pending": self.max_pending,
                "conn_id": self.conn_id,
            },
        )

    # -- the position in the asset's state store ------------------------------------------------------------

    def _accessors(self) -> list[Any]:
        """The state store of each watched asset (several when assets share this trigger), or none (< 3.3)."""
        store = getattr(self, "asset_state_store", None)
        if store is None:
            return []
        by_name, by_uri = getattr(store, "_by_name", None), getattr(store, "_by_uri", None)
        if isinstance(by_name, dict) and isinstance(by_uri, dict):
            return [*by_name.values(), *by_uri.values()]
        return [store]

    def state_key(self, source_id: str) -> str:
        """The key of this feed's position: by the job's or agent's id (stable across name changes of the
        DAG's arguments), ``videos`` for the video feed."""
        return f"{self.STATE_KEY_PREFIX}:{self.kind}:{source_id}"

    async def load_position(self, source_id: str) -> Position | None:
        for accessor in self._accessors():
            position = Position.from_json(await accessor.aget(self.state_key(source_id)))
            if position is not None:
                return position
        return None

    async def save_position(self, source_id: str, position: Position) -> None:
        value = position.to_json()
        json.dumps(value)  # JSON only, by construction; fail here rather than in the store
        for accessor in self._accessors():
            await accessor.aset(self.state_key(source_id), value)

    # -- I/O -------------------------------------------------------------------------------------------------

    async def _list_page(self, client: Any, path: str, params: dict[str, Any], offset: int) -> list[Any]:
        items = await client.request("GET", path, params={**params, "limit": PAGE_SIZE, "offset": offset})
        if not isinstance(items, list):
            raise NairiServerError(f"GET {path} answered without a list.", code="malformed_answer")
        return items

    async def _find_id(self, client: Any, path: str, kind: str, name: str) -> str:
        """The id of the one ``kind`` called ``name``, over the whole list (``find_by_name``)."""
        items: list[Any] = []
        for _ in range(MAX_START_PAGES):
            page = await self._list_page(client, path, {}, len(items))
            items += page
            if len(page) < PAGE_SIZE:
                break
        found = find_by_name([i for i in items if isinstance(i, Mapping)], name, kind)
        if found is None:
            raise NairiNotFoundError(f"no {kind} is named {name!r}.", code="not_found")
        return str(found["id"])

    async def source(self, client: Any) -> tuple[str, str, str | None]:
        """``(source id, scope, the job's last run)``: what a poll reads. The job is read on every poll (its
        agent may change); names are looked up once per trigger run."""
        if self.kind == "video":
            return "videos", "videos", None
        if self.kind == "conversation":
            if self._resolved is None:
                self._resolved = self.agent_id or await self._find_id(
                    client, "/agents", "agent", str(self.agent_name)
                )
            return self._resolved, self._resolved, None
        if self._resolved is None:
            self._resolved = self.job_id or await self._find_id(
                client, "/scheduled-jobs", "scheduled job", str(self.job_name)
            )
        job = await client.request("GET", f"/scheduled-jobs/{segment(self._resolved)}")
        agent = _checked_id(job.get("agent_id")) if isinstance(job, Mapping) else None
        if agent is None:
            raise NairiServerError(
                f"scheduled job {self._resolved} has no valid agent_id.", code="malformed_answer"
            )
        last_run = job.get("last_run")
        last_run_id = _checked_id(last_run.get("conversation_id")) if isinstance(last_run, Mapping) else None
        return self._resolved, agent, last_run_id

    async def poll(
        self, client: Any, source: tuple[str, str, str | None], position: Position | None
    ) -> tuple[Position, list[dict[str, Any]]]:
        """One poll of ``source`` (from :meth:`source`): the new position and the payloads to announce.

        Without a position (or when the job's agent changed) the feed starts: it walks the whole list to its
        end, announcing nothing, and remembers what still works (announced when it ends).
        """
        source_id, scope, last_run_id = source
        feed = Feed(
            self.kind,
            self.statuses,
            source_id if self.kind == "scheduled_job_run" else None,
            self.max_pending,
        )
        start = position is None or position.scope != scope
        if start and position is not None:
            self.log.info("Scheduled job %s moved to agent %s: following it from now on", source_id, scope)
        new = Position(scope) if start or position is None else position.copy()
        path = "/videos" if self.kind == "video" else "/conversations"
        params = {} if self.kind == "video" else {"agent_id": scope}
        listed: set[str] = set()
        payloads: list[dict[str, Any]] = []
        for _ in range(MAX_START_PAGES if start else MAX_PAGES_PER_POLL):
            items = await self._list_page(client, path, params, new.offset)
            new.offset += len(items)
            for item in items:
                if isinstance(item, Mapping) and feed.belongs(item):
                    listed.add(str(item.get("id")))
                    payloads += feed.read(new, item, start=start)
            if len(items) < PAGE_SIZE:
                break
        else:
            if start:
                raise NairiServerError(f"GET {path} did not end after {MAX_START_PAGES} pages.")
        if last_run_id is not None and last_run_id not in new.pending and last_run_id not in new.recent:
            new.pending.append(last_run_id)  # a run without metadata.job_id: followed through last_run
        for item_id in list(new.pending):
            if not start or item_id not in listed:  # just read as working: re-read on the next poll
                payloads += await self._reread(client, feed, new, item_id, start)
        for item_id in feed.dropped:
            self.log.warning(
                "Gave up following %s %s: more than %d items work at once",
                self.kind,
                item_id,
                self.max_pending,
            )
        return new, payloads

    async def _reread(
        self, client: Any, feed: Feed, position: Position, item_id: str, start: bool
    ) -> list[dict[str, Any]]:
        path = f"/videos/{segment(item_id)}" if self.kind == "video" else f"/conversations/{segment(item_id)}"
        try:
            item = await client.request("GET", path)
        except NairiNotFoundError:
            position.pending.remove(item_id)
            self.log.warning("%s %s is gone; no longer followed", self.kind, item_id)
            return []
        return feed.read(position, item, start=start) if isinstance(item, Mapping) else []

    async def run(self) -> AsyncIterator[TriggerEvent]:
        from airflow_provider_nairi.client.protocol import polling  # noqa: PLC0415 (not at DAG parse)

        hook = self.make_hook()
        positions: dict[str, Position | None] = {}
        errors_in_row = 0
        try:
            while True:
                delay = self.poll_interval
                try:
                    client = await hook.get_async_client()
                    with polling():
                        source = await self.source(client)
                        if source[0] not in positions:
                            positions[source[0]] = await self.load_position(source[0])
                        new, payloads = await self.poll(client, source, positions[source[0]])
                except Exception as error:  # a watcher that raises is restarted every second: never raise
                    errors_in_row += 1
                    delay = self.backoff(error, errors_in_row)
                    await asyncio.sleep(delay)
                    continue
                errors_in_row = 0
                for payload in payloads:
                    yield TriggerEvent(payload)  # type: ignore[no-untyped-call]
                if payloads:
                    self.log.info("Announced %d %s event(s) from %s", len(payloads), self.kind, source[0])
                    await asyncio.sleep(
                        SETTLE_SECONDS
                    )  # the triggerer persists them before the position moves
                    delay -= SETTLE_SECONDS
                try:
                    await self.save_position(source[0], new)
                except Exception as error:
                    self.log.warning("Could not store the feed's position (kept in memory): %s", error)
                positions[source[0]] = new
                await asyncio.sleep(delay)
        finally:
            await hook.close()

    def backoff(self, error: Exception, errors_in_row: int) -> float:
        """Seconds to wait after the ``errors_in_row``-th failed poll in a row (logged): doubling from the
        poll interval up to :data:`MAX_BACKOFF_SECONDS`, at least ``Retry-After``."""
        delay = min(self.poll_interval * 2.0 ** min(errors_in_row - 1, 10), MAX_BACKOFF_SECONDS)
        if isinstance(error, NairiRateLimitError) and error.retry_after:
            delay = max(delay, min(float(error.retry_after), MAX_BACKOFF_SECONDS))
        transient = isinstance(error, NairiError) and error.retryable
        (self.log.warning if transient else self.log.error)(
            "Nairi %s feed: poll failed (%d in a row), next try in %.0f s: %s",
            self.kind,
            errors_in_row,
            delay,
            error,
        )
        return delay

    def make_hook(self) -> NairiAsyncHook:
        from airflow_provider_nairi.hooks.nairi import NairiAsyncHook  # noqa: PLC0415

        return NairiAsyncHook(self.conn_id)
