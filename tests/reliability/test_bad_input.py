"""The bad-input catalogue: what a user sees for each wrong connection, parameter or server answer.

One row per case: how it is provoked (through an operator's ``execute``, as a worker runs it), the exact
exception the task ends with, the exact error underneath it, and a pattern the message must contain: the fix
(what to change) or, for a server fault, what happened. The outer class says whether Airflow retries:

- ``AirflowFailException``: the task fails at once, no Airflow retry (the same input would fail again);
- ``AirflowException``: transient, Airflow's retries apply (after the client's own retries, here 0);
- ``ValueError``, ``NairiParameterError`` (a ``ValueError`` too) or a bare ``NairiConfigurationError``:
  refused by the constructor, i.e. while the DAG file is parsed (an import error in the UI; no task runs);
- anything else (a Jinja syntax error): raised by Airflow itself; Airflow retries it like any exception.

Server answers come from ``requests-mock`` (a fake host, exact bodies), cases that need real behaviour (keys,
scopes, unknown agents) from the session emulator over loopback. Every message is checked for the API key.
"""

from __future__ import annotations

import dataclasses
import json
import re
import socket
import uuid
from collections.abc import Callable
from typing import Any

import jinja2
import pytest
import requests
import requests_mock
from airflow.providers.common.compat.sdk import AirflowException, AirflowFailException
from airflow_connections import connection_env_json

from airflow_provider_nairi.emulator import EmulatorSettings
from airflow_provider_nairi.emulator.faults import BAD_GATEWAY_HTML
from airflow_provider_nairi.exceptions import (
    NairiAuthError,
    NairiChecksumError,
    NairiConfigurationError,
    NairiConflictError,
    NairiConnectionError,
    NairiDestinationExistsError,
    NairiError,
    NairiNotFoundError,
    NairiParameterError,
    NairiPayloadTooLargeError,
    NairiRateLimitError,
    NairiServerError,
    NairiValidationError,
    NairiXComSizeError,
)
from airflow_provider_nairi.hooks.nairi import NairiHook
from airflow_provider_nairi.operators.content import (
    NairiDownloadArtifactsOperator,
    NairiSearchOperator,
    NairiUploadArtifactsOperator,
)
from airflow_provider_nairi.operators.conversation import (
    NairiSendMessageOperator,
    NairiStartConversationOperator,
)
from airflow_provider_nairi.operators.scheduled_jobs import NairiScheduledJobOperator
from airflow_provider_nairi.testing import connection_env_var

CONN_ID = "nairi_catalogue"
FAKE = "https://api.nairi.test/api/public/v1"
KEY = "nr_catalogue_K3yThatMustNeverShow"
#: Fast failures: no client retries and no long waits (Airflow's outcome is what is under test).
FAST = {"max_retries": 0, "retry_max_wait": 5, "connect_timeout": 2, "read_timeout": 2}


@dataclasses.dataclass
class Env:
    """What a case may use: the connection it points where it wants, the mocked host, a worker context."""

    monkeypatch: pytest.MonkeyPatch
    mock: requests_mock.Mocker
    context: dict[str, Any]
    tmp_path: Any
    emulator: Any

    def connect(self, host: str | None = FAKE, password: str | None = KEY, **extra: Any) -> None:
        connection = connection_env_json("nairi", host=host, password=password, extra=json.dumps(extra))
        self.monkeypatch.setenv(connection_env_var(CONN_ID), connection)

    def to_emulator(self, key: str | None = None) -> None:
        self.connect(self.emulator.base_url, key or self.emulator.api_key, **FAST)

    def answer(self, method: str, path: str, **response: Any) -> None:
        self.mock.register_uri(method, FAKE + path, **response)


def envelope(data: Any, **extra: Any) -> dict[str, Any]:
    return {"success": True, "data": data, "meta": {"request_id": "req_cat"}, **extra}


def error(status: int, code: str, message: str, details: Any = None) -> dict[str, Any]:
    body = {"code": code, "message": message, "status": status, "details": details or []}
    return {"success": False, "error": body, "meta": {"request_id": "req_cat"}}


