"""Serving the emulator: uvicorn (httptools and uvloop when installed) on a loopback port, in a thread."""

from __future__ import annotations

import contextlib
import dataclasses
import importlib.util
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import uvicorn
from uvicorn.protocols.http import h11_impl, httptools_impl

from airflow_provider_nairi.emulator.admin import AdminClient
from airflow_provider_nairi.emulator.app import ADMIN_PREFIX, API_PREFIX, NairiApp
from airflow_provider_nairi.emulator.core import Core
from airflow_provider_nairi.emulator.settings import EmulatorSettings

#: Seconds ``run_emulator`` waits for the server to start listening.
START_TIMEOUT = 15.0


#: Bytes uvicorn buffers from a request body before it stops reading the socket (its default is 64 KiB).
READ_AHEAD = 4 * 1024 * 1024


def raise_read_ahead() -> None:
    """Let uvicorn read up to :data:`READ_AHEAD` of a body ahead of the app.

    With the default 64 KiB, reading pauses after every socket read until the app asks for the next chunk, so
    network and disk never overlap; measured here, a bare ASGI drain went from 170-210 to 255-305 MiB/s. The
    limit is a module constant of uvicorn's HTTP protocols (no setting exists), so this changes it for every
    uvicorn server of the process.
    """
    for module in (httptools_impl, h11_impl):
        module.HIGH_WATER_LIMIT = max(module.HIGH_WATER_LIMIT, READ_AHEAD)  # type: ignore[attr-defined]


def uvicorn_config(
    app: NairiApp, host: str, port: int | None = None, sock: socket.socket | None = None
) -> uvicorn.Config:
    """uvicorn settings: the fastest HTTP parser and loop installed, no access log, our own lifespan."""
    raise_read_ahead()
    return uvicorn.Config(
        app,
        host=host,
        port=port or 0,
        http="httptools" if importlib.util.find_spec("httptools") else "h11",
        loop="uvloop" if importlib.util.find_spec("uvloop") else "asyncio",
        lifespan="on",
        access_log=False,
        log_level="warning",
        timeout_graceful_shutdown=2,
    )


@dataclasses.dataclass
class Emulator:
    """A running emulator: where it listens, a read-write key, and its admin API."""

    base_url: str
    api_key: str
    admin_url: str
    admin_token: str
    core: Core
    admin: AdminClient = dataclasses.field(init=False)

    def __post_init__(self) -> None:
        self.admin = AdminClient(self.admin_url, self.admin_token)

    def __repr__(self) -> str:  # never show the key or the token
        return f"Emulator(base_url={self.base_url!r})"


@contextlib.contextmanager
def run_emulator(settings: EmulatorSettings | None = None, **fields: Any) -> Iterator[Emulator]:
    """Serve a fresh emulator on a free port of 127.0.0.1 in a background thread; stop it on exit.

    Give an :class:`EmulatorSettings` or its fields as keywords (``turn_latency=0.01``...). The state is in
    memory and vanishes on exit unless ``state_dir`` is set.
    """
    settings = dataclasses.replace(settings, **fields) if settings else EmulatorSettings(**fields)
    core = Core(settings)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn_config(NairiApp(core), "127.0.0.1", port))
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, name=f"nairi-emulator-{port}", daemon=True
    )
    thread.start()
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the Nairi emulator did not start")
            time.sleep(0.005)
        origin = f"http://127.0.0.1:{port}"
        yield Emulator(origin + API_PREFIX, core.api_key, origin + ADMIN_PREFIX, core.admin_token, core)
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()
        core.store.close()
