"""Request bodies of the API as pydantic models: strict types, unknown fields refused.

They also feed the OpenAPI document (``GET /api/public/v1/openapi.json``).
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from airflow_provider_nairi.emulator.protocol import invalid

Text = Annotated[str, StringConstraints(min_length=1, max_length=100_000)]
Label = Annotated[str, StringConstraints(min_length=1, max_length=200, pattern=r"\S")]
Id = Annotated[str, StringConstraints(min_length=1, max_length=100)]
IdList = Annotated[list[Id], Field(max_length=100)]
Limit = Annotated[int, Field(ge=1, le=50)]


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    def changes(self) -> dict[str, Any]:
        """The fields a PATCH gave; ``null`` is refused (``{field: None}`` raises a 422 naming the field)."""
        given = self.model_dump(exclude_unset=True)
        for name, value in given.items():
            if value is None:
                raise invalid(name, "cannot be null")
        return given


class AgentCreate(Body):
    name: Label
    instructions: Annotated[str, StringConstraints(max_length=100_000)]
    model: Label | None = None
    vault_ids: IdList | None = None


class AgentUpdate(Body):
    name: Label | None = None
    instructions: Annotated[str, StringConstraints(max_length=100_000)] | None = None
    model: Label | None = None
    vault_ids: IdList | None = None


class ConversationCreate(Body):
    agent_id: Id
    message: Text
    artifact_ids: IdList | None = None
    title: Label | None = None
    metadata: (
        Annotated[dict[Annotated[str, StringConstraints(max_length=200)], str], Field(max_length=50)] | None
    ) = None


class MessageCreate(Body):
    content: Text
    artifact_ids: IdList | None = None


class VaultCreate(Body):
    name: Label


class SecretPut(Body):
    value: Annotated[str, StringConstraints(max_length=100_000)]


class EnvVarPut(Body):
    value: Annotated[str, StringConstraints(max_length=100_000)]
    secret: bool | None = None


class JobCreate(Body):
    name: Label
    agent_id: Id
    message: Text
    cron: Label
    timezone: Label | None = None
    enabled: bool | None = None


class JobUpdate(Body):
    name: Label | None = None
    agent_id: Id | None = None
    message: Text | None = None
    cron: Label | None = None
    timezone: Label | None = None
    enabled: bool | None = None


class Query(Body):
    query: Text
    limit: Limit | None = None
    video_ids: IdList | None = None


class Chat(Body):
    message: Text
    video_ids: IdList | None = None


class Empty(Body):
    """Bodies of the action endpoints (cancel, run, reprocess): nothing, or ``{}``."""
