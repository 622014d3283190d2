"""NairiHook / NairiAsyncHook: from an Airflow connection to a client, no network until the first call."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import subprocess
import sys
from unittest import mock

import airflow
import pytest
from airflow.exceptions import AirflowProviderDeprecationWarning
from airflow_connections import connection_env_json

from airflow_provider_nairi.client.config import EXTRA_FIELDS
from airflow_provider_nairi.exceptions import NairiConfigurationError, NairiNotFoundError
from airflow_provider_nairi.hooks import nairi
from airflow_provider_nairi.hooks.nairi import NairiAsyncHook, NairiHook

KEY = "nr_live_HookSecretKey0001"
BASE = "https://api.nairi.test/api/public/v1"


def set_connection(monkeypatch, conn_id="nairi_default", host=BASE, password=KEY, **extra):
    connection = connection_env_json("nairi", host=host, password=password, extra=json.dumps(extra))
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", connection)


def me_answer(scopes):
    data = {"org": {"id": "org_1", "name": "Acme"}, "key": {"name": "ci", "hint": "nr_…1", "scopes": scopes}}
    return {"success": True, "data": data, "meta": {"request_id": "req_me"}}


def test_init_reads_no_connection_and_sends_nothing(requests_mock):
    hook = NairiHook(nairi_conn_id="does_not_exist", read_timeout=5)
    assert hook.nairi_conn_id == "does_not_exist"
    assert hook.rate_limit is None
    assert not requests_mock.called


def test_connection_becomes_a_validated_config(monkeypatch):
    set_connection(monkeypatch, "nairi_x", host="api.niravi.io", read_timeout="7", auth_header="bearer")
    hook = NairiHook(conn_id="nairi_x", max_retries=1)
    config = hook.config
    assert config.base_url == "https://api.niravi.io/api/public/v1"
    assert (config.read_timeout, config.auth_header, config.max_retries) == (7.0, "bearer", 1)
    assert f"apache-airflow/{airflow.__version__} python/" in config.user_agent
    assert KEY not in repr(hook.config)


def test_a_wrong_extra_or_override_names_the_field(monkeypatch):
    set_connection(monkeypatch, retries=3)
    with pytest.raises(NairiConfigurationError, match=r"'retries'.*known extras: key_header"):
        NairiHook().get_conn()
    set_connection(monkeypatch)
    with pytest.raises(NairiConfigurationError, match="'read_timeout' is 'x'"):
        NairiHook(read_timeout="x").get_conn()


def test_an_agent_key_is_refused_with_directions(monkeypatch, requests_mock):
    set_connection(monkeypatch, password="ccagent_abc123456")
    ok, message = NairiHook().test_connection()
    assert not ok
    assert "Settings → API Key" in message
    assert "ccagent_abc123456" not in message
    assert not requests_mock.called


def test_the_key_is_handed_to_the_secrets_masker(monkeypatch):
    set_connection(monkeypatch)
    with mock.patch("airflow_provider_nairi.hooks.nairi.mask_secret") as mask:
        NairiHook().get_conn()
    mask.assert_called_once_with(KEY)


def test_test_connection_names_org_key_and_scopes(monkeypatch, requests_mock):
    set_connection(monkeypatch)
    requests_mock.get(f"{BASE}/me", json=me_answer(["read", "write"]))
    assert NairiHook().test_connection() == (
        True,
        "Connected to org 'Acme' (org_1) with key 'ci' (scopes: read, write).",
    )


def test_test_connection_warns_about_a_read_only_key(monkeypatch, requests_mock):
    set_connection(monkeypatch)
    requests_mock.get(f"{BASE}/me", json=me_answer(["read"]))
    ok, message = NairiHook().test_connection()
    assert ok
    assert "cannot write" in message


def test_test_connection_failure_is_a_clear_reason(monkeypatch, requests_mock, caplog):
    set_connection(monkeypatch, max_retries=0)
    body = {"success": False, "error": {"code": "unauthorized", "message": "Invalid API key", "status": 401}}
    requests_mock.get(f"{BASE}/me", status_code=401, json=body, headers={"X-Request-Id": "req_bad"})
    with caplog.at_level(logging.DEBUG):
        ok, message = NairiHook().test_connection()
    assert not ok
    assert message == "GET /me: 401 unauthorized: Invalid API key (request id req_bad)"
    assert KEY not in caplog.text


def test_the_request_id_survives_the_cli_console(monkeypatch, requests_mock):
    """``airflow connections test`` prints the failure through rich, which deletes ``[...]`` as markup."""
    rich_console = pytest.importorskip("rich.console")
    set_connection(monkeypatch, max_retries=0)
    body = {"success": False, "error": {"code": "unauthorized", "message": "Invalid API key", "status": 401}}
    requests_mock.get(f"{BASE}/me", status_code=401, json=body, headers={"X-Request-Id": "req_bad"})
    _, message = NairiHook().test_connection()
    console = rich_console.Console(record=True, width=200)
    console.print(f"[bold][red]\nConnection failed![/bold]\n{message}\n")  # as Airflow 3.3's CLI does
    assert "(request id req_bad)" in console.export_text()


def test_hook_methods_go_through_one_client(monkeypatch, requests_mock):
    set_connection(monkeypatch, dashboard_url="https://nairi.example.com/")
    requests_mock.get(f"{BASE}/agents/agt_1", json={"success": True, "data": {"id": "agt_1"}})
    hook = NairiHook()
    with pytest.warns(AirflowProviderDeprecationWarning, match="NairiHook.get_agent is deprecated"):
        assert hook.get_agent("agt_1") == {"id": "agt_1"}  # the deprecated aliases forward to the client
    with pytest.warns(AirflowProviderDeprecationWarning, match="NairiHook.request is deprecated"):
        assert hook.request("GET", "/agents/agt_1") == {"id": "agt_1"}
    assert hook.client.get_agent("agt_1") == hook.client.request("GET", "/agents/agt_1") == {"id": "agt_1"}
    assert hook.get_conn() is hook.client
    assert hook.dashboard_url("conversations", "conv_1") == "https://nairi.example.com/conversations/conv_1"
    hook.close()


def test_ui_field_behaviour():
    behaviour = NairiHook.get_ui_field_behaviour()
    assert behaviour["relabeling"] == {"host": "Base URL", "password": "API key"}
    assert "login" in behaviour["hidden_fields"]


def test_connection_form_widgets_cover_every_extra():
    pytest.importorskip("wtforms")  # only on Airflow 2.11's web server
    assert set(NairiHook.get_connection_form_widgets()) == {spec.name for spec in EXTRA_FIELDS}


@pytest.fixture
def emulator_connection(request):
    """The ``nairi_emulator`` fixture (connection ``nairi_default``), when the emulator extra is installed."""
    pytest.importorskip("airflow_provider_nairi.emulator")
    return request.getfixturevalue("nairi_emulator")


def test_async_hook_against_the_emulator(emulator_connection):
    async def run():
        hook = NairiAsyncHook()
        try:
            client = await hook.get_async_client()
            with pytest.raises(NairiNotFoundError):
                await client.get_conversation("conv_missing")
            return await client.request("GET", "/me")
        finally:
            await hook.close()

    me = asyncio.run(run())
    assert me["key"]["scopes"] == ["read", "write"]


def test_sync_hook_against_the_emulator(emulator_connection):
    ok, message = NairiHook().test_connection()
    assert ok, message
    assert "Emulated org" in message


def test_a_missing_connection_names_the_type_and_the_emulator(monkeypatch):
    monkeypatch.delenv("AIRFLOW_CONN_NAIRI_DEFAULT", raising=False)
    with pytest.raises(NairiConfigurationError) as info:
        NairiHook().get_conn()
    text = str(info.value)
    assert info.value.code == "connection_not_found"
    assert "Airflow connection 'nairi_default' is not defined" in text
    assert "type 'nairi'" in text and "AIRFLOW_CONN_NAIRI_DEFAULT=" in text
    assert "nairi-emulator" in text and "nairi_emulator fixture" in text


async def test_a_missing_connection_in_the_triggerer_says_the_same(monkeypatch):
    monkeypatch.delenv("AIRFLOW_CONN_NAIRI_X", raising=False)
    with pytest.raises(NairiConfigurationError, match=r"'nairi_x' is not defined.*AIRFLOW_CONN_NAIRI_X="):
        await NairiAsyncHook("nairi_x").get_async_client()


def test_the_first_trigger_imports_aiohttp_off_the_event_loop(tmp_path):
    """A triggerer's event loop runs every trigger: the ~0.25 s import of aiohttp must not stall it."""
    probe = """
import asyncio, importlib.abc, json, os, sys, threading
seen = {}
class Spy(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "aiohttp":
            seen["thread"] = threading.current_thread().name
        return None
sys.meta_path.insert(0, Spy())
from airflow_provider_nairi.hooks.nairi import NairiAsyncHook
assert "aiohttp" not in sys.modules
async def main():
    hook = NairiAsyncHook()
    await hook.get_async_client()
    await hook.close()
asyncio.run(main())
print(json.dumps({"thread": seen.get("thread"), "main": threading.main_thread().name}))
"""
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(tmp_path),
        "AIRFLOW_CONN_NAIRI_DEFAULT": json.dumps({"conn_type": "nairi", "host": BASE, "password": KEY}),
    }
    out = subprocess.run(
        [sys.executable, "-c", probe], env=env, capture_output=True, text=True, timeout=120, check=True
    ).stdout
    seen = json.loads(out.strip().splitlines()[-1])
    assert seen["thread"] is not None and seen["thread"] != seen["main"]