# -- actions: one task, run as a worker runs it ---------------------------------------------------------


def search(env: Env, **kwargs: Any) -> Any:
    return NairiSearchOperator(task_id="search", query="refunds", conn_id=CONN_ID, **kwargs).execute(
        env.context
    )


def ask(env: Env, render: bool = False, **kwargs: Any) -> Any:
    settings = {"message": "hello", "agent_id": "agt_1", "deferrable": False, "poll_interval": 0.01}
    operator = NairiStartConversationOperator(
        task_id="ask", conn_id=CONN_ID, timeout=10, **{**settings, **kwargs}
    )
    if render:
        operator.render_template_fields({**env.context, "params": {}})
    return operator.execute(env.context)


def download(env: Env, **kwargs: Any) -> Any:
    settings = {"destination": str(env.tmp_path / "out"), "artifact_ids": ["art_1"]}
    return NairiDownloadArtifactsOperator(
        task_id="download", conn_id=CONN_ID, **{**settings, **kwargs}
    ).execute(env.context)


def upload(env: Env, sources: Any) -> Any:
    return NairiUploadArtifactsOperator(task_id="upload", sources=sources, conn_id=CONN_ID).execute(
        env.context
    )


def on_fake_host(*answers: tuple[str, str, dict[str, Any]], action=search, **extra: Any):
    """A case against the fake host: register ``answers`` (method, path, response), then run ``action``."""

    def run(env: Env) -> Any:
        env.connect(**{**FAST, **extra})
        for method, path, response in answers:
            env.answer(method, path, **response)
        return action(env)

    return run


def with_connection(action=search, **connection: Any):
    """A case whose connection is wrong: ``connection`` gives host, password and extras."""

    def run(env: Env) -> Any:
        env.connect(**connection)
        return action(env)

    return run


def on_emulator(action: Callable[[Env], Any], key: Callable[[Env], str] | None = None):
    def run(env: Env) -> Any:
        env.to_emulator(key(env) if key else None)
        return action(env)

    return run


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def on_emulator_with(faults=None, connection=None, **settings: Any):
    """A case against the session emulator with a fault sequence and live settings (undone by ``env``)."""

    def decorate(action: Callable[[Env], Any]):
        def run(env: Env) -> Any:
            env.connect(env.emulator.base_url, env.emulator.api_key, **{**FAST, **(connection or {})})
            if settings:
                env.emulator.admin.update_settings(**settings)
            if faults:
                env.emulator.admin.set_faults(sequence=faults)
            return action(env)

        return run

    return decorate


def deleted_artifact(env: Env) -> Any:
    artifact = NairiHook(CONN_ID).client.upload_artifact(write(env, "gone.txt", b"soon gone"))
    NairiHook(CONN_ID).client.delete_artifact(artifact["id"])
    return download(env, artifact_ids=[artifact["id"]])


def nowhere(env: Env) -> Any:
    return with_connection(host=f"http://127.0.0.1:{closed_port()}", **FAST)(env)


def write(env: Env, name: str, data: bytes = b"x") -> str:
    path = env.tmp_path / name
    path.write_bytes(data)
    return str(path)


def new_agent(name: str = "catalogue") -> str:
    return str(NairiHook(CONN_ID).client.create_agent(name, "Answer.")["id"])


def twin_agents(env: Env) -> Any:
    name = f"twin-{uuid.uuid4().hex[:8]}"
    new_agent(name)
    new_agent(name)
    return ask(env, agent_id=None, agent_name=name)


def existing_target(env: Env) -> Any:
    (env.tmp_path / "out").mkdir()
    (env.tmp_path / "out" / "report.txt").write_text("something else")
    meta = {"id": "art_1", "name": "report.txt", "sha256": "0" * 64, "size_bytes": 3}
    env.connect(**FAST)
    env.answer("GET", "/artifacts/art_1", json=envelope(meta))
    return download(env)


