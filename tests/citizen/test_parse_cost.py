"""DAG-parse cost: importing what a DAG file imports, and parsing the example DAGs, stays cheap and offline.

Each check runs in a fresh interpreter, so what earlier tests imported cannot hide a regression.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from airflow import __version__ as airflow_version
from packaging.version import Version

import airflow_provider_nairi

PACKAGE_DIR = Path(airflow_provider_nairi.__file__).parent
# The example DAGs are written for Airflow 3 (``airflow.sdk``); on 2.11 only the modules are imported.
EXAMPLE_DAGS = sorted((PACKAGE_DIR.parent / "example_dags").glob("*.py"))
if Version(airflow_version).major < 3:
    EXAMPLE_DAGS = []
elif Version(airflow_version) < Version("3.1"):  # the review example is refused there (tests/ai tests that)
    EXAMPLE_DAGS = [path for path in EXAMPLE_DAGS if path.name != "nairi_review_loop.py"]

# Runs in a fresh interpreter: records every connection look-up and every outgoing socket connection, imports
# the DAG-facing modules, executes the example DAG files, and prints what it saw.
PROBE = """
import importlib, json, pkgutil, socket, sys
from pathlib import Path

from airflow.providers.common.compat.sdk import BaseHook

seen = {"connection_lookups": [], "socket_connects": []}
real_connect = socket.socket.connect


def record_lookup(cls, conn_id):
    seen["connection_lookups"].append(conn_id)
    raise RuntimeError("no connection look-up at DAG parse time")


def record_connect(self, address):
    seen["socket_connects"].append(repr(address))
    return real_connect(self, address)


BaseHook.get_connection = classmethod(record_lookup)
socket.socket.connect = record_connect

package_dir = Path(sys.argv[1])
modules = ["airflow_provider_nairi.links"] if (package_dir / "links.py").exists() else []
for kind in ("operators", "sensors"):
    found = pkgutil.iter_modules([str(package_dir / kind)])
    modules += [f"airflow_provider_nairi.{kind}.{info.name}" for info in found]
for name in modules:
    importlib.import_module(name)
for index, path in enumerate(sys.argv[2:]):
    spec = importlib.util.spec_from_file_location(f"example_dag_{index}", path)
    spec.loader.exec_module(importlib.util.module_from_spec(spec))
seen["modules"] = modules
heavy = ("aiohttp", "airflow_provider_nairi.client.aio")
seen["heavy_imports"] = sorted(m for m in heavy if m in sys.modules)
print(json.dumps(seen))
"""


# What Airflow itself imports when any operator is built, in a fresh interpreter: Airflow 3.0 brings aiohttp
# (BaseOperator -> serialized_objects -> api_fastapi -> svcs -> aiohttp); 2.11 and 3.1+ bring neither.
AIRFLOW_ONLY = """
import json, sys
from airflow.providers.common.compat.sdk import BaseOperator

BaseOperator(task_id="plain")
print(json.dumps(sorted(m for m in ("aiohttp", "airflow_provider_nairi.client.aio") if m in sys.modules)))
"""


def run_probe(*args: str) -> Any:
    result = subprocess.run(
        [sys.executable, "-c", *args], check=False, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def probe() -> dict:
    return run_probe(PROBE, str(PACKAGE_DIR), *map(str, EXAMPLE_DAGS))


def test_dag_facing_modules_and_example_dags_parse_without_aiohttp_network_or_connections():
    seen = probe()
    assert seen["modules"], "no DAG-facing module was found to import"
    airflows_own = run_probe(AIRFLOW_ONLY) if seen["heavy_imports"] else []  # 3.0: what Airflow brings itself
    assert "airflow_provider_nairi.client.aio" not in airflows_own
    assert [name for name in seen["heavy_imports"] if name not in airflows_own] == []
    assert seen["connection_lookups"] == []
    assert seen["socket_connects"] == []
