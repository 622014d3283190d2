"""Connections for tests, in the JSON form Airflow reads from an ``AIRFLOW_CONN_<ID>`` variable.

``Connection(...).as_json()`` would do it, but the Task SDK Connection of Airflow 3.0 (what
``airflow.providers.common.compat.sdk`` gives there) has no ``as_json``: this works on every line the provider
supports (2.11, 3.0 to 3.3).
"""

from __future__ import annotations

import json
from typing import Any


def connection_env_json(conn_type: str, **fields: Any) -> str:
    """``conn_type`` and the fields given (``host``, ``password``, ``extra``...), ``None`` left out."""
    return json.dumps(
        {"conn_type": conn_type, **{name: value for name, value in fields.items() if value is not None}}
    )
