"""The pure Nairi client core (no Airflow): config, protocol, the endpoint methods and the sync client.

``AsyncNairiClient`` lives in :mod:`airflow_provider_nairi.client.aio` and is not imported here: aiohttp is
slow to import and DAG files must not pay for it.

The names below load on first use (PEP 562): ``get_provider_info`` runs at every ``import airflow`` and reads
only :mod:`.config`, so importing this package must not pull in requests and tenacity.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from airflow_provider_nairi.client.api import AsyncNairiApi, NairiApi
    from airflow_provider_nairi.client.config import ClientConfig, connection_form
    from airflow_provider_nairi.client.protocol import RateLimit
    from airflow_provider_nairi.client.sync import NairiClient

_MODULE_OF = {
    "ClientConfig": "config",
    "connection_form": "config",
    "NairiApi": "api",
    "AsyncNairiApi": "api",
    "RateLimit": "protocol",
    "NairiClient": "sync",
}
__all__ = ["AsyncNairiApi", "ClientConfig", "NairiApi", "NairiClient", "RateLimit", "connection_form"]


def __getattr__(name: str) -> Any:
    if name not in _MODULE_OF:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_MODULE_OF[name]}"), name)
