"""The local Nairi: every endpoint of the public API, served over real HTTP on loopback.

In-process (tests, benchmarks)::

    from airflow_provider_nairi.emulator import run_emulator

    with run_emulator(turn_latency=0.05) as emu:
        emu.base_url, emu.api_key  # point a client here
        emu.admin.set_faults(sequence=["503"])

From a shell: ``nairi-emulator --port 8765``. See ``docs/emulator.md`` for the settings, the agent directives,
the fault kinds and the admin API. Needs the ``emulator`` extra (FastAPI's stack: Starlette, uvicorn).
"""

from __future__ import annotations

from airflow_provider_nairi.emulator.admin import AdminClient
from airflow_provider_nairi.emulator.server import Emulator, run_emulator
from airflow_provider_nairi.emulator.settings import EmulatorSettings

__all__ = ["AdminClient", "Emulator", "EmulatorSettings", "run_emulator"]
