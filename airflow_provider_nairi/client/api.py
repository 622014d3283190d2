"""Every endpoint of the Nairi API, written once over four primitives.

:class:`NairiApi` is what :class:`~airflow_provider_nairi.client.sync.NairiClient` and
  :class:`~airflow_provider_nairi.hooks.nairi.NairiHook` share: each method returns the API's ``data`` (dicts,
  or lists of dicts); every ``list_*`` method is a lazy iterator over all pages (see ``paginate``),
  de-duplicated by ``id``. Methods that create something take ``idempotency_key``: pass a key that is stable
  across retries of your task (:func:`airflow_provider_nairi.idempotency.task_idempotency_key`) so a retried
  task replays the first answer instead of creating a second object. Without one, each call gets a fresh key
  that only its own retries reuse.

Pure: imports no Airflow.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from airflow_provider_nairi.client.protocol import DEFAULT_PAGE_SIZE, RateLimit, Shape, segment
from airflow_provider_nairi.exceptions import NairiServerError

#: What ``upload_artifact`` / ``upload_video`` accept: a path, an open binary file, or an object with
#: ``open("rb")`` (an ``ObjectStoragePath``).
UploadSource = Any
#: What ``download_artifact`` writes to: a path, or an open binary file.
DownloadTarget = Any


def _without_none(**fields: Any) -> dict[str, Any]:
    return {k: v for k, v in fields.items() if v is not None}


class NairiApi(ABC):
    """One method per endpoint of ``nairi-api.md`` over ``request``, ``paginate``, ``upload`` and
    ``download``."""

    # -- primitives ------------------------------------------------------------------------------------------

    @abstractmethod
    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        idempotency_key: str | None = None,
        expect: Shape | None = None,
    ) -> Any:
        """Send one call and return the envelope's ``data`` (None for a 204).

        Errors are ``NairiError`` subclasses. Retried on 429, 5xx, connection errors, timeouts and malformed
        answers (``docs/errors-and-retries.md``). A POST carries an Idempotency-Key (``idempotency_key`` or a
        fresh uuid4) reused by all its retries; PUT, PATCH, DELETE and GET carry none. ``expect``: the shape
        ``data`` must have, ``"object"`` or ``"list"`` (of objects); another one (a 204 included) is a
        malformed answer, ``NairiServerError``.
        """

    @abstractmethod
    def paginate(
        self, path: str, params: Mapping[str, Any] | None = None, page_size: int = DEFAULT_PAGE_SIZE
    ) -> Iterator[dict[str, Any]]:
        """Lazy iterator over every item of a list endpoint, de-duplicated by ``id``.

        Nothing is sent until the first item is asked for; pages of ``page_size`` (1 to 200) advance
        ``offset`` by the items received, so N items cost ceil(N / page_size) requests. Each page is
        retried on 429, 5xx and connection errors (``docs/errors-and-retries.md``). A page claiming
        ``has_more`` but empty raises ``NairiServerError``.
        """

    @abstractmethod
    def upload(
        self,
        path: str,
        source: UploadSource,
        fields: Mapping[str, str],
        *,
        idempotency_key: str | None = None,
    ) -> Any:
        """POST ``source`` (path, seekable binary file or ``ObjectStoragePath``) as the multipart part
        ``file`` with ``fields``; return ``data``.

        Streamed in 1 MiB chunks with a precomputed ``Content-Length`` (constant memory). Retried on 429,
        5xx and connection errors (``docs/errors-and-retries.md``). Each retry re-reads the source from its
        start and reuses the same Idempotency-Key (``idempotency_key`` or a fresh one); for uploads the key
        and path alone decide a replay.
        """

    @abstractmethod
    def download(
        self,
        path: str,
        destination: DownloadTarget,
        *,
        expected_sha256: str | None = None,
        expected_size: int | None = None,
    ) -> int:
        """Stream the raw bytes of ``path`` to ``destination`` (a path or a binary file object); return the
        number of bytes.

        A path is written to a temporary file beside it, renamed over it only once verified, removed on
        failure. After a broken connection the rest is asked for with ``Range``: a 206 continues only when
        its ``Content-Range`` starts at the byte asked for and announces the same file size (anything else
        restarts from zero on the next try); a 200 restarts. The byte count must equal the size announced
        (``expected_size``, ``Content-Length``, the ``Content-Range`` total): a body that ends early is
        resumed, a longer one or sizes that disagree raise ``NairiServerError`` (``size_mismatch``). The
        sha256 of all bytes is checked against ``ETag`` and ``expected_sha256``: a mismatch raises
        ``NairiChecksumError`` (retryable by Airflow). Retried on 429, 5xx and connection errors
        (``docs/errors-and-retries.md``).
        """

    @property
    @abstractmethod
    def rate_limit(self) -> RateLimit | None:
        """``RateLimit(limit, remaining, reset)`` from the latest answer's ``X-RateLimit-*`` headers; None
        before the first call.
        """

    # -- org -------------------------------------------------------------------------------------------------

    def get_me(self) -> dict[str, Any]:
        """The org and key of the connection: ``{org: {id, name}, key: {name, hint, scopes}}``.

        Scope ``read``. Retried on 429, 5xx and connection errors (``docs/errors-and-retries.md``). 401
        (``NairiAuthError``): the key is invalid or revoked.
        """
        return self.request("GET", "/me", expect="object")  # type: ignore[no-any-return]

    # -- agents ----------------------------------------------------------------------------------------------

    def list_agents(self) -> Iterator[dict[str, Any]]:
        """Lazy iterator over every agent of the org, oldest first: nothing is sent until the first item is
        asked for, then one request per page of 200, de-duplicated by ``id``. Scope ``read``; each page is
        retried on 429, 5xx and connection errors (``docs/errors-and-retries.md``).
        """
        return self.paginate("/agents")

    def create_agent(
        self,
        name: str,
        instructions: str,
        model: str | None = None,
        vault_ids: Sequence[str] | None = None,
        *,
        idempotency_key: str | None = None,
    ) -> dict[str, Any]:
        """Create an agent; return it (``id`` ``agt_...``).

        Scope ``write``. Retried on 429, 5xx and connection errors (``docs/errors-and-retries.md``). Every
        try carries the same Idempotency-Key: ``idempotency_key`` when given (use one stable across task
        retries, e.g. ``task_idempotency_key``, so a retried task replays the first answer instead of
        creating a second agent), otherwise a fresh key that only this call's retries reuse. 409
        ``idempotency_key_reused``: the same key was sent with a different body. 422
        (``NairiValidationError``): an invalid field, e.g. an unknown vault id.
        """
        body = _without_none(
            name=name,
            instructions=instructions,
            model=model,
            vault_ids=list(vault_ids) if vault_ids else None,
        )
        return self.request("POST", "/agents", json=body, idempotency_key=idempotency_key, expect="object")  # type: ignore[no-any-return]

    def get_agent(self, agent_id: str) -> dict[str, Any]:
        """The agent ``agent_id``.

        Scope ``read``. Retried on 429, 5xx and connection errors (``docs/errors-and-retries.md``). 404
        (``NairiNotFoundError``, not retried): no such agent in this org.
        """
        return self.request("GET", f"/agents/{segment(agent_id)}", expect="object")  # type: ignore[no-any-return]

    def update_agent(self, agent_id: str, **fields: Any) -> dict[str, Any]:
        """PATCH the given fields (``name``, ``instructions``, ``model``, ``vault_ids``); return the updated
        agent.

        Scope ``write``. Retried on 429, 5xx and connection errors (``docs/errors-and-retries.md``). PATCH
        carries no Idempotency-Key; a retry re-sends the same fields. 404 (``NairiNotFoundError``): no such
        agent; 422 (``NairiValidationError``): a field is invalid.
        """
        return self.request("PATCH", f"/agents/{segment(agent_id)}", json=fields, expect="object")  # type: ignore[no-any-return]

    def delete_agent(self, agent_id: str) -> None:
        """Delete the agent ``agent_id``.

        Scope ``write``; returns None (204). Retried on 429, 5xx and connection errors
        (``docs/errors-and-retries.md``). DELETE carries no Idempotency-Key. 404 (``NairiNotFoundError``,
        not retried): no such agent in this org, also when a retry follows a first try that did delete it.
        """
        self.request("DELETE", f"/agents/{segment(agent_id)}")

    # -- conversations ---------------------------------------------------------------------------------------

    def list_conversations(
        self, agent_id: str | None = None, status: str | None = None
    ) -> Iterator[dict[str, Any]]:
        """Lazy iterator over every conversation of the org, filtered by ``agent_id`` and ``status`` when
        given, oldest first: nothing is sent until the first item is asked for, then one request per page
        of 200, de-duplicated by ``id``. Scope ``read``; each page is retried on 429, 5xx and connection
        errors (``docs/errors-and-retries.md``).
        """
        return self.paginate("/conversations", {"agent_id": agent_id, "status": status})

    def create_conversation(
        self,
        agent_id: str,
        message: str,
        artifact_ids: Sequence[str] | None = None,
        title: str | None = None,
        metadata: Mapping[str, str] | None = None,
        *,
        idempotency_key: str | None = None,
    ) -> dict[str, Any]:
        """Start a conversation; it comes back ``queued``: poll ``get_conversation`` until its status is
        neither ``queued`` nor ``running``.

        Scope ``write``. Retried on 429, 5xx and connection errors (``docs/errors-and-retries.md``). Every
        try carries the same Idempotency-Key: ``idempotency_key`` when given (use one stable across task
        retries, e.g. ``task_idempotency_key``, so a retried task replays the first answer instead of
        creating a second conversation), otherwise a fresh key that only this call's retries reuse. 409
        ``idempotency_key_reused``: the same key was sent with a different body. 422
        (``NairiValidationError``): e.g. an unknown ``agent_id``.
        """
        body = _without_none(
            agent_id=agent_id,
            message=message,
            artifact_ids=list(artifact_ids) if artifact_ids else None,
            title=title,
            metadata=dict(metadata) if metadata else None,
        )
        return self.request(  # type: ignore[no-any-return]
            "POST", "/conversations", json=body, idempotency_key=idempotency_key, expect="object"
        )

    def get_conversation(self, conversation_id: str) -> dict[str, Any]:
        """The conversation ``conversation_id``: ``status`` (``queued``, ``running``, ``completed``,
        ``failed`` with ``error``, ``cancelled``), ``turns``, ``last_message``.

        Scope ``read``. Retried on 429, 5xx and connection errors (``docs/errors-and-retries.md``). 404
        (``NairiNotFoundError``, not retried): no such conversation in this org.
        """
        return self.request("GET", f"/conversations/{segment(conversation_id)}", expect="object")  # type: ignore[no-any-return]

    def list_messages(self, conversation_id: str) -> Iterator[dict[str, Any]]:
        """Lazy iterator over the conversation's messages, oldest first (every page, de-duplicated by ``id``).

        Scope ``read``; each page is retried on 429, 5xx and connection errors
        (``docs/errors-and-retries.md``). 404 (``NairiNotFoundError``): no such conversation.
        """
        return self.paginate(f"/conversations/{segment(conversation_id)}/messages")

    def send_message(
        self,
        conversation_id: str,
        content: str,
        artifact_ids: Sequence[str] | None = None,
        *,
        idempotency_key: str | None = None,
    ) -> dict[str, Any]:
        """Add a user turn to a conversation; return the new message.

        Scope ``write``. Retried on 429, 5xx and connection errors (``docs/errors-and-retries.md``). Every
        try carries the same Idempotency-Key: ``idempotency_key`` when given (use one stable across task
        retries, e.g. ``task_idempotency_key``, so a retried task replays the first answer instead of
        creating a second message), otherwise a fresh key that only this call's retries reuse. 409
        ``idempotency_key_reused``: the same key was sent with a different body. 409 ``conversation_busy``
        (``NairiConflictError``, not retried): the conversation is still ``queued`` or ``running``; wait
        for it first. 404: no such conversation.
        """
        body = _without_none(content=content, artifact_ids=list(artifact_ids) if artifact_ids else None)
        return self.request(  # type: ignore[no-any-return]
            "POST",
            f"/conversations/{segment(conversation_id)}/messages",
            json=body,
            idempotency_key=idempotency_key,
            expect="object",
        )

    def cancel_conversation(self, conversation_id: str) -> dict[str, Any]:
        """Cancel a conversation; return it (``cancelled``, or unchanged if it had already ended).

        Scope ``write``. Retried on 429, 5xx and connection errors (``docs/errors-and-retries.md``). The
        POST carries a fresh Idempotency-Key reused by its retries; cancelling twice is harmless. 404
        (``NairiNotFoundError``): no such conversation.
        """
        return self.request("POST", f"/conversations/{segment(conversation_id)}/cancel", expect="object")  # type: ignore[no-any-return]

    # -- artifacts -------------------------------------------------------------------------------------------

    def list_artifacts(self, conversation_id: str | None = None) -> Iterator[dict[str, Any]]:
        """Lazy iterator over every artifact of the org, or of one conversation when ``conversation_id`` is
        given, oldest first: nothing is sent until the first item is asked for, then one request per page
        of 200, de-duplicated by ``id``. Scope ``read``; each page is retried on 429, 5xx and connection
        errors (``docs/errors-and-retries.md``).
        """
        return self.paginate("/artifacts", {"conversation_id": conversation_id})

    def upload_artifact(
        self,
        source: UploadSource,
        name: str | None = None,
        conversation_id: str | None = None,
        *,
        idempotency_key: str | None = None,
    ) -> dict[str, Any]:
        """Upload a file (path, seekable binary file or ``ObjectStoragePath``) as an artifact; return it (with
        ``sha256``).

        Streamed in 1 MiB chunks in constant memory; each retry re-reads the source from its start. Scope
        ``write``. Retried on 429, 5xx and connection errors (``docs/errors-and-retries.md``). Every try
        carries the same Idempotency-Key: ``idempotency_key`` when given (use one stable across task
        retries, e.g. ``task_idempotency_key``, so a retried task replays the first answer instead of
        creating a second artifact), otherwise a fresh key that only this call's retries reuse. 409
        ``idempotency_key_reused``: the same key was sent with a different body. 413
        (``NairiPayloadTooLargeError``): over 5 GiB.
        """
        fields = _without_none(name=name, conversation_id=conversation_id)
        return self.upload("/artifacts", source, fields, idempotency_key=idempotency_key)  # type: ignore[no-any-return]

    def get_artifact(self, artifact_id: str) -> dict[str, Any]:
        """The artifact's metadata (``name``, ``content_type``, ``size_bytes``, ``sha256``...); the bytes come
        from ``download_artifact``.

        Scope ``read``. Retried on 429, 5xx and connection errors (``docs/errors-and-retries.md``). 404
        (``NairiNotFoundError``, not retried): no such artifact in this org.
        """
        return self.request("GET", f"/artifacts/{segment(artifact_id)}", expect="object")  # type: ignore[no-any-return]

    def delete_artifact(self, artifact_id: str) -> None:
        """Delete the artifact ``artifact_id``.

        Scope ``write``; returns None (204). Retried on 429, 5xx and connection errors
        (``docs/errors-and-retries.md``). DELETE carries no Idempotency-Key. 404 (``NairiNotFoundError``,
        not retried): no such artifact in this org, also when a retry follows a first try that did delete
        it.
        """
        self.request("DELETE", f"/artifacts/{segment(artifact_id)}")

    def download_artifact(
        self,
        artifact_id: str,
        destination: DownloadTarget,
        *,
        expected_sha256: str | None = None,
        expected_size: int | None = None,
    ) -> int:
        """Stream an artifact's bytes to ``destination``; return the number of bytes written.

        A path is written to a temporary file beside it and renamed over it only after the sha256 matched
        (removed on failure: never a partial file); a binary file object is written in place. After a
        broken connection the rest is asked for with ``Range`` (a 206 continues only from the byte asked
        for, with the same total; a 200 restarts). The byte count must match ``expected_size`` (the
        artifact's ``size_bytes``) and what the answer announced, else ``NairiServerError``
        (``size_mismatch``). The sha256 is checked against ``ETag`` and ``expected_sha256``, else
        ``NairiChecksumError`` (retryable by Airflow). Scope ``read``. Retried on 429, 5xx and connection
        errors (``docs/errors-and-retries.md``). 404: no such artifact.
        """
        return self.download(
            f"/artifacts/{segment(artifact_id)}/content",
            destination,
            expected_sha256=expected_sha256,
            expected_size=expected_size,
        )

    # -- vaults ----------------------------------------------------------------------------------------------

    def list_vaults(self) -> Iterator[dict[str, Any]]:
        """Lazy iterator over every vault of the org, oldest first: nothing is sent until the first item is
        asked for, then one request per page of 200, de-duplicated by ``id``. Scope ``read``; each page is
        retried on 429, 5xx and connection errors (``docs/errors-and-retries.md``).
        """
        return self.paginate("/vaults")

    def create_vault(self, name: str, *, idempotency_key: str | None = None) -> dict[str, Any]:
        """Create a vault; return it (``id`` ``vlt_...``).

        Scope ``write``. Retried on 429, 5xx and connection errors (``docs/errors-and-retries.md``). Every
        try carries the same Idempotency-Key: ``idempotency_key`` when given (use one stable across task
        retries, e.g. ``task_idempotency_key``, so a retried task replays the first answer instead of
        creating a second vault), otherwise a fresh key that only this call's retries reuse. 409
        ``idempotency_key_reused``: the same key was sent with a different body.
        """
        return self.request(  # type: ignore[no-any-return]
            "POST", "/vaults", json={"name": name}, idempotency_key=idempotency_key, expect="object"
        )

    def get_vault(self, vault_id: str) -> dict[str, Any]:
        """The vault ``vault_id`` (``secret_names``; secret values are never returned).

        Scope ``read``. Retried on 429, 5xx and connection errors (``docs/errors-and-retries.md``). 404
        (``NairiNotFoundError``, not retried): no such vault in this org.
        """
        return self.request("GET", f"/vaults/{segment(vault_id)}", expect="object")  # type: ignore[no-any-return]

    def delete_vault(self, vault_id: str) -> None:
        """Delete the vault ``vault_id``.

        Scope ``write``; returns None (204). Retried on 429, 5xx and connection errors
        (``docs/errors-and-retries.md``). DELETE carries no Idempotency-Key. 404 (``NairiNotFoundError``,
        not retried): no such vault in this org, also when a retry follows a first try that did delete it.
        """
        self.request("DELETE", f"/vaults/{segment(vault_id)}")

    def put_vault_secret(self, vault_id: str, name: str, value: str) -> dict[str, Any]:
        """Create or overwrite a secret of a vault; return ``{name, updated_at}`` (values are write-only).

        Scope ``write``. Retried on 429, 5xx and connection errors (``docs/errors-and-retries.md``). PUT is
        idempotent and carries no Idempotency-Key. 404 (``NairiNotFoundError``): no such vault.
        """
        path = f"/vaults/{segment(vault_id)}/secrets/{segment(name)}"
        return self.request("PUT", path, json={"value": value}, expect="object")  # type: ignore[no-any-return]

    def delete_vault_secret(self, vault_id: str, name: str) -> None:
        """Delete the secret ``name`` of a vault.

        Scope ``write``; returns None (204). Retried on 429, 5xx and connection errors
        (``docs/errors-and-retries.md``). DELETE carries no Idempotency-Key. 404 (``NairiNotFoundError``,
        not retried): no such vault or secret in this org, also when a retry follows a first try that did
        delete it.
        """
        self.request("DELETE", f"/vaults/{segment(vault_id)}/secrets/{segment(name)}")

    # -- env vars --------------------------------------------------------------------------------------------

    def list_env_vars(self) -> Iterator[dict[str, Any]]:
        """Lazy iterator over every env var of the org, oldest first: nothing is sent until the first item is
        asked for, then one request per page of 200, de-duplicated by ``id``. Scope ``read``; each page is
        retried on 429, 5xx and connection errors (``docs/errors-and-retries.md``). Secret values come back
        as None.
        """
        return self.paginate("/env-vars")

    def put_env_var(self, name: str, value: str, secret: bool = False) -> dict[str, Any]:
        """Create or overwrite the org's env var ``name``; return it (``value`` is None when ``secret``).

        Scope ``write``. Retried on 429, 5xx and connection errors (``docs/errors-and-retries.md``). PUT is
        idempotent and carries no Idempotency-Key. 422 (``NairiValidationError``): ``name`` does not match
        ``^[A-Za-z_][A-Za-z0-9_]{0,127}$``.
        """
        body = {"value": value, "secret": secret}
        return self.request("PUT", f"/env-vars/{segment(name)}", json=body, expect="object")  # type: ignore[no-any-return]

    def delete_env_var(self, name: str) -> None:
        """Delete the env var ``name``.

        Scope ``write``; returns None (204). Retried on 429, 5xx and connection errors
        (``docs/errors-and-retries.md``). DELETE carries no Idempotency-Key. 404 (``NairiNotFoundError``,
        not retried): no such env var in this org, also when a retry follows a first try that did delete
        it.
        """
        self.request("DELETE", f"/env-vars/{segment(name)}")

    # -- scheduled jobs --------------------------------------------------------------------------------------

    def list_scheduled_jobs(self) -> Iterator[dict[str, Any]]:
        """Lazy iterator over every scheduled job of the org, oldest first: nothing is sent until the first
        item is asked for, then one request per page of 200, de-duplicated by ``id``. Scope ``read``; each
        page is retried on 429, 5xx and connection errors (``docs/errors-and-retries.md``).
        """
        return self.paginate("/scheduled-jobs")

    def create_scheduled_job(  # noqa: PLR0917 (the signature of docs/design.md)
        self,
        name: str,
        agent_id: str,
        message: str,
        cron: str,
        timezone: str | None = None,
        enabled: bool | None = None,
        *,
        idempotency_key: str | None = None,
    ) -> dict[str, Any]:
        """Create a job that starts a conversation with ``agent_id`` on ``cron`` (in ``timezone``); return it.

        Scope ``write``. Retried on 429, 5xx and connection errors (``docs/errors-and-retries.md``). Every
        try carries the same Idempotency-Key: ``idempotency_key`` when given (use one stable across task
        retries, e.g. ``task_idempotency_key``, so a retried task replays the first answer instead of
        creating a second job), otherwise a fresh key that only this call's retries reuse. 409
        ``idempotency_key_reused``: the same key was sent with a different body. 422
        (``NairiValidationError``): an invalid field, e.g. the cron expression.
        """
        body = _without_none(
            name=name, agent_id=agent_id, message=message, cron=cron, timezone=timezone, enabled=enabled
        )
        return self.request(  # type: ignore[no-any-return]
            "POST", "/scheduled-jobs", json=body, idempotency_key=idempotency_key, expect="object"
        )

    def get_scheduled_job(self, job_id: str) -> dict[str, Any]:
        """The scheduled job ``job_id`` (``next_run_at``, ``last_run``...).

        Scope ``read``. Retried on 429, 5xx and connection errors (``docs/errors-and-retries.md``). 404
        (``NairiNotFoundError``, not retried): no such job in this org.
        """
        return self.request("GET", f"/scheduled-jobs/{segment(job_id)}", expect="object")  # type: ignore[no-any-return]

    def update_scheduled_job(self, job_id: str, **fields: Any) -> dict[str, Any]:
        """PATCH the given fields of a scheduled job (``cron``, ``enabled``, ``message``...); return the
        updated job.

        Scope ``write``. Retried on 429, 5xx and connection errors (``docs/errors-and-retries.md``). PATCH
        carries no Idempotency-Key; a retry re-sends the same fields. 404 (``NairiNotFoundError``): no such
        job; 422 (``NairiValidationError``): a field is invalid.
        """
        return self.request("PATCH", f"/scheduled-jobs/{segment(job_id)}", json=fields, expect="object")  # type: ignore[no-any-return]

    def delete_scheduled_job(self, job_id: str) -> None:
        """Delete the scheduled job ``job_id``.

        Scope ``write``; returns None (204). Retried on 429, 5xx and connection errors
        (``docs/errors-and-retries.md``). DELETE carries no Idempotency-Key. 404 (``NairiNotFoundError``,
        not retried): no such job in this org, also when a retry follows a first try that did delete it.
        """
        self.request("DELETE", f"/scheduled-jobs/{segment(job_id)}")

    def run_scheduled_job(self, job_id: str, *, idempotency_key: str | None = None) -> dict[str, Any]:
        """Run the job now; return the conversation it started (poll it with ``get_conversation``).

        Scope ``write``. Retried on 429, 5xx and connection errors (``docs/errors-and-retries.md``). Every
        try carries the same Idempotency-Key: ``idempotency_key`` when given (use one stable across task
        retries, e.g. ``task_idempotency_key``, so a retried task replays the first answer instead of
        creating a second run), otherwise a fresh key that only this call's retries reuse. 409
        ``idempotency_key_reused``: the same key was sent with a different body. 404: no such job.
        """
        path = f"/scheduled-jobs/{segment(job_id)}/run"
        data = self.request("POST", path, idempotency_key=idempotency_key, expect="object")
        conversation = data.get("conversation")
        if not isinstance(conversation, dict):
            raise NairiServerError(
                "the run answer holds no conversation object.",
                code="malformed_answer",
                method="POST",
                path=path,
            )
        return conversation

    # -- videos ----------------------------------------------------------------------------------------------

    def list_videos(self) -> Iterator[dict[str, Any]]:
        """Lazy iterator over every video of the org, oldest first: nothing is sent until the first item is
        asked for, then one request per page of 200, de-duplicated by ``id``. Scope ``read``; each page is
        retried on 429, 5xx and connection errors (``docs/errors-and-retries.md``).
        """
        return self.paginate("/videos")

    def upload_video(
        self, source: UploadSource, title: str | None = None, *, idempotency_key: str | None = None
    ) -> dict[str, Any]:
        """Upload a video (path, seekable binary file or ``ObjectStoragePath``); it comes back ``processing``:
        poll ``get_video`` until ``ready`` or ``failed``.

        Streamed in 1 MiB chunks in constant memory; each retry re-reads the source from its start. Scope
        ``write``. Retried on 429, 5xx and connection errors (``docs/errors-and-retries.md``). Every try
        carries the same Idempotency-Key: ``idempotency_key`` when given (use one stable across task
        retries, e.g. ``task_idempotency_key``, so a retried task replays the first answer instead of
        creating a second video), otherwise a fresh key that only this call's retries reuse. 409
        ``idempotency_key_reused``: the same key was sent with a different body. 413
        (``NairiPayloadTooLargeError``): over 5 GiB.
        """
        return self.upload("/videos", source, _without_none(title=title), idempotency_key=idempotency_key)  # type: ignore[no-any-return]

    def get_video(self, video_id: str) -> dict[str, Any]:
        """The video ``video_id``: ``status`` is ``processing``, ``ready`` or ``failed`` (see ``error``).

        Scope ``read``. Retried on 429, 5xx and connection errors (``docs/errors-and-retries.md``). 404
        (``NairiNotFoundError``, not retried): no such video in this org.
        """
        return self.request("GET", f"/videos/{segment(video_id)}", expect="object")  # type: ignore[no-any-return]

    def delete_video(self, video_id: str) -> None:
        """Delete the video ``video_id``.

        Scope ``write``; returns None (204). Retried on 429, 5xx and connection errors
        (``docs/errors-and-retries.md``). DELETE carries no Idempotency-Key. 404 (``NairiNotFoundError``,
        not retried): no such video in this org, also when a retry follows a first try that did delete it.
        """
        self.request("DELETE", f"/videos/{segment(video_id)}")

    def reprocess_video(self, video_id: str, *, idempotency_key: str | None = None) -> dict[str, Any]:
        """Process a video again; it comes back ``processing``: poll ``get_video``.

        Scope ``write``. Retried on 429, 5xx and connection errors (``docs/errors-and-retries.md``). Every
        try carries the same Idempotency-Key: ``idempotency_key`` when given (use one stable across task
        retries, e.g. ``task_idempotency_key``, so a retried task replays the first answer instead of
        creating a second processing run), otherwise a fresh key that only this call's retries reuse. 409
        ``idempotency_key_reused``: the same key was sent with a different body. 404: no such video.
        """
        path = f"/videos/{segment(video_id)}/reprocess"
        return self.request("POST", path, idempotency_key=idempotency_key, expect="object")  # type: ignore[no-any-return]

    # -- corpus (read-only POSTs) ----------------------------------------------------------------------------

    def search(
        self, query: str, limit: int | None = None, video_ids: Sequence[str] | None = None
    ) -> list[dict[str, Any]]:
        """Transcript passages matching ``query``: ``[{video_id, start_s, end_s, text, score}]`` (a list, not
        lazy).

        Scope ``read`` (a read-only POST). Retried on 429, 5xx and connection errors
        (``docs/errors-and-retries.md``). The POST carries a fresh Idempotency-Key reused by its retries.
        422: ``limit`` over 50.
        """
        return self._corpus("/search", query, limit, video_ids)

    def recall(
        self, query: str, limit: int | None = None, video_ids: Sequence[str] | None = None
    ) -> list[dict[str, Any]]:
        """Summarised moments matching ``query``: ``[{video_id, start_s, end_s, summary, score}]`` (a list,
        not lazy).

        Scope ``read`` (a read-only POST). Retried on 429, 5xx and connection errors
        (``docs/errors-and-retries.md``). The POST carries a fresh Idempotency-Key reused by its retries.
        422: ``limit`` over 50.
        """
        return self._corpus("/recall", query, limit, video_ids)

    def chat(self, message: str, video_ids: Sequence[str] | None = None) -> dict[str, Any]:
        """Ask the video corpus a question: ``{answer, citations: [{video_id, start_s, end_s}]}``.

        Scope ``read`` (a read-only POST). Retried on 429, 5xx and connection errors
        (``docs/errors-and-retries.md``). The POST carries a fresh Idempotency-Key reused by its retries.
        """
        body = _without_none(message=message, video_ids=list(video_ids) if video_ids else None)
        return self.request("POST", "/chat", json=body, expect="object")  # type: ignore[no-any-return]

    def _corpus(
        self, path: str, query: str, limit: int | None, video_ids: Sequence[str] | None
    ) -> list[dict[str, Any]]:
        body = _without_none(query=query, limit=limit, video_ids=list(video_ids) if video_ids else None)
        return self.request("POST", path, json=body, expect="list")  # type: ignore[no-any-return]
