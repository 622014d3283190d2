"""The hook is connection -> client; ``hook.<endpoint>`` is a deprecated alias that forwards to the client."""

from __future__ import annotations

import asyncio
import json

import pytest
from airflow.exceptions import AirflowProviderDeprecationWarning
from airflow_connections import connection_env_json

from airflow_provider_nairi.client.aio import AsyncNairiClient
from airflow_provider_nairi.client.endpoints import ASYNC_ENDPOINT_NAMES, ENDPOINT_NAMES, Endpoints
from airflow_provider_nairi.client.sync import NairiClient
from airflow_provider_nairi.hooks.nairi import NairiAsyncHook, NairiHook

BASE = "https://api.nairi.test/api/public/v1"


@pytest.fixture
def connection(monkeypatch):
    env = connection_env_json("nairi", host=BASE, password="nr_live_AliasKey0001", extra=json.dumps({}))
    monkeypatch.setenv("AIRFLOW_CONN_NAIRI_DEFAULT", env)


def test_the_hook_is_not_an_api_object_it_has_one(connection):
    hook = NairiHook()
    assert isinstance(hook.client, NairiClient) and hook.get_conn() is hook.client
    assert not isinstance(hook, NairiClient.__mro__[1])  # not a NairiApi itself


def test_every_endpoint_alias_warns_and_forwards_to_the_client(connection, requests_mock):
    requests_mock.get(f"{BASE}/agents/agt_1", json={"success": True, "data": {"id": "agt_1"}})
    hook = NairiHook()
    with pytest.warns(
        AirflowProviderDeprecationWarning, match=r"NairiHook.get_agent is deprecated.*hook\.client"
    ):
        assert hook.get_agent("agt_1") == {"id": "agt_1"}
    for name in ENDPOINT_NAMES:
        with pytest.warns(AirflowProviderDeprecationWarning):
            alias = getattr(hook, name)
        assert alias.__wrapped__ is vars(Endpoints)[name].build  # the client's method, from the one table
    assert "Deprecated alias" in (NairiHook.create_agent.__doc__ or "")


def test_async_aliases_warn_and_forward(connection, monkeypatch):
    seen = []

    async def get_conversation(self, conversation_id):
        seen.append(conversation_id)
        return {"id": conversation_id}

    monkeypatch.setattr(AsyncNairiClient, "get_conversation", get_conversation)

    async def run():
        hook = NairiAsyncHook()
        try:
            with pytest.warns(AirflowProviderDeprecationWarning, match="NairiAsyncHook.get_conversation"):
                return await hook.get_conversation("conv_1")
        finally:
            await hook.close()

    assert asyncio.run(run()) == {"id": "conv_1"} and seen == ["conv_1"]
    assert {name for name in ASYNC_ENDPOINT_NAMES if callable(getattr(NairiAsyncHook, name, None))} == set(
        ASYNC_ENDPOINT_NAMES
    )
    assert not hasattr(NairiAsyncHook, "upload_video")  # the async client streams no files


def test_the_provider_itself_never_uses_an_alias():
    """Operators, sensors and triggers reach endpoints through the client only (``self.api``,
    ``await hook.get_async_client()``): no ``hook.<endpoint>`` anywhere in the package."""
    import re  # noqa: PLC0415
    from pathlib import Path  # noqa: PLC0415

    import airflow_provider_nairi  # noqa: PLC0415

    names = "|".join((*ENDPOINT_NAMES, "request", "paginate", "upload", "download"))
    pattern = re.compile(rf"\bhook\.({names})\(")
    package = Path(airflow_provider_nairi.__file__).parent
    offenders = [
        f"{path.relative_to(package)}:{number}"
        for path in package.rglob("*.py")
        if "emulator" not in path.parts
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if pattern.search(line)
    ]
    assert offenders == []
