"""client.endpoints: one table of paths serves the sync and the async client; it matches the contract."""

from __future__ import annotations

import asyncio
import inspect
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from airflow_provider_nairi.client.aio import AsyncNairiClient
from airflow_provider_nairi.client.api import AsyncNairiApi, NairiApi
from airflow_provider_nairi.client.endpoints import (
    ASYNC_ENDPOINT_NAMES,
    ENDPOINT_NAMES,
    Call,
    Endpoints,
    sync_only,
)
from airflow_provider_nairi.client.protocol import Envelope
from airflow_provider_nairi.client.sync import NairiClient
from airflow_provider_nairi.emulator import resources as emulator_resources  # noqa: F401 (registers routes)
from airflow_provider_nairi.emulator.routing import ROUTES, match
from airflow_provider_nairi.exceptions import NairiConfigurationError

#: Arguments that make each builder produce a concrete call.
ARGUMENTS = {
    "name": "n",
    "instructions": "i",
    "agent_id": "agt_1",
    "message": "m",
    "conversation_id": "conv_1",
    "content": "c",
    "artifact_id": "art_1",
    "destination": "/tmp/x",
    "source": b"",
    "vault_id": "vlt_1",
    "value": "v",
    "job_id": "job_1",
    "cron": "0 9 * * *",
    "video_id": "vid_1",
    "query": "q",
}


def built(name: str) -> Call:
    build = vars(Endpoints)[name].build
    params = inspect.signature(build).parameters
    return build(
        **{
            p: ARGUMENTS[p]
            for p, spec in params.items()
            if spec.default is spec.empty and spec.kind != spec.VAR_KEYWORD
        }
    )


def test_the_table_names_the_contract_s_endpoints():
    assert len(ENDPOINT_NAMES) == 40 and len(set(ENDPOINT_NAMES)) == 40  # every endpoint method of 0.1.0
    assert set(ENDPOINT_NAMES) - set(ASYNC_ENDPOINT_NAMES) == {
        "upload_artifact",
        "download_artifact",
        "upload_video",
    }


@pytest.mark.parametrize("name", ENDPOINT_NAMES)
def test_every_call_is_a_route_of_the_emulator(name):
    """Each (method, path) the table builds is one the contract's emulator serves (a contract test)."""
    call = built(name)
    route, _ = match(call.method, call.path)
    assert route is not None, f"{name}: {call.method} {call.path} is no route of the contract"


def test_every_route_of_the_emulator_is_in_the_table():
    served = {(route.method, route.template) for route in ROUTES}
    called = set()
    for name in ENDPOINT_NAMES:
        call = built(name)
        route, _ = match(call.method, call.path)
        called.add((route.method, route.template))
    assert served - called == set()


@pytest.mark.parametrize("name", ENDPOINT_NAMES)
def test_both_clients_have_every_endpoint_but_the_file_streams(name):
    assert inspect.getdoc(getattr(NairiClient, name)), f"{name} has no docstring"
    assert callable(getattr(NairiClient.__new__(NairiClient), name))
    client = AsyncNairiClient.__new__(AsyncNairiClient)
    if name in ASYNC_ENDPOINT_NAMES:
        assert callable(getattr(client, name))
    else:
        assert isinstance(vars(Endpoints)[name], sync_only)
        with pytest.raises(NairiConfigurationError, match="sync client only"):
            getattr(client, name)


class Recorder(NairiApi):
    """A sync API object that records the calls it is asked to send."""

    def __init__(self):
        self.sent = []

    def request(self, method, path, **kwargs):
        self.sent.append((method, path, kwargs))
        return {"conversation": {"id": "conv_1"}} if path.endswith("/run") else {"id": "x"}

    def paginate(self, path, params=None, page_size=200):
        self.sent.append(("PAGES", path, params))
        return iter([{"id": "a"}])

    def upload(self, path, source, fields, *, idempotency_key=None):
        raise AssertionError

    def download(self, path, destination, **kwargs):
        raise AssertionError

    rate_limit = None


