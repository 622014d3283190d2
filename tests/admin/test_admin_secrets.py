"""Vault secrets and env vars: plans, pruning, convergence, and where a secret value must never appear."""

from __future__ import annotations

import json
from types import SimpleNamespace
from unittest import mock

import pytest
from airflow import __version__ as airflow_version
from airflow.providers.common.compat.sdk import AirflowException, AirflowFailException
from airflow_connections import connection_env_json

from airflow_provider_nairi.exceptions import NairiConfigurationError, NairiServerError, NairiValidationError
from airflow_provider_nairi.idempotency import declaration_idempotency_key
from airflow_provider_nairi.operators.secrets import (
    FromConnection,
    FromVariable,
    NairiEnvVarsOperator,
    NairiVaultSecretsOperator,
)

DB_PASSWORD = "pg-pass-7c1e9a"
API_TOKEN = "tok-55f0e2d9"
TEMPLATED = "tpl-secret-0b8d"


@pytest.fixture(autouse=True)
def airflow_sources(monkeypatch):
    conn = connection_env_json("postgres", login="etl", password=DB_PASSWORD, extra='{"k": "x-extra"}')
    monkeypatch.setenv("AIRFLOW_CONN_DB", conn)
    monkeypatch.setenv("AIRFLOW_VAR_API_TOKEN", API_TOKEN)


def vault_op(secrets=None, **kwargs):
    if secrets is None:
        secrets = {
            "DB_PASSWORD": {"conn_id": "db", "field": "password"},
            "API_TOKEN": FromVariable("api_token"),
        }
    return NairiVaultSecretsOperator(task_id="vault", vault_name="support", secrets=secrets, **kwargs)


def test_vault_is_created_and_secrets_written_from_connection_and_variable(run, hook, org, context):
    plan = run(vault_op())

    assert plan == {
        "kind": "vault",
        "id": "vlt_1",
        "name": "support",
        "action": "created",
        "secrets": [{"name": "DB_PASSWORD", "action": "created"}, {"name": "API_TOKEN", "action": "created"}],
        "rewritten": [],
        "kept": [],
    }
    hook.create_vault.assert_called_once_with(
        "support", idempotency_key=declaration_idempotency_key("create-vault", "support", "{}")
    )
    assert org.secret_values == {("vlt_1", "DB_PASSWORD"): DB_PASSWORD, ("vlt_1", "API_TOKEN"): API_TOKEN}


def test_second_run_is_unchanged_but_rewrites_the_write_only_values(run, hook, org):
    run(vault_op())
    hook.reset_mock()

    plan = run(vault_op())

    assert plan["action"] == "unchanged"
    assert [s["action"] for s in plan["secrets"]] == ["unchanged", "unchanged"]
    assert plan["rewritten"] == ["API_TOKEN", "DB_PASSWORD"]
    hook.create_vault.assert_not_called()
    assert hook.put_vault_secret.call_count == 2


def test_undeclared_secrets_are_kept_unless_prune(run, hook, org):
    run(vault_op())
    only_db = {"DB_PASSWORD": FromConnection("db")}

    kept = run(vault_op(only_db))
    assert kept["kept"] == ["API_TOKEN"] and kept["action"] == "unchanged"
    hook.delete_vault_secret.assert_not_called()

    pruned = run(vault_op(only_db, prune=True))
    assert pruned["action"] == "updated"
    assert pruned["secrets"] == [
        {"name": "DB_PASSWORD", "action": "unchanged"},
        {"name": "API_TOKEN", "action": "deleted"},
    ]
    assert org.vaults["vlt_1"]["secret_names"] == ["DB_PASSWORD"]


def test_rerun_after_a_partial_failure_converges(run, hook, org):
    hook.put_vault_secret.side_effect = [
        None,
        NairiServerError("upstream down", status=503, code="service_unavailable"),
    ]
    with pytest.raises(AirflowException) as info:
        run(vault_op())
    assert not isinstance(info.value, AirflowFailException)  # retryable: Airflow's retries apply

    hook.put_vault_secret.side_effect = org.put_vault_secret
    plan = run(vault_op())

    assert plan["id"] == "vlt_1" and plan["action"] == "updated"  # the same vault, now completed
    assert len(org.vaults) == 1 and sorted(org.vaults["vlt_1"]["secret_names"]) == [
        "API_TOKEN",
        "DB_PASSWORD",
    ]


def test_two_vaults_with_the_name_fail_with_both_ids(run, hook, org):
    org.create_vault("support")
    org.create_vault("support")
    with pytest.raises(AirflowFailException, match=r"2 vaults are named 'support' \(vlt_1, vlt_2\)"):
        run(vault_op())
    hook.put_vault_secret.assert_not_called()


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        (FromConnection("db", "login"), "etl"),
        ({"conn_id": "{{ params.conn }}"}, DB_PASSWORD),
        (FromConnection("db", "extra.k"), "x-extra"),
        ({"variable": "api_token"}, API_TOKEN),
        ("{{ params.token }}", TEMPLATED),
    ],
)
def test_sources_resolve_at_execute_time(run, org, context, source, expected):
    context["params"] = {"conn": "db", "token": TEMPLATED}
    run(vault_op({"S": source}))
    assert org.secret_values[("vlt_1", "S")] == expected


