"""Nairi content, end to end: transcripts in, answers and the agent's files out.

1. upload the meeting transcripts as videos (``example_dags/data/transcripts``), without waiting;
2. wait until every video is processed (deferred: the wait runs in the triggerer);
3. search the transcripts, and ask a question over them (the answer is written to a JSON file);
4. ask an agent to summarise a brief given as an attachment (uploaded first, streamed);
5. download what the agent produced next to the answer.

Run it offline against the emulator (``nairi-emulator``, then point ``nairi_default`` at it) or against Nairi.
Params: ``transcripts`` (a glob, or any ``s3://``... URI Airflow's object storage knows), ``brief``, and
``output_dir`` (a local folder or an object-storage URI; one sub-folder per run).

The ``[[artifact:...]]`` text in the agent's message is a directive of the emulator's scripted agents (it
makes the agent write ``summary.md``); a real agent reads it as part of the request.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import pendulum
from airflow.sdk import Param, dag

from airflow_provider_nairi.operators.agents import NairiAgentOperator
from airflow_provider_nairi.operators.content import (
    NairiChatOperator,
    NairiDownloadArtifactsOperator,
    NairiSearchOperator,
    NairiUploadVideoOperator,
)
from airflow_provider_nairi.operators.conversation import NairiStartConversationOperator
from airflow_provider_nairi.sensors.content import NairiVideoReadySensor

DATA = Path(__file__).parent / "data"
OUTPUT = "{{ params.output_dir }}/{{ run_id | replace(':', '-') | replace('+', '-') }}"


@dag(
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    tags=["nairi", "example"],
    params={
        "transcripts": Param(str(DATA / "transcripts" / "*"), type="string"),
        "brief": Param(str(DATA / "brief.md"), type="string"),
        "output_dir": Param(str(Path(tempfile.gettempdir()) / "nairi_content"), type="string"),
    },
)
def nairi_content():
    upload = NairiUploadVideoOperator(
        task_id="upload_transcripts", sources="{{ params.transcripts }}", wait_until_ready=False
    )
    ready = NairiVideoReadySensor(
        task_id="wait_until_ready", video_ids=upload.output, deferrable=True, poll_interval=2, timeout=600
    )
    search = NairiSearchOperator(task_id="search", query="refunds", limit=5, video_ids=ready.output)
    chat = NairiChatOperator(
        task_id="chat",
        message="Why did refunds rise, and what is being done about it?",
        video_ids=ready.output,
        output_path=f"{OUTPUT}/answer.json",
    )
    analyst = NairiAgentOperator(
        task_id="analyst_agent",
        name="content-analyst",
        instructions="Summarise the attached brief for the support team.",
    )
    ask = NairiStartConversationOperator(
        task_id="ask_agent",
        agent_id="{{ ti.xcom_pull(task_ids='analyst_agent')['id'] }}",
        message=(
            "Summarise the attached brief. [[artifact:summary.md:Refunds rose 4% in Q3: late deliveries.]]"
        ),
        attachments="{{ params.brief }}",
        poll_interval=1,
        timeout=600,
    )
    download = NairiDownloadArtifactsOperator(
        task_id="download_results",
        conversation_id=ask.output["conversation_id"],
        created_by="agent",
        destination=OUTPUT,
    )
    analyst >> ask
    [search, chat] >> download


nairi_content()
