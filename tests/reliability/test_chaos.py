"""The bounded chaos run (``make chaos`` runs 200 pipelines): 20 pipelines under 20 % injected faults."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.chaos


def test_twenty_pipelines_under_faults_succeed_without_duplicates(chaos, tmp_path):
    report = chaos.run_chaos(20, fault_rate=0.2, seed=20, workers=4, deferrable_every=5, workdir=tmp_path)

    assert report["problems"] == []  # every task green, sha256 of every download right, nothing duplicated
    assert report["stored"] == {"agents": 1, "conversations": 20, "messages": 40, "artifacts": 40}
    assert report["deferred_tasks"] == 4
    assert report["fault_answers"] >= 0.08 * report["api_requests"]  # the faults really happened
    assert {"429", "500", "502", "503", "reset", "lost"} <= set(report["answers_by_status"])
    assert len(list((tmp_path / "out").rglob("*.txt"))) == 40


def test_the_run_catches_duplicates_when_retries_are_not_idempotent(chaos, tmp_path, monkeypatch):
    """The no-duplicate check can fail: without Idempotency-Key headers, lost answers duplicate objects."""
    from airflow_provider_nairi.client import sync  # noqa: PLC0415

    def without_key(*args):
        headers = dict(original(*args))
        headers.pop("Idempotency-Key", None)
        return headers

    original = sync.request_headers
    monkeypatch.setattr(sync, "request_headers", without_key)
    report = chaos.run_chaos(10, fault_rate=0.3, faults=("lost",), seed=3, workers=4, workdir=tmp_path)
    assert report["answers_by_status"]["lost"] > 10
    assert any("stored, expected" in problem for problem in report["problems"]), report


def test_a_task_that_keeps_failing_stops_after_its_retries(chaos):
    tally, tries = chaos.Tally(), []

    def operator():
        tries.append(1)
        return Failing()

    class Failing:
        def execute(self, context):
            raise chaos.AirflowException("still down")

    ti = chaos.TaskInstance(dag_id="d", task_id="t", run_id="r")
    with pytest.raises(chaos.AirflowException, match="still down"):
        chaos.run_task(operator, ti, retries=2, tally=tally)
    assert len(tries) == 3 and ti.try_number == 3 and tally.airflow_retries["t"] == 2
