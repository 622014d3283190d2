"""Idempotency keys derived from a task instance, or from a declaration alone.

A key made here is stable across retries of the same task instance (same dag id, task id, run id and
map index), so a worker that dies between sending a POST and recording its answer replays the first answer
on retry instead of creating a second conversation, artifact or job. Callers add their own ``parts`` (a
submission number, a file's identity) to tell apart distinct logical calls of one task instance.

A declaration of org state (an agent, vault or scheduled job with its name and fields) is not a task
instance's own call: two DAG runs, or two DAGs, that declare the same resource at once must converge on one
resource, so :func:`declaration_idempotency_key` derives the key from the declaration only.

Pure: takes anything with ``dag_id``, ``task_id``, ``run_id`` and ``map_index`` attributes (a TaskInstance).
"""

from __future__ import annotations

import hashlib
from typing import Any

#: Prefix of every derived key, so they are recognisable in the API's logs (the contract allows 1-255 chars).
KEY_PREFIX = "airflow-"


def task_idempotency_key(ti: Any, *parts: object) -> str:
    """Return ``airflow-<64 hex>``: sha256 of the task instance's identity and ``parts``."""
    identity = [ti.dag_id, ti.task_id, ti.run_id, getattr(ti, "map_index", -1), *parts]
    digest = hashlib.sha256("\x1f".join(str(p) for p in identity).encode()).hexdigest()
    return KEY_PREFIX + digest


def declaration_idempotency_key(*parts: object) -> str:
    """Return ``airflow-decl-<64 hex>``: sha256 of ``parts`` alone (no task instance), so every task that
    declares the same thing at the same time sends the same key and the API creates it once."""
    digest = hashlib.sha256("\x1f".join(str(p) for p in parts).encode()).hexdigest()
    return f"{KEY_PREFIX}decl-{digest}"
