"""Org-as-code flows against the emulator over loopback HTTP: the real hook, client and API shapes."""

from __future__ import annotations

import pytest
from airflow.providers.common.compat.sdk import AirflowFailException
from airflow_connections import connection_env_json

from airflow_provider_nairi.hooks.nairi import NairiHook
from airflow_provider_nairi.operators.admin import NairiDeleteOperator
from airflow_provider_nairi.operators.agents import NairiAgentOperator
from airflow_provider_nairi.operators.scheduled_jobs import (
    NairiRunScheduledJobOperator,
    NairiScheduledJobOperator,
)
from airflow_provider_nairi.operators.secrets import (
    FromConnection,
    FromVariable,
    NairiEnvVarsOperator,
    NairiVaultSecretsOperator,
)

DB_PASSWORD = "flow-pg-pass-41d2"
CRM_TOKEN = "flow-crm-tok-93aa"


@pytest.fixture(autouse=True)
def airflow_sources(monkeypatch):
    monkeypatch.setenv(
        "AIRFLOW_CONN_SUPPORT_DB",
        connection_env_json("postgres", password=DB_PASSWORD),
    )
    monkeypatch.setenv("AIRFLOW_VAR_CRM_TOKEN", CRM_TOKEN)


def declared_org():
    vault = NairiVaultSecretsOperator(
        task_id="vault",
        vault_name="support",
        secrets={"DB_PASSWORD": FromConnection("support_db"), "CRM_TOKEN": FromVariable("crm_token")},
    )
    env = NairiEnvVarsOperator(
        task_id="env", env_vars={"LOG_LEVEL": "info", "CRM_TOKEN": FromVariable("crm_token")}
    )
    return vault, env


def morning_job(cron="0 7 * * 1-5"):
    return NairiScheduledJobOperator(
        task_id="job",
        name="morning",
        agent_name="triage",
        message="Summarise the night's tickets.",
        cron=cron,
        timezone="Europe/Paris",
    )


def apply_org(context):
    vault, env = declared_org()
    vault_plan = vault.execute(context)
    agent_plan = NairiAgentOperator(
        task_id="agent", name="triage", instructions="Triage tickets.", vault_ids=[vault_plan["id"]]
    ).execute(context)
    return vault_plan, env.execute(context), agent_plan, morning_job().execute(context)


def test_org_is_created_then_reported_unchanged(nairi_emulator, context):
    first = apply_org(context)
    second = apply_org(context)

    assert [plan["action"] for plan in first] == ["created", "updated", "created", "created"]
    assert [plan["action"] for plan in second] == ["unchanged"] * 4
    hook = NairiHook()
    agent = hook.client.get_agent(first[2]["id"])
    assert agent["vault_ids"] == [first[0]["id"]]
    assert sorted(hook.client.get_vault(first[0]["id"])["secret_names"]) == ["CRM_TOKEN", "DB_PASSWORD"]
    env = {item["name"]: item for item in hook.client.list_env_vars()}
    assert env["LOG_LEVEL"]["value"] == "info" and env["CRM_TOKEN"] == {
        **env["CRM_TOKEN"],
        "value": None,
        "secret": True,
    }
    job = hook.client.get_scheduled_job(first[3]["id"])
    assert (job["agent_id"], job["cron"], job["timezone"], job["enabled"]) == (
        agent["id"],
        "0 7 * * 1-5",
        "Europe/Paris",
        True,
    )
    counts = nairi_emulator.admin.counts()
    assert (counts["agents"], counts["vaults"], counts["scheduled_jobs"]) == (1, 1, 1)
    posts = [r for r in nairi_emulator.admin.requests_log() if r["method"] == "POST"]
    assert posts and all(r["idempotency_key"] for r in posts)


def test_changed_declaration_patches_only_that_field(nairi_emulator, context):
    apply_org(context)
    nairi_emulator.admin.clear_log()

    plan = morning_job(cron="30 6 * * 1-5").execute(context)

    assert plan["action"] == "updated" and plan["fields"] == ["cron"]
    writes = [r for r in nairi_emulator.admin.requests_log() if r["method"] not in ("GET",)]
    assert [(r["method"], r["status"]) for r in writes] == [("PATCH", 200)]


def test_secret_values_stay_out_of_debug_logs_with_the_real_client(nairi_emulator, context, logs):
    vault, env = declared_org()
    vault.execute(context)
    env.execute(context)
    logged = logs()
    assert "support" in logged
    assert DB_PASSWORD not in logged and CRM_TOKEN not in logged


def test_run_job_now_waits_for_the_agents_reply(nairi_emulator, context):
    _, _, _, job = apply_org(context)

    result = NairiRunScheduledJobOperator(
        task_id="run", job_name="morning", poll_interval=0.05, timeout=30, deferrable=False
    ).execute(context)

    assert result["status"] == "completed" and result["turn"] == 1
    assert result["reply"].startswith("Reply to turn 1: Summarise the night's tickets.")
    assert (
        NairiHook().client.get_scheduled_job(job["id"])["last_run"]["conversation_id"]
        == result["conversation_id"]
    )