@pytest.mark.parametrize(
    ("secrets", "message"),
    [
        ({"S": FromConnection("db", "schema")}, r"^Nairi: secrets\['S'\]: connection 'db' has no schema\.$"),
        ({"S": FromConnection("db", "uri")}, r"^Nairi: secrets\['S'\]: field 'uri' is not one of"),
        ({"S": {"conn": "db"}}, r"^Nairi: secrets\['S'\]: give a string, FromConnection"),
    ],
)
def test_bad_declarations_fail_before_any_request(run, hook, secrets, message):
    with pytest.raises(AirflowFailException, match=message):
        run(vault_op(secrets))
    assert hook.mock_calls == []


@pytest.fixture
def task_supervisor(monkeypatch):
    """On Airflow 3.0 the Task SDK asks the task's supervisor for a Variable no secrets backend has; outside a
    task (here) there is none. Stand in with what the real one answers for an unknown key (3.1+: no need)."""
    if not airflow_version.startswith("3.0."):
        return
    from airflow.sdk.exceptions import ErrorType  # noqa: PLC0415 (Airflow 3 only)
    from airflow.sdk.execution_time import task_runner  # noqa: PLC0415
    from airflow.sdk.execution_time.comms import ErrorResponse  # noqa: PLC0415

    def send(request):
        return ErrorResponse(error=ErrorType.VARIABLE_NOT_FOUND, detail={"key": request.key})

    monkeypatch.setattr(task_runner, "SUPERVISOR_COMMS", SimpleNamespace(send=send), raising=False)


@pytest.mark.usefixtures("task_supervisor")
def test_a_missing_variable_fails_before_any_request(run, hook):
    """Apart from the other bad declarations: on Airflow 3.0 a task supervisor answers the look-up (and would
    answer connection look-ups too)."""
    with pytest.raises(
        AirflowFailException, match=r"^Nairi: secrets\['S'\]: Variable 'missing' is not set\.$"
    ):
        run(vault_op({"S": FromVariable("missing")}))
    assert hook.mock_calls == []


def test_secret_values_are_masked_before_any_request():
    order = mock.Mock()
    op = vault_op()
    op.__dict__["hook"] = order.hook
    order.hook.client = order.hook
    order.hook.list_vaults.return_value = iter([])
    order.hook.create_vault.return_value = {"id": "vlt_1", "name": "support", "secret_names": []}
    with mock.patch("airflow_provider_nairi.operators.secrets.mask_secret", order.mask_secret):
        op.execute({"ti": mock.Mock(dag_id="d", task_id="t", run_id="r", map_index=-1), "params": {}})
    names = [call[0] for call in order.mock_calls]
    assert names[:3] == ["mask_secret", "mask_secret", "hook.list_vaults"]
    assert order.mask_secret.call_args_list == [mock.call(DB_PASSWORD), mock.call(API_TOKEN)]


def test_secret_values_never_reach_logs_or_xcom(run, context, logs):
    context["params"] = {"token": TEMPLATED}
    op = vault_op({"DB_PASSWORD": FromConnection("db"), "TOKEN": "{{ params.token }}"})

    plan = run(op)
    logged = logs()

    for value in (DB_PASSWORD, TEMPLATED):
        assert value not in logged
        assert value not in json.dumps(plan)
    assert "Nairi vault 'support'" in logged and "TOKEN" in logged  # the operator did log, names only


def test_templated_secret_values_never_reach_rendered_fields(run, context):
    task_runner = pytest.importorskip("airflow.sdk.execution_time.task_runner")  # Airflow 3
    context["params"] = {"token": TEMPLATED}
    op = vault_op({"DB_PASSWORD": FromConnection("db"), "TOKEN": "{{ params.token }}"})
    assert "secrets" not in op.template_fields

    op.render_template_fields(context)  # what Airflow does before execute, then stores the rendered fields
    run(op)
    rendered = json.dumps(task_runner._serialize_rendered_fields(op))

    assert "support" in rendered  # vault_name is a template field and is stored
    assert DB_PASSWORD not in rendered and TEMPLATED not in rendered


def test_api_errors_never_carry_the_value(run, hook):
    echo = NairiValidationError(
        f"value {DB_PASSWORD!r} is too weak",
        status=422,
        code="validation_error",
        details=[{"field": "value", "message": f"{DB_PASSWORD} is in a breach list"}],
    )
    hook.put_vault_secret.side_effect = echo

    with pytest.raises(AirflowFailException) as info:
        run(vault_op({"DB_PASSWORD": FromConnection("db")}))

    texts = [str(info.value), str(info.value.__cause__), repr(info.value.__cause__.args)]
    assert all(DB_PASSWORD not in text for text in texts)
    assert "value '***' is too weak" in str(info.value) and "*** is in a breach list" in str(info.value)


