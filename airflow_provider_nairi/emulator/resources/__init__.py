"""The API's handlers, one module per resource; importing this package fills the route table."""

from __future__ import annotations

from airflow_provider_nairi.emulator.core import Core
from airflow_provider_nairi.emulator.resources import agents, artifacts, conversations, jobs, org, videos

__all__ = ["agents", "artifacts", "conversations", "jobs", "org", "resume", "videos"]


def resume(core: Core) -> None:
    """Restart background work a persistent emulator had under way when it stopped."""
    conversations.resume(core)
    videos.resume(core)
