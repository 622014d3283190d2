"""What a Nairi task read and produced: asset-event extras (:func:`asset_extra`) and OpenLineage facets.

**Asset-event extras** (``docs/assets-and-events.md``): :func:`asset_extra` turns an operator's result (its
XCom) into the ``extra`` of the asset events it emits: ids, statuses, sha256s and counts picked by key from
:data:`EXTRA_KEYS`, never a text (a reply, a message) and never a value (secret or not), strings cut to
:data:`MAX_STRING`, lists to :data:`MAX_ITEMS`.

**OpenLineage**: pure builders, and one conversion to ``OperatorLineage``.

The builders (:func:`upload_lineage`, :func:`download_lineage`, :func:`video_lineage`,
:func:`conversation_lineage`) turn what an operator returned (its XCom) into a :class:`Lineage`: plain
``(namespace, name)`` datasets and plain facet dicts, no OpenLineage import. :func:`to_operator_lineage`
converts one into ``airflow.providers.openlineage.extractors.OperatorLineage`` when the OpenLineage provider
(extra ``openlineage``) is installed, and returns ``None`` otherwise: the import happens inside that
function, so importing the operators never imports OpenLineage.

Naming (``docs/lineage.md``):

- Nairi objects: namespace ``nairi://<API host>`` (``nairi://api.nairi.ai``), names ``artifacts/<id>``,
  ``videos/<id>``, ``agents/<id>``.
- Files and object storage, as OpenLineage names them: ``s3://bucket/key`` is namespace ``s3://bucket``, name
  ``key``; a local path is namespace ``file``, name the absolute path.
- A conversation is a **run** facet (``nairi_conversation``: conversation id, turn, status, reply message id,
  plus the standard ``externalQuery`` facet with the conversation id); the agent a **job** facet
  (``nairi_agent``: agent id or name), since a job (the task) talks to the same agent in every run.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

#: The schema URL of the provider's own facets (OpenLineage asks every custom facet for one).
SCHEMA_URL = "https://github.com/airflow-provider-nairi/airflow-provider-nairi/blob/main/docs/lineage.md"
#: At most this many datasets on each side: a task that moved ten thousand files reports the first ones.
MAX_DATASETS = 200

Dataset = tuple[str, str]

#: The keys an asset-event extra keeps from a result: identities, states and counts only.
EXTRA_KEYS = (
    "kind",
    "id",
    "name",
    "action",
    "status",
    "conversation_id",
    "turn",
    "reply_message_id",
    "artifact_ids",
    "agent_id",
    "job_id",
    "sha256",
    "size_bytes",
    "duration_s",
    "fields",
    "path",
)
#: Lists of items inside a result whose items are summarised the same way (an org-as-code plan's secrets).
NESTED_KEYS = ("secrets", "env_vars", "items")
MAX_ITEMS = 50
MAX_STRING = 256


def _bounded(value: Any) -> Any:
    if isinstance(value, bool) or value is None or isinstance(value, int | float):
        return value
    if isinstance(value, str):
        return value[:MAX_STRING]
    if isinstance(value, list | tuple):
        return [_bounded(v) for v in value[:MAX_ITEMS] if isinstance(v, str | int | float | bool)]
    return None


def _summary(item: Mapping[str, Any]) -> dict[str, Any]:
    picked = {key: _bounded(item[key]) for key in EXTRA_KEYS if key in item}
    for key in NESTED_KEYS:
        nested = item.get(key)
        if isinstance(nested, list):
            picked[key] = [_summary(n) for n in nested[:MAX_ITEMS] if isinstance(n, Mapping)]
    return picked


def asset_extra(result: Any) -> dict[str, Any]:
    """The asset-event ``extra`` of a result: a dict's identities (:data:`EXTRA_KEYS`, and the same of the
    lists under :data:`NESTED_KEYS`); a list's ``count`` and its first :data:`MAX_ITEMS` ``items`` (dicts
    summarised, strings such as written paths kept); ``{}`` for anything else."""
    if isinstance(result, Mapping):
        return _summary(result)
    if isinstance(result, list | tuple):
        items = [
            _summary(item) if isinstance(item, Mapping) else _bounded(item)
            for item in result[:MAX_ITEMS]
            if isinstance(item, Mapping | str)
        ]
        items = [item for item in items if item]
        return {"count": len(result), "items": items}
    return {}


@dataclass
class Lineage:
    """What an operator read and wrote, and the facets of its job and run, as plain data."""

    inputs: list[Dataset] = field(default_factory=list)
    outputs: list[Dataset] = field(default_factory=list)
    run_facets: dict[str, dict[str, Any]] = field(default_factory=dict)
    job_facets: dict[str, dict[str, Any]] = field(default_factory=dict)


def nairi_namespace(base_url: str) -> str:
    """``nairi://<host[:port]>`` of the connection's base URL."""
    return f"nairi://{urlsplit(base_url).netloc or 'api.nairi.ai'}"


def dataset_of(location: object) -> Dataset | None:
    """OpenLineage's namespace and name of a file or object-storage location; ``None`` for anything else."""
    text = str(location) if location is not None else ""
    if not text:
        return None
    parts = urlsplit(text)
    if parts.scheme in ("", "file"):
        return ("file", os.path.abspath(parts.path if parts.scheme else text))
    if not parts.netloc:
        return None
    return (f"{parts.scheme}://{parts.netloc}", parts.path.lstrip("/"))