# --- env vars ---------------------------------------------------------------------------------------------


def env_op(env_vars=None, **kwargs):
    if env_vars is None:
        env_vars = {
            "LOG_LEVEL": "info",
            "DB_PASSWORD": FromConnection("db"),
            "REGION": {"value": "eu", "secret": False},
        }
    return NairiEnvVarsOperator(task_id="env", env_vars=env_vars, **kwargs)


def test_env_vars_are_created_with_their_secret_flag(run, hook, org):
    plan = run(env_op())

    assert plan["action"] == "updated"
    assert plan["env_vars"] == [
        {"name": "LOG_LEVEL", "action": "created", "fields": []},
        {"name": "DB_PASSWORD", "action": "created", "fields": []},
        {"name": "REGION", "action": "created", "fields": []},
    ]
    assert {n: (e["value"], e["secret"]) for n, e in org.env.items()} == {
        "LOG_LEVEL": ("info", False),
        "DB_PASSWORD": (DB_PASSWORD, True),
        "REGION": ("eu", False),
    }
    assert DB_PASSWORD not in json.dumps(plan) and "info" not in json.dumps(plan)


def test_second_env_run_writes_only_the_secrets(run, hook):
    run(env_op())
    hook.reset_mock()

    plan = run(env_op())

    assert plan["action"] == "unchanged" and plan["rewritten"] == ["DB_PASSWORD"]
    hook.put_env_var.assert_called_once_with("DB_PASSWORD", DB_PASSWORD, secret=True)


def test_changed_value_and_flag_are_updated_by_field(run, hook, org):
    run(env_op())

    plan = run(
        env_op(
            {
                "LOG_LEVEL": "debug",
                "DB_PASSWORD": FromConnection("db"),
                "REGION": {"value": "eu", "secret": True},
            }
        )
    )

    assert plan["env_vars"][0] == {"name": "LOG_LEVEL", "action": "updated", "fields": ["value"]}
    assert plan["env_vars"][2] == {"name": "REGION", "action": "updated", "fields": ["secret"]}
    assert org.env["LOG_LEVEL"]["value"] == "debug" and org.env["REGION"]["secret"] is True


def test_env_prune_deletes_undeclared_and_tolerates_already_gone(run, hook, org):
    run(env_op())
    hook.delete_env_var.side_effect = lambda name: (
        org.delete_env_var(name) if name != "REGION" else org.delete_env_var("nope")
    )

    plan = run(env_op({"LOG_LEVEL": "info"}, prune=True))

    assert [(i["name"], i["action"]) for i in plan["env_vars"]] == [
        ("LOG_LEVEL", "unchanged"),
        ("DB_PASSWORD", "deleted"),
        ("REGION", "deleted"),
    ]
    assert set(org.env) == {"LOG_LEVEL", "REGION"}  # REGION's delete answered 404: treated as gone


def test_env_without_prune_keeps_and_lists_undeclared(run, hook):
    run(env_op())
    plan = run(env_op({"LOG_LEVEL": "info"}))
    assert plan["kept"] == ["DB_PASSWORD", "REGION"] and plan["action"] == "unchanged"
    hook.delete_env_var.assert_not_called()


def test_env_secret_values_are_masked(run):
    with mock.patch("airflow_provider_nairi.operators.secrets.mask_secret") as mask:
        run(env_op())
    mask.assert_called_once_with(DB_PASSWORD)  # the secret one only


def test_env_secret_values_are_never_logged(run, logs):
    run(env_op())
    logged = logs()
    assert DB_PASSWORD not in logged and "Nairi env vars" in logged and "DB_PASSWORD" in logged


def test_values_written_in_the_dag_file_stay_out_of_the_serialized_dag():
    serialized_objects = pytest.importorskip("airflow.serialization.serialized_objects")
    serializer = getattr(serialized_objects, "OperatorSerialization", None)  # Airflow 3.3
    serializer = serializer or serialized_objects.SerializedBaseOperator  # Airflow 2
    ops = [
        vault_op({"A": "literal-secret-123", "B": FromConnection("db")}),
        env_op({"A": {"value": "literal-secret-123", "secret": True}}),
    ]
    for op in ops:
        stored = json.dumps(serializer.serialize_operator(op), default=str)
        assert "literal-secret-123" not in stored  # what the metadata DB and the UI's task details get
    assert "support" in json.dumps(serializer.serialize_operator(ops[0]), default=str)


@pytest.mark.parametrize("make", [vault_op, env_op])
def test_bad_names_fail_when_the_dag_is_parsed(make):
    with pytest.raises(
        NairiConfigurationError, match=r"^(secrets|env_vars): 'DB-PASSWORD' is not a valid name"
    ):
        make({"DB-PASSWORD": "x"})
