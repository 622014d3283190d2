"""@task.nairi and @task.nairi_branch without a metadata DB: what they build, what the function may return,
and how a branch reply is checked against the task's real downstream ids (the emulator plays the agent)."""

from __future__ import annotations

import json

import pendulum
import pytest
from airflow.providers.common.compat.sdk import DAG, AirflowFailException, task, task_group

from airflow_provider_nairi.decorators.nairi import (
    _NairiBranch,
    _NairiBranchStartTask,
    _NairiSendTask,
    _NairiStartTask,
)
from airflow_provider_nairi.exceptions import NairiParameterError
from airflow_provider_nairi.hooks.nairi import NairiHook

START = pendulum.datetime(2026, 1, 1, tz="UTC")
AIRFLOW_3 = DAG.__module__.startswith("airflow.sdk")


class FakeTaskInstance:
    dag_id = "dag"
    run_id = "manual__1"
    try_number = 1
    stats_tags: dict = {}

    def __init__(self, task_id, map_index=-1):
        self.task_id, self.map_index, self.xcom = task_id, map_index, {}

    def xcom_push(self, key, value):
        self.xcom[key] = json.loads(json.dumps(value))

    def xcom_pull(self, task_ids, key, map_indexes=None):
        return self.xcom.get(key)


def one_task(**kwargs):
    """A DAG with one ``@task.nairi`` task ``ask`` (its function's return value does not matter here)."""

    def make():
        @task.nairi(**kwargs)
        def ask() -> str:
            return "hi"

        ask()

    return build(make).task_dict["ask"]


def build(make):
    with DAG(dag_id="decorated", schedule=None, start_date=START) as dag:
        make()
    return dag


def test_the_decorators_build_the_conversation_operators_and_keep_one_xcom_value():
    def make():
        @task.nairi(agent_name="a")
        def ask() -> dict:  # a dict annotation would unroll the XCom dict without multiple_outputs=False
            return {"message": "hi"}

        @task.nairi(conversation_id="conv_1")
        def follow() -> str:
            return "more"

        ask()
        follow()

    dag = build(make)
    ask, follow = dag.task_dict["ask"], dag.task_dict["follow"]
    assert isinstance(ask, _NairiStartTask) and isinstance(follow, _NairiSendTask)
    assert ask.multiple_outputs is False
    assert ask.custom_operator_name == "@task.nairi"
    assert {"op_args", "op_kwargs", "message", "agent_name", "title"} <= set(ask.template_fields)


@pytest.mark.parametrize(
    ("returned", "fields"),
    [
        ("plain question", {"message": "plain question"}),
        (
            {"message": "m", "attachments": ["/tmp/a.txt"], "title": "t", "metadata": {"k": "v"}},
            {"message": "m", "attachments": ["/tmp/a.txt"], "title": "t", "metadata": {"k": "v"}},
        ),
    ],
)
def test_the_function_returns_the_message_or_a_dict_of_its_fields(returned, fields):
    operator = one_task(agent_name="a")
    operator.take_message(returned)
    assert {name: getattr(operator, name) for name in fields} == fields


@pytest.mark.parametrize(
    ("returned", "error"),
    [
        (42, "must return the message (a string) or a dict with a 'message' string; it returned int"),
        ({"text": "x"}, "must return the message"),
        ({"message": "x", "agent_id": "other"}, "unknown key(s) agent_id"),
        ("   ", "returned an empty message"),
    ],
)
def test_a_wrong_return_value_is_a_clear_error(returned, error):
    with pytest.raises(NairiParameterError, match=r"@task\.nairi: ") as raised:
        one_task(agent_name="a").take_message(returned)
    assert error in str(raised.value)


def test_a_continued_conversation_takes_no_title():
    with pytest.raises(NairiParameterError, match=r"unknown key\(s\) title; allowed: attachments, message"):
        one_task(conversation_id="conv_1").take_message({"message": "m", "title": "t"})


@pytest.mark.parametrize("keyword", [{"output_type": dict}, {"wait_for_reply": False}])
def test_a_branch_takes_no_output_type_and_always_waits(keyword):
    with pytest.raises(NairiParameterError, match=r"@task\.nairi_branch: the reply is the choice"):
        task.nairi_branch(agent_name="a", **keyword)


def branching_dag():
    def make():
        @task.nairi_branch(agent_name="a", poll_interval=0.02, deferrable=False)
        def choose() -> str:
            return "Pick one."

        @task_group
        def lane():
            @task
            def one(): ...

            @task
            def two(): ...

            one()
            two()

        @task
        def other(): ...

        choose() >> [lane(), other()]

    return build(make)


def test_the_choices_are_the_real_downstream_ids_and_the_first_message_lists_them():
    choose = branching_dag().task_dict["choose"]
    assert isinstance(choose, _NairiBranchStartTask)
    assert choose.reply_format().task_ids == ["lane.one", "lane.two", "other"]
    choose.message = "Pick one."
    assert choose.first_message() == (
        "Pick one.\n\nChoose which of these tasks run next. Reply with exactly one task id, or with a JSON "
        "list of task ids when several should run, and nothing else:\n- lane.one\n- lane.two\n- other"
    )


@pytest.mark.nairi_emulator(turn_latency=0.02)
def test_a_branch_naming_an_unknown_task_fails_after_its_repair_turns(nairi_emulator, no_sleep):
    agent_id = NairiHook().client.create_agent("router", "Route.")["id"]
    choose = branching_dag().task_dict["choose"]
    choose.agent_id, choose.agent_name = agent_id, None
    choose.python_callable = lambda: 'Pick. [[replies:["shipping", "\\"shipping\\"", ["other", "lane.x"]]]]'
    ti = FakeTaskInstance("choose")
    with pytest.raises(AirflowFailException) as failed:
        choose.execute({"ti": ti, "task_instance": ti, "task_state_store": None})
    assert 'not a task to choose: "lane.x"' in str(failed.value)
    assert "return_value" not in ti.xcom  # nothing was chosen, nothing skipped


@pytest.mark.skipif(not AIRFLOW_3, reason="Airflow 2's SkipMixin writes the DB itself")
def test_a_mapped_instance_skips_its_own_siblings_through_the_api():
    from airflow.providers.common.compat.sdk import DownstreamTasksSkipped  # noqa: PLC0415 (Airflow 3)

    with pytest.raises(DownstreamTasksSkipped) as skipped:
        _NairiBranch.skip_in_mapped_group([("route.other", 2), ("route.invoice", 2)], 2)
    assert skipped.value.tasks == [("route.other", 2), ("route.invoice", 2)]
    _NairiBranch.skip_in_mapped_group([], 2)  # nothing to skip: no exception


@pytest.fixture
def no_sleep():
    """Real sleeps: the emulator's agents take real time."""


def test_a_function_returning_no_message_fails_the_task_without_retries():
    """A wrong return value is a bad parameter: Airflow's retries could not fix it (airflow_outcome)."""
    ask = one_task(agent_name="a")
    ask.python_callable = lambda: {"text": "no message key"}
    ti = FakeTaskInstance("ask")
    with pytest.raises(AirflowFailException, match=r"Nairi: @task\.nairi: the function must return"):
        ask.execute({"ti": ti, "task_instance": ti, "task_state_store": None})