def _ids(items: Iterable[Any], key: str = "id") -> list[str]:
    found = []
    for item in items:
        value = item.get(key) if isinstance(item, Mapping) else item
        if isinstance(value, str) and value:
            found.append(value)
    return found[:MAX_DATASETS]


def _objects(namespace: str, kind: str, ids: Iterable[str]) -> list[Dataset]:
    return [(namespace, f"{kind}/{object_id}") for object_id in ids][:MAX_DATASETS]


def upload_lineage(namespace: str, uploaded: Iterable[Mapping[str, Any]]) -> Lineage:
    """Artifact uploads (``[{"id", "source", ...}]``): the files read, the artifacts written."""
    uploaded = list(uploaded)
    inputs = [d for d in (dataset_of(item.get("source")) for item in uploaded) if d is not None]
    return Lineage(inputs=inputs[:MAX_DATASETS], outputs=_objects(namespace, "artifacts", _ids(uploaded)))


def download_lineage(namespace: str, artifact_ids: Iterable[str], written: Iterable[str]) -> Lineage:
    """Artifact downloads: the artifacts read, the files written."""
    outputs = [d for d in (dataset_of(path) for path in written) if d is not None]
    return Lineage(
        inputs=_objects(namespace, "artifacts", _ids(artifact_ids)), outputs=outputs[:MAX_DATASETS]
    )


def video_lineage(
    namespace: str, videos: Iterable[Mapping[str, Any]], sources: Iterable[object] = ()
) -> Lineage:
    """Video uploads (``sources`` read) and reprocessing: the videos written."""
    inputs = [d for d in (dataset_of(s) for s in sources) if d is not None]
    return Lineage(inputs=inputs[:MAX_DATASETS], outputs=_objects(namespace, "videos", _ids(videos)))


def conversation_lineage(
    namespace: str,
    result: Mapping[str, Any],
    *,
    agent: str | None = None,
    attachments: Iterable[str] = (),
) -> Lineage:
    """A conversation turn (the conversation operators' XCom): attachments read, the reply's artifacts
    written, the conversation as run facets, the agent (id or name) as a job facet."""
    conversation_id = result.get("conversation_id")
    lineage = Lineage(
        inputs=_objects(namespace, "artifacts", _ids(attachments)),
        outputs=_objects(namespace, "artifacts", _ids(result.get("artifact_ids") or ())),
    )
    if isinstance(conversation_id, str):
        lineage.run_facets["externalQuery"] = {"externalQueryId": conversation_id, "source": namespace}
        lineage.run_facets["nairi_conversation"] = {
            "conversationId": conversation_id,
            "turn": result.get("turn") if isinstance(result.get("turn"), int) else None,
            "status": result.get("status") if isinstance(result.get("status"), str) else None,
            "replyMessageId": result.get("reply_message_id")
            if isinstance(result.get("reply_message_id"), str)
            else None,
        }
    if agent:
        key = "agentId" if agent.startswith("agt_") else "agentName"
        lineage.job_facets["nairi_agent"] = {key: agent, "namespace": namespace}
    return lineage


@functools.cache
def _facet_classes() -> tuple[type, type]:
    """The provider's facet classes (OpenLineage's ``RunFacet`` / ``JobFacet`` with attrs), built once, on
    first use only: this module imports no OpenLineage."""
    import attrs  # noqa: PLC0415
    from openlineage.client.facet_v2 import JobFacet, RunFacet  # noqa: PLC0415

    @attrs.define
    class NairiConversationRunFacet(RunFacet):
        conversationId: str  # OpenLineage facets are camelCase
        turn: int | None = None
        status: str | None = None
        replyMessageId: str | None = None

        @staticmethod
        def _get_schema() -> str:
            return f"{SCHEMA_URL}#nairi_conversation"

    @attrs.define
    class NairiAgentJobFacet(JobFacet):
        namespace: str
        agentId: str | None = None
        agentName: str | None = None

        @staticmethod
        def _get_schema() -> str:
            return f"{SCHEMA_URL}#nairi_agent"

    return NairiConversationRunFacet, NairiAgentJobFacet


def to_operator_lineage(lineage: Lineage) -> Any:
    """``OperatorLineage`` for ``lineage``, or ``None`` without the OpenLineage provider."""
    try:
        from airflow.providers.common.compat.openlineage.facet import (  # noqa: PLC0415
            ExternalQueryRunFacet,
            InputDataset,
            OutputDataset,
        )
        from airflow.providers.openlineage.extractors import OperatorLineage  # noqa: PLC0415
    except ImportError:
        return None
    run_facet, job_facet = _facet_classes()
    run_facets: dict[str, Any] = {}
    for key, value in lineage.run_facets.items():
        run_facets[key] = ExternalQueryRunFacet(**value) if key == "externalQuery" else run_facet(**value)
    return OperatorLineage(
        inputs=[InputDataset(namespace=ns, name=name) for ns, name in lineage.inputs],
        outputs=[OutputDataset(namespace=ns, name=name) for ns, name in lineage.outputs],
        run_facets=run_facets,
        job_facets={key: job_facet(**value) for key, value in lineage.job_facets.items()},
    )
