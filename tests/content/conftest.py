"""Fixtures for the content tests: a fake hook at the hook's method names, a task instance, memory storage."""

from __future__ import annotations

import hashlib
import itertools
from types import SimpleNamespace
from typing import Any

import pytest
from fsspec.implementations.memory import MemoryFileSystem

try:
    from airflow.sdk.io.store import attach
except ImportError:  # Airflow 2
    from airflow.io.store import attach

from airflow_provider_nairi.exceptions import NairiNotFoundError


class FakeContentHook:
    """The client's artifact, video and corpus methods over dicts; records every call. It is its own
    ``client`` (the hook's API object)."""

    @property
    def client(self) -> FakeContentHook:
        return self

    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = []
        self.artifacts: dict[str, dict[str, Any]] = {}
        self.contents: dict[str, bytes] = {}
        self.by_key: dict[str, dict[str, Any]] = {}
        self.videos: dict[str, dict[str, Any]] = {}
        self.updates: dict[str, list[dict[str, Any]]] = {}
        self.results: Any = []
        self._ids = itertools.count(1)

    def _record(self, method: str, /, *args: Any, **kwargs: Any) -> None:
        self.calls.append((method, args, kwargs))

    def called(self, name: str) -> list[tuple[tuple[Any, ...], dict[str, Any]]]:
        return [(args, kwargs) for call, args, kwargs in self.calls if call == name]

    def add_artifact(self, name: str, data: bytes, conversation_id: str | None = None, by: str = "agent"):
        artifact = {
            "id": f"art_{next(self._ids)}",
            "name": name,
            "size_bytes": len(data),
            "sha256": hashlib.sha256(data).hexdigest(),
            "conversation_id": conversation_id,
            "created_by": by,
        }
        self.artifacts[artifact["id"]] = artifact
        self.contents[artifact["id"]] = data
        return dict(artifact)

    def upload_artifact(self, source, name=None, conversation_id=None, *, idempotency_key=None):
        self._record(
            "upload_artifact",
            source,
            name=name,
            conversation_id=conversation_id,
            idempotency_key=idempotency_key,
        )
        if idempotency_key in self.by_key:
            return dict(self.by_key[idempotency_key])
        with source.open("rb") as file:
            data = file.read()
        artifact = self.add_artifact(name, data, conversation_id, by="user")
        self.by_key[idempotency_key] = artifact
        return artifact

    def get_artifact(self, artifact_id):
        self._record("get_artifact", artifact_id)
        if artifact_id not in self.artifacts:
            raise NairiNotFoundError("no such artifact", status=404, code="not_found")
        return dict(self.artifacts[artifact_id])

    def list_artifacts(self, conversation_id=None):
        self._record("list_artifacts", conversation_id=conversation_id)
        return iter([dict(a) for a in self.artifacts.values() if a["conversation_id"] == conversation_id])

    def download_artifact(self, artifact_id, destination, *, expected_sha256=None, expected_size=None):
        self._record(
            "download_artifact",
            artifact_id,
            destination,
            expected_sha256=expected_sha256,
            expected_size=expected_size,
        )
        data = self.contents[artifact_id]
        if hasattr(destination, "write"):
            destination.write(data)
        else:
            with open(destination, "wb") as file:
                file.write(data)
        return len(data)

    def upload_video(self, source, title=None, *, idempotency_key=None):
        self._record("upload_video", source, title=title, idempotency_key=idempotency_key)
        if idempotency_key in self.by_key:
            return dict(self.by_key[idempotency_key])
        video = {"id": f"vid_{next(self._ids)}", "title": title, "status": "processing", "error": None}
        self.videos[video["id"]] = video
        self.by_key[idempotency_key] = video
        return dict(video)

    def get_video(self, video_id):
        """The video; each read first applies the next update queued in ``self.updates[video_id]``."""
        self._record("get_video", video_id)
        if self.updates.get(video_id):
            self.videos[video_id].update(self.updates[video_id].pop(0))
        return dict(self.videos[video_id])

    def reprocess_video(self, video_id, *, idempotency_key=None):
        self._record("reprocess_video", video_id, idempotency_key=idempotency_key)
        self.videos[video_id].update(status="processing", error=None)
        return dict(self.videos[video_id])

    def dashboard_url(self, kind, object_id):
        return f"https://app.nairi.ai/{kind}/{object_id}"

    def search(self, query, limit=None, video_ids=None):
        self._record("search", query, limit=limit, video_ids=video_ids)
        return self.results

    def recall(self, query, limit=None, video_ids=None):
        self._record("recall", query, limit=limit, video_ids=video_ids)
        return self.results

    def chat(self, message, video_ids=None):
        self._record("chat", message, video_ids=video_ids)
        return self.results


@pytest.fixture
def hook() -> FakeContentHook:
    return FakeContentHook()


def _ti(run_id: str = "manual__1", task_id: str = "upload") -> SimpleNamespace:
    """A task instance's identity, try number and XCom pushes (in ``ti.pushed``)."""
    pushed: dict[str, Any] = {}

    def xcom_push(key: str, value: Any) -> None:
        pushed[key] = value

    return SimpleNamespace(
        dag_id="content",
        task_id=task_id,
        run_id=run_id,
        map_index=-1,
        try_number=1,
        pushed=pushed,
        xcom_push=xcom_push,
    )


@pytest.fixture
def make_ti():
    """Build a task instance identity (dag id, task id, run id, map index) for another run or task."""
    return _ti


@pytest.fixture
def ti() -> SimpleNamespace:
    return _ti()


@pytest.fixture
def memory_store():
    """A ``memory://`` object store known to Airflow's ObjectStoragePath, emptied after the test."""
    fs = MemoryFileSystem()
    attach("memory", fs=fs)
    yield fs
    fs.store.clear()
    fs.pseudo_dirs.clear()
    fs.pseudo_dirs.append("")