async def test_the_connection_is_read_once_per_hook_and_its_time_logged_at_debug(monkeypatch):
    """The triggerer's first look-up can take seconds (Airflow 3 builds its in-process API then): a DEBUG
    line says how long, and later calls of the same trigger never read the connection again."""
    set_connection(monkeypatch)
    hook = NairiAsyncHook()
    with (
        mock.patch.object(NairiAsyncHook, "log", new=mock.MagicMock()) as log,
        mock.patch.object(NairiAsyncHook, "read_config", wraps=hook.read_config) as read_config,
    ):
        first = await hook.get_async_client()
        assert await hook.get_async_client() is first
    await hook.close()
    assert read_config.call_count == 1
    (message, conn_id, read_seconds, import_seconds), _ = log.debug.call_args
    assert message % (conn_id, read_seconds, import_seconds) == (
        f"Read connection nairi_default in {read_seconds:.2f} s "
        f"(async client imported in {import_seconds:.2f} s)"
    )
    assert 0 <= read_seconds < 10 and 0 <= import_seconds < 10
    assert log.debug.call_count == 1 and KEY not in str(log.mock_calls)


async def test_triggers_starting_together_read_their_connection_once(monkeypatch):
    """A triggerer starting a thousand waits of one connection reads it once (each read costs a secrets
    look-up, a thread and round trips to the supervisor in Airflow 3), not once per trigger; another
    connection or other overrides are read on their own; a rotated key reaches triggers that start after
    CONNECTION_SHARED_FOR seconds; a failed read is not kept."""
    set_connection(monkeypatch)
    set_connection(monkeypatch, conn_id="nairi_other", password="nr_live_OtherSecretKey0002")
    clock = [1000.0]
    monkeypatch.setattr(nairi.time, "monotonic", lambda: clock[0])
    hooks = [NairiAsyncHook() for _ in range(50)] + [
        NairiAsyncHook("nairi_other"),
        NairiAsyncHook(read_timeout=7),
    ]
    with mock.patch.object(
        NairiAsyncHook, "read_config", autospec=True, side_effect=NairiAsyncHook.read_config
    ) as read:
        clients = await asyncio.gather(*(hook.get_async_client() for hook in hooks))
        assert read.call_count == 3  # nairi_default, nairi_other, nairi_default with read_timeout=7
        assert {client.config.api_key for client in clients[:50]} == {KEY}
        assert clients[50].config.api_key == "nr_live_OtherSecretKey0002"
        assert clients[51].config.read_timeout == 7 and clients[0].config.read_timeout != 7
        assert len({id(client) for client in clients}) == 52  # each trigger keeps its own client

        set_connection(monkeypatch, password="nr_live_RotatedSecretKey03")
        clock[0] += nairi.CONNECTION_SHARED_FOR - 1
        assert (await NairiAsyncHook().get_async_client()).config.api_key == KEY
        clock[0] += 2
        assert (await NairiAsyncHook().get_async_client()).config.api_key == "nr_live_RotatedSecretKey03"
        assert read.call_count == 4

        monkeypatch.delenv("AIRFLOW_CONN_NAIRI_GONE", raising=False)
        for _ in range(2):
            with pytest.raises(NairiConfigurationError, match="'nairi_gone' is not defined"):
                await NairiAsyncHook("nairi_gone").get_async_client()
        assert read.call_count == 6  # the failure was not kept
    for hook in hooks:
        await hook.close()


def test_async_hooks_share_one_logger_named_after_their_class():
    """One async hook per waiting trigger: they share their class's logger instead of building one each."""
    first, second = NairiAsyncHook(), NairiAsyncHook("other_connection")
    assert first.log is second.log
    assert first.log.name.endswith("airflow_provider_nairi.hooks.nairi.NairiAsyncHook")