PAGE = {"limit": 200, "offset": 0, "total": None, "has_more": True}
ARTIFACT = {"id": "art_1", "name": "report.txt", "sha256": "0" * 64, "size_bytes": 3}
RESULTS = [{"video_id": "vid_1", "start_s": 0, "end_s": 1, "text": "x" * 1000, "score": 1.0}] * 60
HTML = {"Content-Type": "text/html"}


@dataclasses.dataclass
class Case:
    id: str
    run: Callable[[Env], Any]
    outcome: type[BaseException]
    cause: type[BaseException] | None
    fix: str


Fail, Retry = AirflowFailException, AirflowException

CATALOGUE = [
    # -- the connection --
    Case("missing key", with_connection(password=None), Fail, NairiConfigurationError, r"password field"),
    Case(
        "agent key",
        with_connection(password="ccagent_abc123"),
        Fail,
        NairiConfigurationError,
        r"public API key",
    ),
    Case(
        "key with spaces", with_connection(password=f" {KEY} "), Fail, NairiConfigurationError, r"remove it"
    ),
    Case(
        "host not http(s)",
        with_connection(host="ftp://api.nairi.test"),
        Fail,
        NairiConfigurationError,
        r"e\.g\. https://",
    ),
    Case(
        "http to a remote host",
        with_connection(host="http://api.nairi.test"),
        Fail,
        NairiConfigurationError,
        r"Use https, or set the extra allow_insecure_http",
    ),
    Case(
        "unknown extra",
        with_connection(timeout=5),
        Fail,
        NairiConfigurationError,
        r"known extras: key_header",
    ),
    Case(
        "extra of the wrong type",
        with_connection(max_retries="many"),
        Fail,
        NairiConfigurationError,
        r"max_retries.*an integer",
    ),
    Case(
        "negative timeout",
        with_connection(read_timeout=-1),
        Fail,
        NairiConfigurationError,
        r"read_timeout.*expected a number > 0",
    ),
    Case(
        "unknown auth header",
        with_connection(auth_header="basic"),
        Fail,
        NairiConfigurationError,
        r"'x-api-key', 'bearer'",
    ),
    Case(
        "verify not a bool or path",
        with_connection(verify=3),
        Fail,
        NairiConfigurationError,
        r"true, false or the path of a CA bundle",
    ),
    Case(
        "proxies not URLs",
        with_connection(proxies=5),
        Fail,
        NairiConfigurationError,
        r"JSON object of URLs by scheme",
    ),
    Case(
        "nothing listens at the host",
        nowhere,
        Retry,
        NairiConnectionError,
        r"connection_error: ConnectionError.*(refused|Max retries)",
    ),
    Case(
        "wrong key",
        on_emulator(search, key=lambda env: "nr_wrong_key"),
        Fail,
        NairiAuthError,
        r"401 unauthorized: The API key is invalid or revoked",
    ),
    Case(
        "read-only key writes",
        on_emulator(ask, key=lambda env: env.emulator.admin.create_key(scopes=("read",))),
        Fail,
        NairiAuthError,
        r"403 .*write",
    ),
    # -- parameters --
    Case(
        "empty message",
        on_emulator(lambda env: ask(env, message="", agent_id=new_agent())),
        Fail,
        NairiValidationError,
        r"message",
    ),
    Case(
        "agent_id and agent_name",
        with_connection(action=lambda env: ask(env, agent_name="helper")),
        Fail,
        NairiConfigurationError,
        r"Give exactly one of agent_id or agent_name \(got agent_id, agent_name\)",
    ),
    Case(
        "neither agent_id nor agent_name",
        with_connection(action=lambda env: ask(env, agent_id=None)),
        Fail,
        NairiConfigurationError,
        r"Give exactly one of agent_id or agent_name \(got neither\)",
    ),
    Case(
        "blank agent_id",
        with_connection(action=lambda env: ask(env, agent_id="  ")),
        Fail,
        NairiConfigurationError,
        r"agent_id: give a non-empty name",
    ),
    Case(
        "unknown agent id",
        on_emulator(lambda env: ask(env, agent_id="agt_nobody")),
        Fail,
        NairiNotFoundError,
        r"404 not_found",
    ),
    Case(
        "unknown agent name",
        on_emulator(lambda env: ask(env, agent_id=None, agent_name="nobody-here")),
        Fail,
        NairiNotFoundError,
        r"no agent is named 'nobody-here'",
    ),
    Case(
        "two agents share the name",
        on_emulator(twin_agents),
        Fail,
        NairiConflictError,
        r"Delete or rename all but one",
    ),
    Case(
        "template renders empty",
        with_connection(action=lambda env: ask(env, render=True, agent_id="{{ params.get('agent') or '' }}")),
        Fail,
        NairiConfigurationError,
        r"agent_id: give a non-empty name",
    ),
    Case(
        "malformed template",
        with_connection(action=lambda env: ask(env, render=True, message="{{ ti.xcom_pull( }}")),
        jinja2.TemplateSyntaxError,
        None,
        r"unexpected",
    ),
    Case(
        "poll_interval 0",
        lambda env: NairiStartConversationOperator(
            task_id="ask", message="hi", agent_id="agt_1", poll_interval=0
        ),
        NairiParameterError,  # a ValueError too
        None,
        r"poll_interval must be positive",
    ),
    Case(
        "created_by unknown",
        lambda env: NairiDownloadArtifactsOperator(task_id="download", destination="out", created_by="robot"),
        ValueError,
        None,
        r"'agent', 'user' or None",
    ),
    Case(
        "blank conversation_id",
        with_connection(
            action=lambda env: NairiSendMessageOperator(
                task_id="send", conversation_id="", message="hi", conn_id=CONN_ID
            ).execute(env.context)
        ),
        Fail,
        NairiConfigurationError,
        r"conversation_id: give a non-empty name",
    ),
    Case(
        "bad cron",
        with_connection(
            action=lambda env: NairiScheduledJobOperator(
                task_id="job",
                name="nightly",
                message="hi",
                cron="61 * * * *",
                agent_id="agt_1",
                conn_id=CONN_ID,
            )
        ),
        NairiConfigurationError,
        None,
        r"Give five fields, 'minute hour",
    ),
    Case(
        "download: both ids and conversation",
        with_connection(action=lambda env: download(env, conversation_id="conv_1")),
        Fail,
        NairiConfigurationError,
        r"exactly one of conversation_id or artifact_ids \(got both\)",
    ),
    Case(
        "download: destination is a file",
        with_connection(action=lambda env: download(env, destination=write(env, "file"))),
        Fail,
        NairiDestinationExistsError,
        r"give a folder",
    ),
    Case(
        "download: target exists, differs",
        existing_target,
        Fail,
        NairiDestinationExistsError,
        r"Set overwrite=True",
    ),
    Case(
        "upload: vanished file",
        with_connection(action=lambda env: upload(env, str(env.tmp_path / "gone.csv"))),
        Fail,
        NairiConfigurationError,
        r"does not exist .*Check the path",
    ),
    Case(
        "upload: empty glob",
        with_connection(action=lambda env: upload(env, str(env.tmp_path / "*.csv"))),
        Fail,
        NairiConfigurationError,
        r"matches no file",
    ),
    Case(
        "upload: a directory",
        with_connection(action=lambda env: upload(env, str(env.tmp_path))),
        Fail,
        NairiConfigurationError,
        r"is a directory\. Name the files, or give a glob",
    ),
    Case(
        "upload: nothing",
        with_connection(action=lambda env: upload(env, [])),
        Fail,
        NairiConfigurationError,
        r"give at least one path",
    ),
    # -- server answers --
    Case(
        "502 HTML from a proxy",
        on_fake_host(("POST", "/search", {"status_code": 502, "content": BAD_GATEWAY_HTML, "headers": HTML})),
        Retry,
        NairiServerError,
        r"502: non-JSON error answer \(text/html",
    ),
    Case(
        "500",
        on_fake_host(("POST", "/search", {"status_code": 500, "json": error(500, "internal_error", "boom")})),
        Retry,
        NairiServerError,
        r"500 internal_error: boom",
    ),
    Case(
        "503",
        on_fake_host(
            ("POST", "/search", {"status_code": 503, "json": error(503, "service_unavailable", "later")})
        ),
        Retry,
        NairiServerError,
        r"503 service_unavailable",
    ),
    Case(
        "429 Retry-After longer than allowed",
        on_fake_host(
            (
                "POST",
                "/search",
                {
                    "status_code": 429,
                    "json": error(429, "rate_limited", "slow down"),
                    "headers": {"Retry-After": "3600"},
                },
            )
        ),
        Retry,
        NairiRateLimitError,
        r"Retry-After: 3600 s",
    ),
    Case(
        "truncated JSON",
        on_fake_host(("POST", "/search", {"status_code": 200, "text": '{"success": true, "data": [{"vid'})),
        Retry,
        NairiServerError,
        r"not a Nairi envelope",
    ),
    Case(
        "envelope without data",
        on_fake_host(("POST", "/search", {"status_code": 200, "json": {"success": True, "meta": {}}})),
        Retry,
        NairiServerError,
        r"not a Nairi envelope",
    ),
    Case(
        "200 HTML (captive portal)",
        on_fake_host(
            ("POST", "/search", {"status_code": 200, "text": "<html>login</html>", "headers": HTML})
        ),
        Retry,
        NairiServerError,
        r"not a Nairi envelope \(text/html",
    ),
    Case(
        "401 HTML from a proxy",
        on_fake_host(("POST", "/search", {"status_code": 401, "text": "<html>401</html>", "headers": HTML})),
        Fail,
        NairiAuthError,
        r"401: non-JSON error answer",
    ),
    Case(
        "422 names the field",
        on_fake_host(
            (
                "POST",
                "/search",
                {
                    "status_code": 422,
                    "json": error(
                        422, "validation_error", "bad", [{"field": "limit", "message": "must be <= 50"}]
                    ),
                },
            )
        ),
        Fail,
        NairiValidationError,
        r"\(limit: must be <= 50\)",
    ),
    Case(
        "409 idempotency key reused",
        on_fake_host(
            (
                "POST",
                "/search",
                {"status_code": 409, "json": error(409, "idempotency_key_reused", "another body")},
            )
        ),
        Fail,
        NairiConflictError,
        r"409 idempotency_key_reused",
    ),
    Case(
        "redirect to another host",
        on_fake_host(
            ("POST", "/search", {"status_code": 302, "headers": {"Location": "https://evil.test/steal"}})
        ),
        Fail,
        NairiError,
        r"evil\.test.*Point the connection's host at the API itself",
    ),
    Case(
        "redirect on the same host",
        on_fake_host(("POST", "/search", {"status_code": 301, "headers": {"Location": "/v2/search"}})),
        Fail,
        NairiError,
        r"base URL is probably wrong",
    ),
    Case(
        "connection reset",
        on_fake_host(("POST", "/search", {"exc": requests.ConnectionError("Connection reset by peer")})),
        Retry,
        NairiConnectionError,
        r"reset by peer",
    ),
    Case(
        "read timeout",
        on_fake_host(("POST", "/search", {"exc": requests.ReadTimeout("read timed out")})),
        Retry,
        NairiConnectionError,
        r"ReadTimeout",
    ),
    Case(
        "oversized answer for XCom",
        on_fake_host(("POST", "/search", {"json": envelope(RESULTS)})),
        Fail,
        NairiXComSizeError,
        r"Set output_path=",
    ),
    Case(
        "conversation status the contract does not name",
        on_fake_host(
            ("POST", "/conversations", {"json": envelope({"id": "conv_1", "status": "paused", "turns": 1})}),
            action=ask,
        ),
        Retry,
        NairiServerError,
        r"unknown conversation status 'paused' for conversation conv_1; expected one of queued, running",
    ),
    Case(
        "pagination: more promised, empty page",
        on_fake_host(
            ("GET", "/agents", {"json": envelope([], pagination=PAGE)}),
            action=lambda env: ask(env, agent_id=None, agent_name="x"),
        ),
        Retry,
        NairiServerError,
        r"empty page",
    ),
    Case(
        "pagination that never ends",
        on_fake_host(
            ("GET", "/agents", {"json": envelope([{"id": "agt_1", "name": "a"}], pagination=PAGE)}),
            action=lambda env: ask(env, agent_id=None, agent_name="x"),
        ),
        Retry,
        NairiServerError,
        r"repeat",
    ),
    Case(
        "404 artifact",
        on_fake_host(
            (
                "GET",
                "/artifacts/art_1",
                {"status_code": 404, "json": error(404, "not_found", "No artifact art_1.")},
            ),
            action=download,
        ),
        Fail,
        NairiNotFoundError,
        r"404 not_found: No artifact art_1",
    ),
    Case(
        "download bytes do not match sha256",
        on_fake_host(
            ("GET", "/artifacts/art_1", {"json": envelope(ARTIFACT)}),
            ("GET", "/artifacts/art_1/content", {"content": b"abc"}),
            action=download,
        ),
        Retry,
        NairiChecksumError,
        r"sha256",
    ),
    Case(
        "redirect on the wire (emulator)",
        on_emulator_with(faults=["redirect"])(search),
        Fail,
        NairiError,
        r"redirecting to another host, localhost:.*Point the connection's host at the API itself",
    ),
    Case(
        "answer slower than read_timeout (emulator)",
        on_emulator_with(faults=["slow"], connection={"read_timeout": 0.2}, slow_seconds=1.0)(search),
        Retry,
        NairiConnectionError,
        r"ReadTimeout",
    ),
    Case(
        "upload over the emulator's limit",
        on_emulator_with(upload_limit=1000)(lambda env: upload(env, write(env, "big.bin", b"x" * 200_000))),
        Fail,
        NairiPayloadTooLargeError,
        r"413 payload_too_large: Uploads are limited to 1000 bytes",
    ),
    Case(
        "artifact deleted before its download (emulator)",
        on_emulator(deleted_artifact),
        Fail,
        NairiNotFoundError,
        r"404 not_found",
    ),
    Case(
        "upload over the size limit",
        on_fake_host(
            (
                "POST",
                "/artifacts",
                {
                    "status_code": 413,
                    "json": error(413, "payload_too_large", "Files may be up to 5 GiB; split the file."),
                },
            ),
            action=lambda env: upload(env, write(env, "big.bin")),
        ),
        Fail,
        NairiPayloadTooLargeError,
        r"413 payload_too_large: Files may be up to 5 GiB; split",
    ),
]


@pytest.fixture
def env(monkeypatch, context, tmp_path, emulator):
    with requests_mock.Mocker(real_http=True) as mock:
        yield Env(monkeypatch, mock, context, tmp_path, emulator)
    emulator.admin.clear_faults()
    emulator.admin.update_settings(
        upload_limit=EmulatorSettings.upload_limit, slow_seconds=EmulatorSettings.slow_seconds
    )


def test_the_catalogue_has_at_least_forty_cases():
    assert len(CATALOGUE) >= 40 and len({case.id for case in CATALOGUE}) == len(CATALOGUE)


@pytest.mark.parametrize("case", CATALOGUE, ids=[case.id for case in CATALOGUE])
def test_bad_input(case, env):
    with pytest.raises(BaseException) as caught:  # the exact class is asserted below
        case.run(env)
    raised = caught.value
    assert type(raised) is case.outcome, repr(raised)
    if case.cause is not None:
        assert type(raised.__cause__) is case.cause, repr(raised.__cause__)
    assert re.search(case.fix, str(raised)), str(raised)
    for key in (KEY, env.emulator.api_key):
        assert key not in str(raised) and key not in repr(raised.__cause__)
