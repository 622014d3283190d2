"""THE table of the Nairi API: every endpoint written once, for the sync and the async client alike.

Each endpoint is a function that builds a :class:`Call` (method, path, query, body, idempotency key, the shape
the answer must have). A descriptor turns it into a method of whatever API object it is read from: on a
:class:`SyncTransport` (``NairiClient``) a call returns the answer, on an :class:`AsyncTransport`
(``AsyncNairiClient``) it returns a coroutine of the same answer. mypy checks both uses (the descriptors'
overloads): ``client.get_conversation("c")`` is ``dict[str, Any]``, ``await aclient.get_conversation("c")``
too, and a wrong argument type is an error on both.

Said once for every endpoint below:

- **Answers.** Each returns the API's ``data``: a dict, or a list of dicts. ``list_*`` endpoints (``@pages``)
  read every page, de-duplicated by ``id``, oldest first: lazily on the sync client (nothing is sent until
  the first item is asked for, one request per page of 200), into a list on the async one.
- **Retries.** Every call is retried on 429, 5xx, connection errors, timeouts and malformed answers
  (``docs/errors-and-retries.md``); the async client waits without blocking. Errors are
  :class:`~airflow_provider_nairi.exceptions.NairiError` subclasses: 401/403 ``NairiAuthError`` (the key, its
  scope), 404 ``NairiNotFoundError`` (no such object in this org; also a DELETE retried after a first try
  that did delete it), 422 ``NairiValidationError`` (a field; ``error.fields`` names them).
- **Idempotency.** Every POST carries an Idempotency-Key: ``idempotency_key`` when given (pass one stable
  across retries of your task, e.g. :func:`~airflow_provider_nairi.idempotency.task_idempotency_key`, so a
  retried task replays the first answer instead of creating a second object), otherwise a fresh key that only
  this call's retries reuse; 409 ``idempotency_key_reused``: the same key with another body. PUT, PATCH,
  DELETE and GET carry none (PUT and DELETE are idempotent; a PATCH retry re-sends the same fields).
- **A call built once.** ``Endpoints.get_conversation.build("c")`` is the endpoint's :class:`Call` itself;
  ``client.send(call)`` (awaited on the async client) sends it, as often as needed: a trigger polling one
  conversation builds its call once, not on every poll.
- **Uploads and downloads** (``@sync_only``) stream in constant memory and exist on the sync client only.

Pure: imports no Airflow.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import types
from abc import ABC, abstractmethod
from collections.abc import Callable, Coroutine, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, ParamSpec, TypeVar, overload

from airflow_provider_nairi.client.protocol import Shape, segment
from airflow_provider_nairi.exceptions import NairiConfigurationError, NairiServerError

T = TypeVar("T")
P = ParamSpec("P")
Item = dict[str, Any]

#: What ``upload_artifact`` / ``upload_video`` accept: a path, an open binary file, or an object with
#: ``open("rb")`` (an ``ObjectStoragePath``).
UploadSource = Any
#: What ``download_artifact`` writes to: a path, or an open binary file.
DownloadTarget = Any


def _without_none(**fields: Any) -> dict[str, Any]:
    return {k: v for k, v in fields.items() if v is not None}


@dataclass(frozen=True)
class Upload:
    """A multipart upload: ``source`` as the part ``file``, plus ``fields``."""

    source: UploadSource
    fields: Mapping[str, str]


@dataclass(frozen=True)
class Download:
    """A streamed download into ``target``, checked against the expected sha256 and size."""

    target: DownloadTarget
    expected_sha256: str | None = None
    expected_size: int | None = None


@dataclass(slots=True)  # one per call, read once by the transport: not frozen (whose __init__ costs 5x)
class Call(Generic[T]):
    """One call of the API, as data: what a transport sends, whatever its I/O. Built by an endpoint and
    read, never changed, by the transport.

    :param expect: the shape the answer's ``data`` must have (``"object"``, ``"list"``), else a malformed
        answer.
    :param pages: a list endpoint: every page is read (``params`` are its filters).
    :param pick: the answer's field that is the result (checked to be an object).
    """

    method: str
    path: str
    params: Mapping[str, Any] | None = None
    json: Any = None
    idempotency_key: str | None = None
    expect: Shape | None = None
    pages: bool = False
    pick: str | None = None
    upload: Upload | None = None
    download: Download | None = None

    def request_options(self) -> dict[str, Any]:
        """The keyword arguments of ``request(method, path, ...)`` for this call."""
        return {
            "params": self.params,
            "json": self.json,
            "idempotency_key": self.idempotency_key,
            "expect": self.expect,
        }

    def result(self, data: Any) -> T:
        """The endpoint's result from the answer's ``data``."""
        if self.pick is None:
            return data  # type: ignore[no-any-return]
        picked = data.get(self.pick) if isinstance(data, dict) else None
        if not isinstance(picked, dict):
            raise NairiServerError(
                f"the answer holds no {self.pick} object.",
                code="malformed_answer",
                method=self.method,
                path=self.path,
            )
        return picked  # type: ignore[return-value]


class SyncTransport(ABC):
    """Sends a :class:`Call` and returns its result (list endpoints: a lazy iterator)."""

    @abstractmethod
    def send(self, call: Call[T]) -> T:
        """Send ``call``; return its result."""


class AsyncTransport(ABC):
    """Sends a :class:`Call` without blocking (list endpoints: all pages, as a list)."""

    @abstractmethod
    async def send(self, call: Call[T]) -> T:
        """Send ``call``; return its result."""


class _Descriptor(Generic[P, T]):
    def __init__(self, build: Callable[P, Call[T]]) -> None:
        self.build = build
        self.__doc__ = build.__doc__
        self.__name__ = build.__name__
        self.__wrapped__ = build

        def method(api: SyncTransport | AsyncTransport, /, *args: Any, **kwargs: Any) -> Any:
            return api.send(build(*args, **kwargs))

        functools.update_wrapper(method, build)
        signature = inspect.signature(build)
        api = inspect.Parameter("api", inspect.Parameter.POSITIONAL_ONLY)
        method.__signature__ = signature.replace(  # type: ignore[attr-defined]
            parameters=[api, *signature.parameters.values()]
        )
        self._method = method

    def bind(self, api: SyncTransport | AsyncTransport) -> Callable[..., Any]:
        """The endpoint as a method of ``api``, made once per API object: kept in its ``__dict__``, where
        later look-ups find it before this descriptor (a trigger calls its endpoint on every poll). A bound
        method of one function per endpoint: one object per API object (a triggerer holds one client per
        waiting trigger), named, documented and with the signature of the endpoint."""
        method = types.MethodType(self._method, api)
        with contextlib.suppress(AttributeError):  # an API object without a __dict__ binds every time
            vars(api)[self.__name__] = method
        return method


class endpoint(_Descriptor[P, T]):
    """An endpoint with one answer: ``T`` on the sync client, a coroutine of ``T`` on the async one."""

    @overload
    def __get__(self, api: None, owner: type) -> endpoint[P, T]: ...
    @overload
    def __get__(self, api: SyncTransport, owner: type) -> Callable[P, T]: ...
    @overload
    def __get__(self, api: AsyncTransport, owner: type) -> Callable[P, Coroutine[Any, Any, T]]: ...
    def __get__(self, api: Any, owner: type) -> Any:
        return self if api is None else self.bind(api)


class pages(_Descriptor[P, Item]):
    """A list endpoint: a lazy iterator of items on the sync client, a list of them on the async one."""

    @overload
    def __get__(self, api: None, owner: type) -> pages[P]: ...
    @overload
    def __get__(self, api: SyncTransport, owner: type) -> Callable[P, Iterator[Item]]: ...
    @overload
    def __get__(self, api: AsyncTransport, owner: type) -> Callable[P, Coroutine[Any, Any, list[Item]]]: ...
    def __get__(self, api: Any, owner: type) -> Any:
        return self if api is None else self.bind(api)


class sync_only(_Descriptor[P, T]):
    """An upload or a download: streamed by the sync client only (on the async one, mypy reports the use and
    the call raises ``NairiConfigurationError``)."""

    @overload
    def __get__(self, api: None, owner: type) -> sync_only[P, T]: ...
    @overload
    def __get__(self, api: SyncTransport, owner: type) -> Callable[P, T]: ...
    def __get__(self, api: Any, owner: type) -> Any:
        if api is None:
            return self
        if isinstance(api, AsyncTransport):
            raise NairiConfigurationError(
                f"{self.__name__} streams a file and exists on the sync client only (NairiClient)."
            )
        return self.bind(api)


class Endpoints:
    """Every endpoint of ``nairi-api.md`` (see the module docstring for what all of them share)."""

    # -- org -------------------------------------------------------------------------------------------------

    @endpoint
    def get_me() -> Call[Item]:
        """The org and key of the connection: ``{org: {id, name}, key: {name, hint, scopes}}``. Scope
        ``read``; 401: the key is invalid or revoked."""
        return Call("GET", "/me", expect="object")

    # -- agents ----------------------------------------------------------------------------------------------

    @pages
    def list_agents() -> Call[Item]:
        """Every agent of the org. Scope ``read``."""
        return Call("GET", "/agents", pages=True)

    @endpoint
    def create_agent(
        name: str,
        instructions: str,
        model: str | None = None,
        vault_ids: Sequence[str] | None = None,
        *,
        idempotency_key: str | None = None,
    ) -> Call[Item]:
        """Create an agent; return it (``id`` ``agt_...``). Scope ``write``; 422: an invalid field, e.g. an
        unknown vault id."""
        body = _without_none(
            name=name,
            instructions=instructions,
            model=model,
            vault_ids=list(vault_ids) if vault_ids else None,
        )
        return Call("POST", "/agents", json=body, idempotency_key=idempotency_key, expect="object")

    @endpoint
    def get_agent(agent_id: str) -> Call[Item]:
        """The agent ``agent_id``. Scope ``read``."""
        return Call("GET", f"/agents/{segment(agent_id)}", expect="object")

    @endpoint
    def update_agent(agent_id: str, **fields: Any) -> Call[Item]:
        """PATCH the given fields (``name``, ``instructions``, ``model``, ``vault_ids``); return the updated
        agent. Scope ``write``."""
        return Call("PATCH", f"/agents/{segment(agent_id)}", json=fields, expect="object")

    @endpoint
    def delete_agent(agent_id: str) -> Call[None]:
        """Delete the agent ``agent_id``; returns None (204). Scope ``write``."""
        return Call("DELETE", f"/agents/{segment(agent_id)}")

    # -- conversations ---------------------------------------------------------------------------------------

    @pages
    def list_conversations(agent_id: str | None = None, status: str | None = None) -> Call[Item]:
        """Every conversation of the org, filtered by ``agent_id`` and ``status`` when given. Scope
        ``read``."""
        return Call("GET", "/conversations", params={"agent_id": agent_id, "status": status}, pages=True)

    @endpoint
    def create_conversation(
        agent_id: str,
        message: str,
        artifact_ids: Sequence[str] | None = None,
        title: str | None = None,
        metadata: Mapping[str, str] | None = None,
        *,
        idempotency_key: str | None = None,
    ) -> Call[Item]:
        """Start a conversation; it comes back ``queued``: poll ``get_conversation`` until its status is
        neither ``queued`` nor ``running``. Scope ``write``; 422: e.g. an unknown ``agent_id``."""
        body = _without_none(
            agent_id=agent_id,
            message=message,
            artifact_ids=list(artifact_ids) if artifact_ids else None,
            title=title,
            metadata=dict(metadata) if metadata else None,
        )
        return Call("POST", "/conversations", json=body, idempotency_key=idempotency_key, expect="object")

    @endpoint
    def get_conversation(conversation_id: str) -> Call[Item]:
        """The conversation ``conversation_id``: ``status`` (``queued``, ``running``, ``completed``,
        ``failed`` with ``error``, ``cancelled``), ``turns``, ``last_message``. Scope ``read``."""
        return Call("GET", f"/conversations/{segment(conversation_id)}", expect="object")

    @pages
    def list_messages(conversation_id: str) -> Call[Item]:
        """The conversation's messages. Scope ``read``; 404: no such conversation."""
        return Call("GET", f"/conversations/{segment(conversation_id)}/messages", pages=True)

    @endpoint
    def send_message(
        conversation_id: str,
        content: str,
        artifact_ids: Sequence[str] | None = None,
        *,
        idempotency_key: str | None = None,
    ) -> Call[Item]:
        """Add a user turn to a conversation; return the new message. Scope ``write``; 409
        ``conversation_busy`` (``NairiConflictError``, not retried): the conversation is still ``queued`` or
        ``running``; wait for it first."""
        body = _without_none(content=content, artifact_ids=list(artifact_ids) if artifact_ids else None)
        path = f"/conversations/{segment(conversation_id)}/messages"
        return Call("POST", path, json=body, idempotency_key=idempotency_key, expect="object")

    @endpoint
    def cancel_conversation(conversation_id: str) -> Call[Item]:
        """Cancel a conversation; return it (``cancelled``, or unchanged if it had already ended; cancelling
        twice is harmless). Scope ``write``."""
        return Call("POST", f"/conversations/{segment(conversation_id)}/cancel", expect="object")

    # -- artifacts -------------------------------------------------------------------------------------------

    @pages
    def list_artifacts(conversation_id: str | None = None) -> Call[Item]:
        """Every artifact of the org, or of one conversation when ``conversation_id`` is given. Scope
        ``read``."""
        return Call("GET", "/artifacts", params={"conversation_id": conversation_id}, pages=True)

    @sync_only
    def upload_artifact(
        source: UploadSource,
        name: str | None = None,
        conversation_id: str | None = None,
        *,
        idempotency_key: str | None = None,
    ) -> Call[Item]:
        """Upload a file (path, seekable binary file or ``ObjectStoragePath``) as an artifact; return it (with
        ``sha256``). Streamed in 1 MiB chunks; each retry re-reads the source from its start. Scope
        ``write``; 413: over the server's size limit."""
        fields = _without_none(name=name, conversation_id=conversation_id)
        return Call(
            "POST",
            "/artifacts",
            idempotency_key=idempotency_key,
            expect="object",
            upload=Upload(source, fields),
        )

    @endpoint
    def get_artifact(artifact_id: str) -> Call[Item]:
        """The artifact's metadata (``name``, ``content_type``, ``size_bytes``, ``sha256``...); the bytes come
        from ``download_artifact``. Scope ``read``."""
        return Call("GET", f"/artifacts/{segment(artifact_id)}", expect="object")

    @endpoint
    def delete_artifact(artifact_id: str) -> Call[None]:
        """Delete the artifact ``artifact_id``; returns None (204). Scope ``write``."""
        return Call("DELETE", f"/artifacts/{segment(artifact_id)}")

    @sync_only
    def download_artifact(
        artifact_id: str,
        destination: DownloadTarget,
        *,
        expected_sha256: str | None = None,
        expected_size: int | None = None,
    ) -> Call[int]:
        """Stream an artifact's bytes to ``destination``; return the number of bytes written.

        A path is written to a temporary file beside it and renamed over it only after the sha256 matched
        (removed on failure: never a partial file); a binary file object is written in place. After a broken
        connection the rest is asked for with ``Range`` (a 206 continues only from the byte asked for, with
        the same total; a 200 restarts). The byte count must match ``expected_size`` (the artifact's
        ``size_bytes``) and what the answer announced, else ``NairiServerError`` (``size_mismatch``). The
        sha256 is checked against ``ETag`` and ``expected_sha256``, else ``NairiChecksumError`` (retryable by
        Airflow). Scope ``read``.
        """
        target = Download(destination, expected_sha256, expected_size)
        return Call("GET", f"/artifacts/{segment(artifact_id)}/content", download=target)

    # -- vaults ----------------------------------------------------------------------------------------------

    @pages
    def list_vaults() -> Call[Item]:
        """Every vault of the org (names and ids; secret values are write-only). Scope ``read``."""
        return Call("GET", "/vaults", pages=True)

    @endpoint
    def create_vault(name: str, *, idempotency_key: str | None = None) -> Call[Item]:
        """Create a vault; return it (``id`` ``vlt_...``). Scope ``write``."""
        return Call("POST", "/vaults", json={"name": name}, idempotency_key=idempotency_key, expect="object")

    @endpoint
    def get_vault(vault_id: str) -> Call[Item]:
        """The vault ``vault_id`` (``secret_names``; secret values are never returned). Scope ``read``."""
        return Call("GET", f"/vaults/{segment(vault_id)}", expect="object")

    @endpoint
    def delete_vault(vault_id: str) -> Call[None]:
        """Delete the vault ``vault_id``; returns None (204). Scope ``write``."""
        return Call("DELETE", f"/vaults/{segment(vault_id)}")

    @endpoint
    def put_vault_secret(vault_id: str, name: str, value: str) -> Call[Item]:
        """Create or overwrite a secret of a vault; return ``{name, updated_at}`` (values are write-only).
        Scope ``write``."""
        path = f"/vaults/{segment(vault_id)}/secrets/{segment(name)}"
        return Call("PUT", path, json={"value": value}, expect="object")

    @endpoint
    def delete_vault_secret(vault_id: str, name: str) -> Call[None]:
        """Delete the secret ``name`` of a vault; returns None (204). Scope ``write``."""
        return Call("DELETE", f"/vaults/{segment(vault_id)}/secrets/{segment(name)}")

    # -- env vars --------------------------------------------------------------------------------------------

    @pages
    def list_env_vars() -> Call[Item]:
        """Every env var of the org; secret values come back as None. Scope ``read``."""
        return Call("GET", "/env-vars", pages=True)

    @endpoint
    def put_env_var(name: str, value: str, secret: bool = False) -> Call[Item]:
        """Create or overwrite the org's env var ``name``; return it (``value`` is None when ``secret``).
        Scope ``write``; 422: ``name`` is not a valid env var name."""
        return Call(
            "PUT", f"/env-vars/{segment(name)}", json={"value": value, "secret": secret}, expect="object"
        )

    @endpoint
    def delete_env_var(name: str) -> Call[None]:
        """Delete the env var ``name``; returns None (204). Scope ``write``."""
        return Call("DELETE", f"/env-vars/{segment(name)}")

    # -- scheduled jobs --------------------------------------------------------------------------------------

    @pages
    def list_scheduled_jobs() -> Call[Item]:
        """Every scheduled job of the org. Scope ``read``."""
        return Call("GET", "/scheduled-jobs", pages=True)

    @endpoint
    def create_scheduled_job(
        name: str,
        agent_id: str,
        message: str,
        cron: str,
        timezone: str | None = None,
        enabled: bool | None = None,
        *,
        idempotency_key: str | None = None,
    ) -> Call[Item]:
        """Create a job that starts a conversation with ``agent_id`` on ``cron`` (in ``timezone``); return it.
        Scope ``write``; 422: e.g. an invalid cron expression or time zone."""
        body = _without_none(
            name=name, agent_id=agent_id, message=message, cron=cron, timezone=timezone, enabled=enabled
        )
        return Call("POST", "/scheduled-jobs", json=body, idempotency_key=idempotency_key, expect="object")

    @endpoint
    def get_scheduled_job(job_id: str) -> Call[Item]:
        """The scheduled job ``job_id``. Scope ``read``."""
        return Call("GET", f"/scheduled-jobs/{segment(job_id)}", expect="object")

    @endpoint
    def update_scheduled_job(job_id: str, **fields: Any) -> Call[Item]:
        """PATCH the given fields of a scheduled job (``cron``, ``enabled``, ``message``...); return the
        updated job. Scope ``write``."""
        return Call("PATCH", f"/scheduled-jobs/{segment(job_id)}", json=fields, expect="object")

    @endpoint
    def delete_scheduled_job(job_id: str) -> Call[None]:
        """Delete the scheduled job ``job_id``; returns None (204). Scope ``write``."""
        return Call("DELETE", f"/scheduled-jobs/{segment(job_id)}")

    @endpoint
    def run_scheduled_job(job_id: str, *, idempotency_key: str | None = None) -> Call[Item]:
        """Run the job now; return the conversation it started (poll it with ``get_conversation``). Scope
        ``write``."""
        path = f"/scheduled-jobs/{segment(job_id)}/run"
        return Call("POST", path, idempotency_key=idempotency_key, expect="object", pick="conversation")

    # -- videos ----------------------------------------------------------------------------------------------

    @pages
    def list_videos() -> Call[Item]:
        """Every video of the org. Scope ``read``."""
        return Call("GET", "/videos", pages=True)

    @sync_only
    def upload_video(
        source: UploadSource, title: str | None = None, *, idempotency_key: str | None = None
    ) -> Call[Item]:
        """Upload a video file (path, seekable binary file or ``ObjectStoragePath``); return it
        (``processing``: poll ``get_video`` until ``ready`` or ``failed``). Streamed in constant memory.
        Scope ``write``; 413: over the server's size limit."""
        upload = Upload(source, _without_none(title=title))
        return Call("POST", "/videos", idempotency_key=idempotency_key, expect="object", upload=upload)

    @endpoint
    def get_video(video_id: str) -> Call[Item]:
        """The video ``video_id`` (``status``: ``processing``, ``ready`` or ``failed`` with ``error``). Scope
        ``read``."""
        return Call("GET", f"/videos/{segment(video_id)}", expect="object")

    @endpoint
    def delete_video(video_id: str) -> Call[None]:
        """Delete the video ``video_id``; returns None (204). Scope ``write``."""
        return Call("DELETE", f"/videos/{segment(video_id)}")

    @endpoint
    def reprocess_video(video_id: str, *, idempotency_key: str | None = None) -> Call[Item]:
        """Process a video again; it comes back ``processing``: poll ``get_video``. Scope ``write``."""
        path = f"/videos/{segment(video_id)}/reprocess"
        return Call("POST", path, idempotency_key=idempotency_key, expect="object")

    # -- corpus (read-only POSTs) ----------------------------------------------------------------------------

    @endpoint
    def search(
        query: str, limit: int | None = None, video_ids: Sequence[str] | None = None
    ) -> Call[list[Item]]:
        """Transcript passages matching ``query``: ``[{video_id, start_s, end_s, text, score}]``, best first
        (a list, not lazy). Scope ``read``; 422: ``limit`` over 50."""
        body = _without_none(query=query, limit=limit, video_ids=list(video_ids) if video_ids else None)
        return Call("POST", "/search", json=body, expect="list")

    @endpoint
    def recall(
        query: str, limit: int | None = None, video_ids: Sequence[str] | None = None
    ) -> Call[list[Item]]:
        """Summarised moments matching ``query``: ``[{video_id, start_s, end_s, summary, score}]``, best first
        (a list, not lazy). Scope ``read``; 422: ``limit`` over 50."""
        body = _without_none(query=query, limit=limit, video_ids=list(video_ids) if video_ids else None)
        return Call("POST", "/recall", json=body, expect="list")

    @endpoint
    def chat(message: str, video_ids: Sequence[str] | None = None) -> Call[Item]:
        """Ask the video corpus a question: ``{answer, citations: [{video_id, start_s, end_s}]}`` (a single
        read-only answer, not a conversation). Scope ``read``."""
        body = _without_none(message=message, video_ids=list(video_ids) if video_ids else None)
        return Call("POST", "/chat", json=body, expect="object")


#: The names of every endpoint of :class:`Endpoints`, in table order.
ENDPOINT_NAMES = tuple(name for name, value in vars(Endpoints).items() if isinstance(value, _Descriptor))
#: The endpoints the async client has too (all but the uploads and downloads).
ASYNC_ENDPOINT_NAMES = tuple(
    name for name in ENDPOINT_NAMES if not isinstance(vars(Endpoints)[name], sync_only)
)
