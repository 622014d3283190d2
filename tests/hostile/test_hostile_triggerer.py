"""The triggerer against hostile servers: a hung host cannot starve the others, a pool wait counts against the
deadline, and a trigger never dies on an answer it cannot read (nor does a wait on a worker: one wait)."""

from __future__ import annotations

import asyncio
import json
import time

import pytest
from airflow.models.connection import Connection
from airflow.providers.common.compat.sdk import AirflowException, AirflowFailException
from hostile_servers import HostileServer, answer, by_path, envelope, hang, raw_answer
from wire_clients import KEY, async_client

from airflow_provider_nairi.client import aio
from airflow_provider_nairi.exceptions import NairiConnectionError
from airflow_provider_nairi.operators.conversation import NairiStartConversationOperator
from airflow_provider_nairi.triggers.conversation import NairiConversationTrigger
from airflow_provider_nairi.triggers.video import NairiVideoTrigger

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def connect(monkeypatch):
    """``connect(conn_id, server, **extras)``: an Airflow connection (environment variable) to ``server``."""

    def connect(conn_id, server, **extras):
        connection = Connection(
            conn_id=conn_id, conn_type="nairi", host=server.base_url, password=KEY, extra=json.dumps(extras)
        )
        monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", connection.as_json())

    return connect


def conversation_trigger(conn_id, resource_id, **kwargs):
    return NairiConversationTrigger(
        **{
            "conn_id": conn_id,
            "resource_id": resource_id,
            "deadline": time.time() + 30,
            "poll_interval": 0.2,
            "max_transient_errors": 0,
            **kwargs,
        }
    )


async def first_event(trigger):
    async for event in trigger.run():
        return event.payload
    raise AssertionError("no event")


def running_then_completed(polls_before_done):
    def script(server, request, conn):
        done = len(server.requests) > polls_before_done
        data = {"id": "c_ok", "status": "completed" if done else "running", "turns": 1}
        conn.sendall(raw_answer(200, envelope(data, f"req_{len(server.requests)}")))
        return True

    return script


@pytest.mark.parametrize(
    "per_host_limit", [aio.CONNECTOR_LIMIT_PER_HOST, 10], ids=["default-pool", "pool-of-10"]
)
async def test_fifty_triggers_stuck_on_a_hung_host_leave_a_healthy_one_on_time(
    connect, monkeypatch, per_host_limit
):
    """50 conversation triggers wait on a host that never answers (with the pool of one host smaller than 50,
    most of them wait for a connection); a trigger on another port still polls every 0.2 s."""
    monkeypatch.setattr(aio, "CONNECTOR_LIMIT_PER_HOST", per_host_limit)
    with HostileServer(hang) as hung, HostileServer(running_then_completed(5)) as healthy:
        connect("nairi_hung", hung, request_timeout=20)
        connect("nairi_healthy", healthy)
        stuck = [
            asyncio.create_task(first_event(conversation_trigger("nairi_hung", f"c{i}"))) for i in range(50)
        ]
        await asyncio.sleep(0.5)  # every stuck trigger has sent its poll (or waits for a connection)
        started = time.monotonic()
        event = await first_event(conversation_trigger("nairi_healthy", "c_ok"))
        took = time.monotonic() - started
        polls = len(healthy.requests)
        assert not any(task.done() for task in stuck)
        for task in stuck:
            task.cancel()
        await asyncio.gather(*stuck, return_exceptions=True)
        waiting = len(hung.requests)
    assert event["status"] == "success" and polls == 6
    assert took < 6 * 0.2 + 1.0, f"the healthy trigger took {took:.2f} s for 6 polls 0.2 s apart"
    assert waiting == min(50, per_host_limit)  # the rest waited for a pooled connection


async def test_the_wait_for_a_pooled_connection_counts_against_the_deadline(monkeypatch):
    monkeypatch.setattr(aio, "CONNECTOR_LIMIT_PER_HOST", 2)
    with HostileServer(hang) as hung:
        # two calls hold the host's two connections past the third call's deadline (with equal deadlines,
        # the first two could be stopped just before the third and hand it a connection within its own)
        holders = [async_client(hung, request_timeout=3, max_retries=0) for _ in range(2)]
        held = [asyncio.ensure_future(c.get_video("v1")) for c in holders]
        for _ in range(200):
            if len(hung.requests) == 2:
                break
            await asyncio.sleep(0.01)
        waiting = async_client(hung, request_timeout=1, max_retries=0)
        started = time.monotonic()
        third = await asyncio.gather(waiting.get_video("v1"), return_exceptions=True)
        took = time.monotonic() - started
        results = [*third, *await asyncio.gather(*held, return_exceptions=True)]
        for client in [*holders, waiting]:
            await client.close()
        sent = len(hung.requests)
    assert sent == 2  # the third call never had a connection
    assert all(isinstance(r, NairiConnectionError) and r.code == "request_timeout" for r in results)
    assert took < 1.8, f"the call took {took:.2f} s; the pool wait must count against request_timeout (1 s)"


