"""Conversation test fixtures: task instance, task_state_store, context, a hook mocked at its methods."""

from __future__ import annotations

import json
from unittest import mock

import pytest
from conversation_fakes import conversation


class FakeStateStore:
    """The part of Airflow 3.3's TaskStateStoreAccessor the operators use; values must be JSON."""

    def __init__(self):
        self.values = {}

    def get(self, key, default=None):
        return json.loads(self.values[key]) if key in self.values else default

    def set(self, key, value, *, retention=None):
        assert value is not None
        self.values[key] = json.dumps(value)


class FakeTaskInstance:
    dag_id = "dag"
    task_id = "ask"
    run_id = "manual__1"
    map_index = -1
    try_number = 1
    stats_tags: dict = {}

    def __init__(self):
        self.xcom = {}

    def xcom_push(self, key, value):
        self.xcom[key] = json.loads(json.dumps(value))

    def xcom_pull(self, task_ids, key, map_indexes=None):
        assert (task_ids, map_indexes) == (self.task_id, self.map_index)
        return self.xcom.get(key)


@pytest.fixture
def ti():
    return FakeTaskInstance()


@pytest.fixture
def store():
    return FakeStateStore()


@pytest.fixture
def context(ti, store):
    return {"ti": ti, "task_state_store": store}


@pytest.fixture(autouse=True)
def no_sleep(monkeypatch):
    """Worker-side waits sleep for real in production; here they only record how long they would sleep."""
    sleeps = []
    monkeypatch.setattr("time.sleep", sleeps.append)
    return sleeps


@pytest.fixture
def hook():
    hook = mock.MagicMock(name="NairiHook")
    hook.client = hook  # the hook's API object: the same mock, so each test sets and reads one set of calls
    hook.dashboard_url.side_effect = lambda kind, object_id: f"https://dash.example/{kind}/{object_id}"
    hook.create_conversation.return_value = conversation("queued", last_message=None)
    hook.get_conversation.return_value = conversation("completed")
    return hook
