"""Example DAGs when a user marks a waiting Nairi task success: downstream tasks still run, saying so.

A task marked success by hand returns nothing, so its downstream ``@task`` receives ``None`` for its
result (``ask.output`` resolves to ``None``); the examples must not fail on it with a ``TypeError``.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

pytest.importorskip("airflow.sdk", reason="the example DAGs use the Airflow 3 task SDK")

EXAMPLES = Path(__file__).parents[2] / "example_dags"
NO_REPLY = "(no reply: marked success by hand)"


def python_callable(example, task_id):
    spec = importlib.util.spec_from_file_location(f"example_{example}", EXAMPLES / f"{example}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return getattr(module, example)().get_task(task_id).python_callable


def test_conversation_report_when_ask_was_marked_success(capsys):
    report = python_callable("nairi_conversation", "report")
    text = report(None, {"reply": "Check the sensor first.", "url": "https://app.nairi.ai/conversations/c"})
    assert text == f"{NO_REPLY}\n---\nCheck the sensor first."
    assert NO_REPLY in capsys.readouterr().out


def test_mapped_collect_when_one_instance_was_marked_success():
    collect = python_callable("nairi_mapped_prompts", "collect")
    assert collect([{"reply": "a"}, None, {"reply": "c"}]) == ["a", NO_REPLY, "c"]


def test_org_as_code_report_when_run_now_was_marked_success(tmp_path):
    report = python_callable("nairi_org_as_code", "report")
    plan = {"kind": "agent", "action": "unchanged"}
    summary = report(None, plan, None, params={"output_dir": str(tmp_path)}, run_id="manual__1")
    assert summary == {"reply": None, "conversation_id": None, "actions": {"agent": "unchanged"}}
    assert json.loads((tmp_path / "manual__1.json").read_text()) == summary
