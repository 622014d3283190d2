"""Reliability fixtures: the chaos driver of ``bench/chaos.py`` (its task instance, state store and task
runner serve every test here), and a worker-like context."""

from __future__ import annotations

import importlib.util
import sys
import uuid
from pathlib import Path

import pytest

BENCH_CHAOS = Path(__file__).parent.parent.parent / "bench" / "chaos.py"


def load_chaos():
    """``bench/chaos.py`` as the module ``nairi_chaos`` (bench/ is not a package)."""
    if "nairi_chaos" not in sys.modules:
        spec = importlib.util.spec_from_file_location("nairi_chaos", BENCH_CHAOS)
        module = importlib.util.module_from_spec(spec)
        sys.modules["nairi_chaos"] = module
        spec.loader.exec_module(module)
    return sys.modules["nairi_chaos"]


@pytest.fixture(scope="session")
def chaos():
    return load_chaos()


@pytest.fixture
def context(chaos):
    """What a worker gives ``execute``: a task instance (try 1, a run of its own, so that idempotency keys of
    two tests never meet in the session emulator) and an empty ``task_state_store``."""
    return {
        "ti": chaos.TaskInstance(dag_id="reliability", task_id="task", run_id=f"manual__{uuid.uuid4().hex}"),
        "task_state_store": chaos.StateStore(),
    }