class AsyncRecorder(AsyncNairiApi):
    def __init__(self):
        self.sent = []

    async def request_envelope(self, method, path, **kwargs):
        self.sent.append((method, path, kwargs))
        data = {"conversation": {"id": "conv_1"}} if path.endswith("/run") else {"id": "x"}
        return Envelope(data, None, "req_1")

    async def paginate(self, path, params=None, page_size=200):
        self.sent.append(("PAGES", path, params))
        return [{"id": "a"}]


def test_the_sync_and_the_async_api_send_the_same_requests():
    sync, aio = Recorder(), AsyncRecorder()
    for api in (sync, aio):
        calls = [
            api.get_conversation("conv 1"),
            api.cancel_conversation("conv_1"),
            api.send_message("conv_1", "hi", ["art_1"], idempotency_key="k"),
            api.run_scheduled_job("job_1", idempotency_key="k2"),
            api.list_messages("conv_1"),
        ]
        if api is aio:

            async def gather(calls=calls):
                return [await call for call in calls]

            results = asyncio.run(gather())
        else:
            results = [*calls[:4], list(calls[4])]
        assert results[3] == {"id": "conv_1"}  # the run's conversation, picked out of the answer
        assert results[4] == [{"id": "a"}]
    assert sync.sent == aio.sent
    assert sync.sent[0] == (
        "GET",
        "/conversations/conv%201",
        {"params": None, "json": None, "idempotency_key": None, "expect": "object"},
    )
    assert sync.sent[2][2]["json"] == {"content": "hi", "artifact_ids": ["art_1"]}


def test_an_endpoint_is_bound_once_per_api_object_and_sends_through_its_current_send():
    """A trigger reads its endpoint on every poll: the bound method is made once per client, and still
    sends through whatever ``send`` the object has at call time."""
    first, second = AsyncRecorder(), AsyncRecorder()
    assert first.get_conversation is first.get_conversation
    assert first.get_conversation is not second.get_conversation
    assert first.get_conversation.__name__ == "get_conversation" and first.get_conversation.__doc__
    first.send = lambda call: ("sent", call.path)  # e.g. a test's stand-in, after the first use
    assert first.get_conversation("conv_1") == ("sent", "/conversations/conv_1")


def test_mypy_types_both_uses_from_the_one_table(tmp_path: Path):
    """The descriptors' overloads: a sync call returns the value, an async one a coroutine of it; a wrong
    argument type, and an upload on the async client, are errors mypy reports."""
    pytest.importorskip("mypy", reason="mypy is a dev tool (make lint), not in the 2.11 test venv")
    snippet = tmp_path / "snippet.py"
    snippet.write_text(
        textwrap.dedent(
            """
            from airflow_provider_nairi.client.aio import AsyncNairiClient
            from airflow_provider_nairi.client.sync import NairiClient

            async def use(sync: NairiClient, aio: AsyncNairiClient) -> None:
                reveal_type(sync.get_conversation("c"))
                reveal_type(await aio.get_conversation("c"))
                reveal_type(sync.list_agents())
                reveal_type(await aio.list_agents())
                sync.get_conversation(3)
                aio.upload_video("clip.mp4")
            """
        )
    )
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--no-incremental", "--follow-imports=silent", str(snippet)],
        capture_output=True,
        text=True,
        check=False,
    )
    out = result.stdout
    revealed = re.findall(r'Revealed type is "(.*)"', out.replace("builtins.", ""))
    assert revealed == [
        "dict[str, Any]",  # sync get_conversation
        "dict[str, Any]",  # awaited async get_conversation
        "typing.Iterator[dict[str, Any]]",  # sync list: lazy pages
        "list[dict[str, Any]]",  # async list: every page
    ], out
    assert 'Argument 1 has incompatible type "int"; expected "str"' in out, out
    assert re.search(
        r'No overload variant of "__get__" of "sync_only" matches argument types "AsyncNairiClient"', out
    )
    assert out.count("error:") == 2, out


def test_a_bound_endpoint_has_the_signature_of_its_table_entry():
    """Bound once per API object as a bound method (one object per client a triggerer holds), an endpoint
    still shows what to pass: its signature is the table's function's, without the API object."""
    api = AsyncRecorder()
    build = vars(Endpoints)["create_conversation"].build
    assert inspect.signature(api.create_conversation) == inspect.signature(build)
    assert inspect.signature(api.get_conversation) == inspect.signature(
        vars(Endpoints)["get_conversation"].build
    )
