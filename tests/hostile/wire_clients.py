"""Clients of the hostile-server tests: both clients of one connection to a :class:`HostileServer`, waits
recorded instead of slept."""

from __future__ import annotations

from typing import Any

from hostile_servers import HostileServer

from airflow_provider_nairi.client.config import ClientConfig
from airflow_provider_nairi.client.sync import NairiClient

KEY = "nr_live_HostileWireSecret0001"


def config_for(server: HostileServer, **extras: Any) -> ClientConfig:
    """The config a connection to ``server`` gives, validated like any connection (``extras`` as set)."""
    return ClientConfig.from_connection(host=server.base_url, password=KEY, extras=extras)


class Sleeps(list[float]):
    """Every wait a client asked for, none of them slept."""

    def sync(self, seconds: float) -> None:
        self.append(seconds)

    async def aio(self, seconds: float) -> None:
        self.append(seconds)


def sync_client(server: HostileServer, sleeps: Sleeps | None = None, **extras: Any) -> NairiClient:
    return NairiClient(config_for(server, **extras), sleep=(sleeps if sleeps is not None else Sleeps()).sync)


def async_client(server: HostileServer, sleeps: Sleeps | None = None, **extras: Any) -> Any:
    from airflow_provider_nairi.client.aio import AsyncNairiClient  # noqa: PLC0415 - aiohttp only where used

    return AsyncNairiClient(
        config_for(server, **extras), sleep=(sleeps if sleeps is not None else Sleeps()).aio
    )