UNREADABLE = {
    "turns-not-a-number": envelope({"id": "c1", "status": "running", "turns": "many"}, "req_turns"),
    "status-a-number": envelope({"id": "c1", "status": 5, "turns": 2}, "req_status"),
    "data-a-string": envelope("c1", "req_string"),
    "data-null": envelope(None, "req_null"),
    "empty-body": b"",
}


@pytest.mark.parametrize("case", UNREADABLE)
async def test_a_trigger_ends_with_an_error_event_naming_the_call_and_request_id(connect, case):
    body = UNREADABLE[case]
    with HostileServer(answer(200, body, {"X-Request-Id": "req_header"})) as server:
        connect("nairi_odd", server, max_retries=0)
        event = await first_event(conversation_trigger("nairi_odd", "c1", turn=2, max_transient_errors=1))
        polls = len(server.requests)
    assert event["status"] == "error" and polls == 2  # counted as transient once, then given up
    assert "GET /conversations/c1" in event["message"]
    request_id = json.loads(body)["meta"]["request_id"] if body else "req_header"
    assert f"(request id {request_id})" in event["message"]
    assert event["error"]["retryable"] is True


class TaskInstance:
    dag_id, task_id, run_id, map_index, try_number, stats_tags = "dag", "ask", "manual__1", -1, 1, {}

    def __init__(self):
        self.xcom = {}

    def xcom_push(self, key, value):
        self.xcom[key] = value


@pytest.mark.parametrize("case", UNREADABLE)
def test_a_wait_on_a_worker_ends_like_the_trigger_naming_the_call_and_request_id(connect, case):
    """The same answers on the worker: tolerated once as transient, then the task fails (Airflow retries
    apply) naming the call and the request id, never with a bare TypeError or ValueError."""
    body = UNREADABLE[case]
    running = envelope({"id": "c1", "status": "running", "turns": 1}, "req_create")
    polled = answer(200, body, {"X-Request-Id": "req_header"})
    with HostileServer(
        by_path({"/conversations/c1": polled, "/conversations": answer(201, running)})
    ) as server:
        connect("nairi_odd", server, max_retries=0)
        operator = NairiStartConversationOperator(
            task_id="ask",
            agent_id="agt_1",
            message="hi",
            conn_id="nairi_odd",
            deferrable=False,
            poll_interval=0.1,
            max_transient_errors=1,
        )
        with pytest.raises(AirflowException) as failed:
            operator.execute({"ti": TaskInstance()})
        polls = [request.path for request in server.requests if request.method == "GET"]
    assert not isinstance(failed.value, AirflowFailException)  # a malformed answer is retryable
    assert polls == ["/api/public/v1/conversations/c1"] * 2  # counted as transient once, then given up
    assert "GET /conversations/c1" in str(failed.value)
    request_id = json.loads(body)["meta"]["request_id"] if body else "req_header"
    assert f"(request id {request_id})" in str(failed.value)


async def test_a_failed_video_whose_error_is_a_string_still_fails_cleanly(connect):
    video = envelope({"id": "v1", "status": "failed", "error": "transcoder exploded"})
    with HostileServer(answer(200, video)) as server:
        connect("nairi_video", server)
        trigger = NairiVideoTrigger(
            conn_id="nairi_video", video_ids=["v1"], deadline=time.time() + 10, poll_interval=0.1
        )
        event = await first_event(trigger)
    assert event["status"] == "failed" and "transcoder exploded" in event["message"]


async def test_an_infinite_retry_after_cannot_outlast_the_trigger_deadline(connect):
    limited = raw_answer(429, b'{"success": false}', {"Retry-After": "inf"})

    def script(server, request, conn):
        conn.sendall(limited)
        return True

    with HostileServer(by_path({"/conversations/c1": script})) as server:
        connect("nairi_limited", server)
        started = time.monotonic()
        event = await first_event(
            conversation_trigger("nairi_limited", "c1", deadline=time.time() + 1, max_transient_errors=5)
        )
        took = time.monotonic() - started
    assert event["status"] == "timeout" and took < 2.5
