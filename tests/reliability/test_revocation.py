"""A key revoked while a task waits on a conversation fails the task at once: no client retry, no Airflow
retry (``AirflowFailException``), and a message that says the key is invalid or revoked."""

from __future__ import annotations

import threading
import time

import pytest
from airflow.providers.common.compat.sdk import AirflowFailException

from airflow_provider_nairi.hooks.nairi import NairiHook
from airflow_provider_nairi.operators.conversation import NairiStartConversationOperator
from airflow_provider_nairi.testing import connection_env_var, connection_json

REVOKED = "401 unauthorized: The API key is invalid or revoked"


@pytest.fixture
def revocable(emulator, monkeypatch):
    """A fresh read-write key of the session emulator in the ``nairi_default`` connection; yields the key."""
    key = emulator.admin.create_key(scopes=("read", "write"), name="revocable")
    monkeypatch.setenv(connection_env_var("nairi_default"), connection_json(emulator.base_url, key))
    return key


def ask(agent_id, deferrable):
    return NairiStartConversationOperator(
        task_id="ask",
        agent_id=agent_id,
        message="[[delay:30]] a long question",
        deferrable=deferrable,
        poll_interval=0.05,
        timeout=60,
    )


@pytest.mark.parametrize("deferrable", [False, True], ids=["worker", "deferred"])
def test_a_key_revoked_mid_wait_fails_the_task_without_retries(
    deferrable, emulator, revocable, chaos, context
):
    agent_id = NairiHook().client.create_agent("revocation", "Answer.")["id"]
    tally, revoked_at = chaos.Tally(), []

    def revoke_while_waiting():  # another thread: the task runs in the main one, as on a worker
        deadline = time.monotonic() + 20
        while "conversation_id" not in context["ti"].xcom and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(0.2)  # a few polls with the good key
        revoked_at.append(time.monotonic())
        emulator.admin.revoke_key(revocable)

    threading.Thread(target=revoke_while_waiting, daemon=True).start()
    with pytest.raises(AirflowFailException) as caught:
        chaos.run_task(lambda: ask(agent_id, deferrable), context["ti"], retries=3, tally=tally)
    elapsed = time.monotonic() - revoked_at[0]

    error = caught.value
    assert type(error) is AirflowFailException
    assert REVOKED in str(error) and revocable not in str(error)
    assert context["ti"].try_number == 1 and tally.airflow_retries == {}  # no Airflow retry
    conversation_id = context["ti"].xcom["conversation_id"]
    refused = [
        entry
        for entry in emulator.admin.requests_log()
        if conversation_id in entry["path"] and entry["status"] == 401
    ]
    assert len(refused) == 1  # one refused poll: the client did not retry it either
    assert elapsed < 5  # at once: the next poll, not the 30 s turn or a timeout