def test_duplicate_agent_names_fail_with_both_ids(nairi_emulator, context):
    hook = NairiHook()
    ids = [hook.client.create_agent("triage", "a")["id"], hook.client.create_agent("triage", "b")["id"]]
    with pytest.raises(AirflowFailException) as info:
        NairiAgentOperator(task_id="agent", name="triage", instructions="x").execute(context)
    assert f"({ids[0]}, {ids[1]})" in str(info.value)


def test_removal_by_name_is_safe_to_repeat(nairi_emulator, context):
    apply_org(context)
    for kind, name in [
        ("scheduled_job", "morning"),
        ("agent", "triage"),
        ("vault", "support"),
        ("env_var", "LOG_LEVEL"),
    ]:
        op = NairiDeleteOperator(task_id=f"rm_{kind}", kind=kind, name=name)
        assert op.execute(context)["action"] == "deleted"
        assert op.execute(context)["action"] == "already absent"
    counts = nairi_emulator.admin.counts()
    assert (counts["agents"], counts["vaults"], counts["scheduled_jobs"]) == (0, 0, 0)


def test_create_retried_through_faults_keeps_one_key_and_makes_one_agent(nairi_emulator, context):
    # The list answers; the first POST /agents is reset, the second gets a 503, the third goes through.
    nairi_emulator.admin.set_faults(sequence=["ok", "reset", "503"], paths=["/agents"])

    plan = NairiAgentOperator(task_id="agent", name="triage", instructions="Triage tickets.").execute(context)

    posts = [r for r in nairi_emulator.admin.requests_log() if r["method"] == "POST"]
    assert [r["status"] for r in posts] == ["reset", 503, 201]
    assert len({r["idempotency_key"] for r in posts}) == 1
    assert plan["action"] == "created" and nairi_emulator.admin.counts()["agents"] == 1


def test_cleared_task_recreates_a_resource_deleted_meanwhile_with_a_new_declaration(nairi_emulator, context):
    first = NairiAgentOperator(task_id="agent", name="triage", instructions="v1").execute(context)
    NairiHook().client.delete_agent(first["id"])  # someone removes it; then the same task instance runs again

    again = NairiAgentOperator(task_id="agent", name="triage", instructions="v2").execute(context)

    assert again["action"] == "created" and again["id"] != first["id"]
    assert NairiHook().client.get_agent(again["id"])["instructions"] == "v2"


def test_a_replayed_create_of_a_deleted_resource_is_created_again(nairi_emulator, context):
    first = NairiAgentOperator(task_id="agent", name="triage", instructions="v1").execute(context)
    NairiHook().client.delete_agent(
        first["id"]
    )  # removed elsewhere; the same task instance runs again, same body

    again = NairiAgentOperator(task_id="agent", name="triage", instructions="v1").execute(context)

    posts = [r for r in nairi_emulator.admin.requests_log() if r["method"] == "POST"]
    assert len(posts) == 3 and posts[0]["idempotency_key"] == posts[1]["idempotency_key"]  # the replay
    assert again["action"] == "created" and again["id"] != first["id"]
    assert NairiHook().client.get_agent(again["id"])["instructions"] == "v1"


def test_every_page_is_read_and_an_unchanged_org_costs_only_reads(nairi_emulator, context):
    hook = NairiHook()
    for number in range(400):  # two full pages of 200 before the managed agent
        hook.client.create_agent(f"other-{number}", "x")
    apply_org(context)
    nairi_emulator.admin.clear_log()

    plans = apply_org(context)

    assert [plan["action"] for plan in plans] == ["unchanged"] * 4
    calls = [(r["method"], r["path"]) for r in nairi_emulator.admin.requests_log()]
    agent_pages = [r for r in nairi_emulator.admin.requests_log() if r["path"] == "/agents"]
    assert len(agent_pages) == 2 * 3  # the agent and the job's agent_name: 3 pages each (401 agents)
    writes = [call for call in calls if call[0] != "GET"]
    # Only the write-only secret values are re-sent: 2 vault secrets and 1 secret env var.
    assert sorted(writes) == [
        ("PUT", "/env-vars/CRM_TOKEN"),
        ("PUT", f"/vaults/{plans[0]['id']}/secrets/CRM_TOKEN"),
        ("PUT", f"/vaults/{plans[0]['id']}/secrets/DB_PASSWORD"),
    ]


def test_two_runs_that_declare_the_same_agent_at_once_make_one(nairi_emulator, context):
    # Two DAG runs both read the org before either creates: both see the agent absent, both create it.
    # The key comes from the declaration, not the task instance: the second create replays the first.
    other_run = {**context, "ti": type(context["ti"])()}
    other_run["ti"].run_id = "scheduled__2"
    one, two = (NairiAgentOperator(task_id="agent", name="triage", instructions="v1") for _ in range(2))
    hook = NairiHook()

    first = one.create_once(
        "agent", "triage", {"instructions": "v1"}, create=hook.client.create_agent, get=hook.client.get_agent
    )
    second = two.create_once(
        "agent", "triage", {"instructions": "v1"}, create=hook.client.create_agent, get=hook.client.get_agent
    )

    assert first["id"] == second["id"] and nairi_emulator.admin.counts()["agents"] == 1
    # And a later run of either DAG finds one agent by that name, not a duplicate_name conflict.
    assert NairiAgentOperator(task_id="agent", name="triage", instructions="v1").execute(other_run)[
        "action"
    ] == ("unchanged")
