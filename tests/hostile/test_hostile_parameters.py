"""Numbers and flags a DAG author can get wrong are refused while the DAG file is parsed, naming them.

Each row builds an operator, sensor or trigger with one bad value, as a DAG file would, with no connection
configured and no server: the constructor itself must raise ``NairiParameterError`` (a
``NairiConfigurationError`` and, as before, a ``ValueError``) whose message names the parameter and shows
the value. ``nan`` is the sly one: every comparison with it is false, so a ``poll_interval < 0`` check lets
it through, and a deadline built from it never passes.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import pytest

from airflow_provider_nairi.exceptions import NairiConfigurationError, NairiParameterError
from airflow_provider_nairi.operators.content import NairiReprocessVideoOperator, NairiUploadVideoOperator
from airflow_provider_nairi.operators.conversation import (
    NairiSendMessageOperator,
    NairiStartConversationOperator,
)
from airflow_provider_nairi.operators.scheduled_jobs import (
    NairiRunScheduledJobOperator,
    NairiScheduledJobOperator,
)
from airflow_provider_nairi.operators.secrets import NairiEnvVarsOperator, NairiVaultSecretsOperator
from airflow_provider_nairi.sensors.content import NairiVideoReadySensor
from airflow_provider_nairi.sensors.conversation import NairiConversationSensor
from airflow_provider_nairi.triggers.conversation import NairiConversationTrigger
from airflow_provider_nairi.triggers.video import NairiVideoTrigger

NAN, INF = math.nan, math.inf


def start(**kwargs: Any) -> Any:
    return NairiStartConversationOperator(task_id="ask", message="hi", agent_id="agt_1", **kwargs)


def send(**kwargs: Any) -> Any:
    return NairiSendMessageOperator(task_id="send", conversation_id="conv_1", message="hi", **kwargs)


def run_job(**kwargs: Any) -> Any:
    return NairiRunScheduledJobOperator(task_id="run", job_id="job_1", **kwargs)


def upload_video(**kwargs: Any) -> Any:
    return NairiUploadVideoOperator(task_id="upload", sources="/data/v.mp4", **kwargs)


def reprocess(**kwargs: Any) -> Any:
    return NairiReprocessVideoOperator(task_id="reprocess", video_ids=["vid_1"], **kwargs)


def video_sensor(**kwargs: Any) -> Any:
    return NairiVideoReadySensor(task_id="wait", video_ids=["vid_1"], **kwargs)


def conversation_sensor(**kwargs: Any) -> Any:
    return NairiConversationSensor(task_id="watch", conversation_id="conv_1", **kwargs)


def job(**kwargs: Any) -> Any:
    return NairiScheduledJobOperator(
        task_id="job", name="daily", message="hi", cron="0 9 * * *", agent_id="agt_1", **kwargs
    )


def conversation_trigger(**kwargs: Any) -> Any:
    return NairiConversationTrigger(
        conn_id="nairi_default", resource_id="conv_1", **{"deadline": None, **kwargs}
    )


def video_trigger(**kwargs: Any) -> Any:
    return NairiVideoTrigger(conn_id="nairi_default", video_ids=["vid_1"], **{"deadline": None, **kwargs})


def env_vars(**kwargs: Any) -> Any:
    return NairiEnvVarsOperator(task_id="env", env_vars={"A": "1"}, **kwargs)


def vault(**kwargs: Any) -> Any:
    return NairiVaultSecretsOperator(task_id="vault", vault_name="v", secrets={"A": "1"}, **kwargs)


BAD: list[tuple[str, Callable[..., Any], str, Any]] = [
    ("ask poll_interval nan", start, "poll_interval", NAN),
    ("ask poll_interval inf", start, "poll_interval", INF),
    ("ask poll_interval negative", start, "poll_interval", -1),
    ("ask poll_interval as a string", start, "poll_interval", "5"),
    ("ask timeout nan", start, "timeout", NAN),
    ("ask timeout inf", start, "timeout", INF),
    ("ask timeout 0", start, "timeout", 0),
    ("ask timeout negative", start, "timeout", -30),
    ("ask max_transient_errors negative", start, "max_transient_errors", -1),
    ("ask max_transient_errors nan", start, "max_transient_errors", NAN),
    ("ask max_transient_errors fractional", start, "max_transient_errors", 2.5),
    ("ask keep_on_timeout as a string", start, "keep_on_timeout", "false"),
    ("ask final_on_agent_failure as a number", start, "final_on_agent_failure", 0),
    ("send timeout nan", send, "timeout", NAN),
    ("run job poll_interval inf", run_job, "poll_interval", INF),
    ("upload video poll_interval nan", upload_video, "poll_interval", NAN),
    ("upload video timeout inf", upload_video, "timeout", INF),
    ("upload video timeout True", upload_video, "timeout", True),
    ("reprocess timeout nan", reprocess, "timeout", NAN),
    ("video sensor poll_interval nan", video_sensor, "poll_interval", NAN),
    ("video sensor poll_interval 0", video_sensor, "poll_interval", 0),
    ("video sensor timeout nan", video_sensor, "timeout", NAN),
    ("conversation sensor poke_interval inf", conversation_sensor, "poke_interval", INF),
    ("conversation sensor poke_interval 0", conversation_sensor, "poke_interval", 0),
    ("conversation sensor timeout nan", conversation_sensor, "timeout", NAN),
    ("conversation sensor max_transient_errors negative", conversation_sensor, "max_transient_errors", -2),
    ("scheduled job enabled as a string", job, "enabled", "no"),
    ("env vars prune as a string", env_vars, "prune", "false"),
    ("vault prune as a string", vault, "prune", "false"),
    ("conversation trigger poll_interval nan", conversation_trigger, "poll_interval", NAN),
    ("conversation trigger deadline nan", conversation_trigger, "deadline", NAN),
    ("conversation trigger deadline inf", conversation_trigger, "deadline", INF),
    ("video trigger max_transient_errors negative", video_trigger, "max_transient_errors", -1),
]


@pytest.mark.parametrize(("build", "param", "value"), [row[1:] for row in BAD], ids=[row[0] for row in BAD])
def test_a_bad_number_or_flag_is_refused_when_the_dag_is_parsed(build, param, value):
    with pytest.raises(NairiParameterError) as caught:
        build(**{param: value})
    error = caught.value
    assert isinstance(error, NairiConfigurationError)
    assert isinstance(error, ValueError)  # what these parameters raised before
    assert str(error).startswith(f"{param} must be ")
    assert repr(value) in str(error)


@pytest.mark.parametrize(
    ("build", "kwargs"),
    [
        (start, {"poll_interval": 0.5, "timeout": None, "max_transient_errors": 0, "keep_on_timeout": True}),
        (start, {"timeout": 30}),
        (upload_video, {"poll_interval": 1, "timeout": 0.25}),
        (video_sensor, {"poll_interval": 0.01, "timeout": 5}),
        (conversation_sensor, {"poke_interval": 2, "timeout": 60, "max_transient_errors": 0}),
        (conversation_trigger, {"poll_interval": 0.1, "deadline": 1.9e9, "max_transient_errors": 0}),
        (job, {"enabled": False}),
    ],
)
def test_sensible_values_are_accepted_as_given(build, kwargs):
    built = build(**kwargs)
    for name, value in kwargs.items():
        stored = (
            "poke_interval" if name == "poll_interval" and isinstance(built, NairiVideoReadySensor) else name
        )
        assert getattr(built, stored) == value
