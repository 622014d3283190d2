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

from airflow_provider_nairi.client.protocol import DEFAULT_PAGE_SIZE, RateLimit, segment

#: What ``upload_artifact`` / ``upload_video`` accept: a path, an open binary file, or an object with
#: ``open("rb")`` (an ``ObjectStoragePath``).
Source = Any
#: What ``download_artifact`` writes to: a path, or an open binary file.
Destination = Any


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
    ) -> Any:
        """Send one call (retried as described in ``docs/errors-and-retries.md``) and return its ``data``."""

    @abstractmethod
    def paginate(
        self, path: str, params: Mapping[str, Any] | None = None, page_size: int = DEFAULT_PAGE_SIZE
    ) -> Iterator[dict[str, Any]]:
        """Lazily yield every item of a list endpoint: ceil(N / page_size) requests, de-duplicated by
        ``id``."""

    @abstractmethod
    def upload(
        self, path: str, source: Source, fields: Mapping[str, str], *, idempotency_key: str | None = None
    ) -> Any:
        """POST ``source`` as the multipart part ``file`` with ``fields``, streamed, and return ``data``."""

    @abstractmethod
    def download(self, path: str, destination: Destination, *, expected_sha256: str | None = None) -> int:
        """Stream raw bytes to ``destination``, resuming and verifying; return the number of bytes."""

    @property
    @abstractmethod
    def rate_limit(self) -> RateLimit | None:
        """The rate-limit headers of the latest answer (None before the first call)."""

    # -- org -------------------------------------------------------------------------------------------------

    def get_me(self) -> dict[str, Any]:
        """``{org: {id, name}, key: {name, hint, scopes}}`` of the connection's key."""
        return self.request("GET", "/me")  # type: ignore[no-any-return]

    # -- agents ----------------------------------------------------------------------------------------------

    def list_agents(self) -> Iterator[dict[str, Any]]:
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
        body = _without_none(
            name=name,
            instructions=instructions,
            model=model,
            vault_ids=list(vault_ids) if vault_ids else None,
        )
        return self.request("POST", "/agents", json=body, idempotency_key=idempotency_key)  # type: ignore[no-any-return]

    def get_agent(self, agent_id: str) -> dict[str, Any]:
        return self.request("GET", f"/agents/{segment(agent_id)}")  # type: ignore[no-any-return]

    def update_agent(self, agent_id: str, **fields: Any) -> dict[str, Any]:
        """PATCH the given fields (``name``, ``instructions``, ``model``, ``vault_ids``)."""
        return self.request("PATCH", f"/agents/{segment(agent_id)}", json=fields)  # type: ignore[no-any-return]

    def delete_agent(self, agent_id: str) -> None:
        self.request("DELETE", f"/agents/{segment(agent_id)}")

    # -- conversations ---------------------------------------------------------------------------------------

    def list_conversations(
        self, agent_id: str | None = None, status: str | None = None
    ) -> Iterator[dict[str, Any]]:
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
        """Start a conversation; it comes back ``queued``: poll ``get_conversation`` until it is not
        running."""
        body = _without_none(
            agent_id=agent_id,
            message=message,
            artifact_ids=list(artifact_ids) if artifact_ids else None,
            title=title,
            metadata=dict(metadata) if metadata else None,
        )
        return self.request("POST", "/conversations", json=body, idempotency_key=idempotency_key)  # type: ignore[no-any-return]

    def get_conversation(self, conversation_id: str) -> dict[str, Any]:
        return self.request("GET", f"/conversations/{segment(conversation_id)}")  # type: ignore[no-any-return]

    def list_messages(self, conversation_id: str) -> Iterator[dict[str, Any]]:
        """Messages oldest first."""
        return self.paginate(f"/conversations/{segment(conversation_id)}/messages")

    def send_message(
        self,
        conversation_id: str,
        content: str,
        artifact_ids: Sequence[str] | None = None,
        *,
        idempotency_key: str | None = None,
    ) -> dict[str, Any]:
        """Add a turn; NairiConflictError (``conversation_busy``) while the conversation is queued or
        running."""
        body = _without_none(content=content, artifact_ids=list(artifact_ids) if artifact_ids else None)
        return self.request(  # type: ignore[no-any-return]
            "POST",
            f"/conversations/{segment(conversation_id)}/messages",
            json=body,
            idempotency_key=idempotency_key,
        )

    def cancel_conversation(self, conversation_id: str) -> dict[str, Any]:
        """Cancel; a conversation that already ended comes back unchanged."""
        return self.request("POST", f"/conversations/{segment(conversation_id)}/cancel")  # type: ignore[no-any-return]

    # -- artifacts -------------------------------------------------------------------------------------------

    def list_artifacts(self, conversation_id: str | None = None) -> Iterator[dict[str, Any]]:
        return self.paginate("/artifacts", {"conversation_id": conversation_id})

    def upload_artifact(
        self,
        source: Source,
        name: str | None = None,
        conversation_id: str | None = None,
        *,
        idempotency_key: str | None = None,
    ) -> dict[str, Any]:
        """Stream a file (path, binary file object or ``ObjectStoragePath``) in constant memory."""
        fields = _without_none(name=name, conversation_id=conversation_id)
        return self.upload("/artifacts", source, fields, idempotency_key=idempotency_key)  # type: ignore[no-any-return]

    def get_artifact(self, artifact_id: str) -> dict[str, Any]:
        return self.request("GET", f"/artifacts/{segment(artifact_id)}")  # type: ignore[no-any-return]

    def delete_artifact(self, artifact_id: str) -> None:
        self.request("DELETE", f"/artifacts/{segment(artifact_id)}")

    def download_artifact(
        self, artifact_id: str, destination: Destination, *, expected_sha256: str | None = None
    ) -> int:
        """Stream an artifact's bytes to a path (written to a temporary name, renamed when verified) or a
        binary file object; resume with ``Range`` after a broken connection; verify the sha256 against
        ``ETag`` (and ``expected_sha256``), else NairiChecksumError. Returns the number of bytes
        written."""
        return self.download(
            f"/artifacts/{segment(artifact_id)}/content", destination, expected_sha256=expected_sha256
        )

    # -- vaults ----------------------------------------------------------------------------------------------

    def list_vaults(self) -> Iterator[dict[str, Any]]:
        return self.paginate("/vaults")

    def create_vault(self, name: str, *, idempotency_key: str | None = None) -> dict[str, Any]:
        return self.request("POST", "/vaults", json={"name": name}, idempotency_key=idempotency_key)  # type: ignore[no-any-return]

    def get_vault(self, vault_id: str) -> dict[str, Any]:
        return self.request("GET", f"/vaults/{segment(vault_id)}")  # type: ignore[no-any-return]

    def delete_vault(self, vault_id: str) -> None:
        self.request("DELETE", f"/vaults/{segment(vault_id)}")

    def put_vault_secret(self, vault_id: str, name: str, value: str) -> dict[str, Any]:
        """Write a secret (values are write-only: the answer is ``{name, updated_at}``)."""
        path = f"/vaults/{segment(vault_id)}/secrets/{segment(name)}"
        return self.request("PUT", path, json={"value": value})  # type: ignore[no-any-return]

    def delete_vault_secret(self, vault_id: str, name: str) -> None:
        self.request("DELETE", f"/vaults/{segment(vault_id)}/secrets/{segment(name)}")

    # -- env vars --------------------------------------------------------------------------------------------

    def list_env_vars(self) -> Iterator[dict[str, Any]]:
        return self.paginate("/env-vars")

    def put_env_var(self, name: str, value: str, secret: bool = False) -> dict[str, Any]:
        body = {"value": value, "secret": secret}
        return self.request("PUT", f"/env-vars/{segment(name)}", json=body)  # type: ignore[no-any-return]

    def delete_env_var(self, name: str) -> None:
        self.request("DELETE", f"/env-vars/{segment(name)}")

    # -- scheduled jobs --------------------------------------------------------------------------------------

    def list_scheduled_jobs(self) -> Iterator[dict[str, Any]]:
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
        body = _without_none(
            name=name, agent_id=agent_id, message=message, cron=cron, timezone=timezone, enabled=enabled
        )
        return self.request("POST", "/scheduled-jobs", json=body, idempotency_key=idempotency_key)  # type: ignore[no-any-return]

    def get_scheduled_job(self, job_id: str) -> dict[str, Any]:
        return self.request("GET", f"/scheduled-jobs/{segment(job_id)}")  # type: ignore[no-any-return]

    def update_scheduled_job(self, job_id: str, **fields: Any) -> dict[str, Any]:
        return self.request("PATCH", f"/scheduled-jobs/{segment(job_id)}", json=fields)  # type: ignore[no-any-return]

    def delete_scheduled_job(self, job_id: str) -> None:
        self.request("DELETE", f"/scheduled-jobs/{segment(job_id)}")

    def run_scheduled_job(self, job_id: str, *, idempotency_key: str | None = None) -> dict[str, Any]:
        """Run the job now; returns the conversation it started."""
        data = self.request("POST", f"/scheduled-jobs/{segment(job_id)}/run", idempotency_key=idempotency_key)
        return data["conversation"]  # type: ignore[no-any-return]

    # -- videos ----------------------------------------------------------------------------------------------

    def list_videos(self) -> Iterator[dict[str, Any]]:
        return self.paginate("/videos")

    def upload_video(
        self, source: Source, title: str | None = None, *, idempotency_key: str | None = None
    ) -> dict[str, Any]:
        """Stream a video; it comes back ``processing``: poll ``get_video`` until ``ready`` or ``failed``."""
        return self.upload("/videos", source, _without_none(title=title), idempotency_key=idempotency_key)  # type: ignore[no-any-return]

    def get_video(self, video_id: str) -> dict[str, Any]:
        return self.request("GET", f"/videos/{segment(video_id)}")  # type: ignore[no-any-return]

    def delete_video(self, video_id: str) -> None:
        self.request("DELETE", f"/videos/{segment(video_id)}")

    def reprocess_video(self, video_id: str, *, idempotency_key: str | None = None) -> dict[str, Any]:
        path = f"/videos/{segment(video_id)}/reprocess"
        return self.request("POST", path, idempotency_key=idempotency_key)  # type: ignore[no-any-return]

    # -- corpus (read-only POSTs) ----------------------------------------------------------------------------

    def search(
        self, query: str, limit: int | None = None, video_ids: Sequence[str] | None = None
    ) -> list[dict[str, Any]]:
        """Transcript passages: ``[{video_id, start_s, end_s, text, score}]``."""
        return self._corpus("/search", query, limit, video_ids)

    def recall(
        self, query: str, limit: int | None = None, video_ids: Sequence[str] | None = None
    ) -> list[dict[str, Any]]:
        """Summarised moments: ``[{video_id, start_s, end_s, summary, score}]``."""
        return self._corpus("/recall", query, limit, video_ids)

    def chat(self, message: str, video_ids: Sequence[str] | None = None) -> dict[str, Any]:
        """``{answer, citations: [{video_id, start_s, end_s}]}``."""
        body = _without_none(message=message, video_ids=list(video_ids) if video_ids else None)
        return self.request("POST", "/chat", json=body)  # type: ignore[no-any-return]

    def _corpus(
        self, path: str, query: str, limit: int | None, video_ids: Sequence[str] | None
    ) -> list[dict[str, Any]]:
        body = _without_none(query=query, limit=limit, video_ids=list(video_ids) if video_ids else None)
        return self.request("POST", path, json=body)  # type: ignore[no-any-return]
