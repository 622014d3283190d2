"""OpenLineage: the pure builders, their OperatorLineage with the OpenLineage provider installed, nothing
(and no import) without it."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from airflow_provider_nairi import lineage

NS = "nairi://api.nairi.ai"


def test_namespaces_and_dataset_names():
    assert lineage.nairi_namespace("https://api.nairi.ai/api/public/v1") == NS
    assert lineage.nairi_namespace("http://127.0.0.1:8080/api/public/v1") == "nairi://127.0.0.1:8080"
    assert lineage.dataset_of("s3://bucket/in/report.pdf") == ("s3://bucket", "in/report.pdf")
    assert lineage.dataset_of("gs://b/k") == ("gs://b", "k")
    assert lineage.dataset_of("/data/a.csv") == ("file", "/data/a.csv")
    assert lineage.dataset_of("file:///data/a.csv") == ("file", "/data/a.csv")
    assert lineage.dataset_of("rel/a.csv") == ("file", os.path.abspath("rel/a.csv"))
    assert lineage.dataset_of("") is None
    assert lineage.dataset_of(None) is None


def test_uploads_name_their_input_files_and_the_artifacts_they_made():
    uploaded = [
        {"id": "art_1", "name": "a.csv", "source": "/data/a.csv", "sha256": "x"},
        {"id": "art_2", "name": "b.pdf", "source": "s3://bucket/in/b.pdf", "sha256": "y"},
    ]
    result = lineage.upload_lineage(NS, uploaded)
    assert result.inputs == [("file", "/data/a.csv"), ("s3://bucket", "in/b.pdf")]
    assert result.outputs == [(NS, "artifacts/art_1"), (NS, "artifacts/art_2")]


def test_downloads_name_their_outputs():
    result = lineage.download_lineage(NS, ["art_1"], ["s3://lake/out/a.csv"])
    assert result.inputs == [(NS, "artifacts/art_1")]
    assert result.outputs == [("s3://lake", "out/a.csv")]


def test_videos_and_bounds():
    result = lineage.video_lineage(NS, [{"id": f"vid_{n}"} for n in range(500)], ["/v/a.mp4"])
    assert result.inputs == [("file", "/v/a.mp4")]
    assert len(result.outputs) == lineage.MAX_DATASETS and result.outputs[0] == (NS, "videos/vid_0")


def test_a_conversation_is_a_run_facet_and_its_agent_a_job_facet():
    reply = {
        "conversation_id": "conv_1",
        "status": "completed",
        "turn": 2,
        "reply": "never in lineage",
        "reply_message_id": "msg_9",
        "artifact_ids": ["art_out"],
    }
    result = lineage.conversation_lineage(NS, reply, agent="support", attachments=["art_in"])
    assert result.inputs == [(NS, "artifacts/art_in")] and result.outputs == [(NS, "artifacts/art_out")]
    assert result.run_facets == {
        "externalQuery": {"externalQueryId": "conv_1", "source": NS},
        "nairi_conversation": {
            "conversationId": "conv_1",
            "turn": 2,
            "status": "completed",
            "replyMessageId": "msg_9",
        },
    }
    assert result.job_facets == {"nairi_agent": {"agentName": "support", "namespace": NS}}
    assert "never in lineage" not in repr(result)
    by_id = lineage.conversation_lineage(NS, reply, agent="agt_7")
    assert by_id.job_facets["nairi_agent"] == {"agentId": "agt_7", "namespace": NS}


def test_operator_lineage_with_the_openlineage_provider():
    pytest.importorskip("airflow.providers.openlineage.extractors", reason="the openlineage extra")
    from airflow.providers.openlineage.extractors import OperatorLineage  # noqa: PLC0415
    from openlineage.client.serde import Serde  # noqa: PLC0415

    built = lineage.to_operator_lineage(
        lineage.conversation_lineage(
            NS, {"conversation_id": "conv_1", "turn": 1, "status": "completed"}, agent="agt_1"
        )
    )
    assert isinstance(built, OperatorLineage)
    assert built.run_facets["externalQuery"].externalQueryId == "conv_1"
    facet = Serde.to_dict(built.run_facets["nairi_conversation"])
    assert facet["conversationId"] == "conv_1" and facet["_schemaURL"].endswith("#nairi_conversation")
    assert Serde.to_dict(built.job_facets["nairi_agent"])["agentId"] == "agt_1"
    upload = lineage.to_operator_lineage(lineage.upload_lineage(NS, [{"id": "art_1", "source": "s3://b/k"}]))
    assert [(d.namespace, d.name) for d in upload.inputs] == [("s3://b", "k")]
    assert [(d.namespace, d.name) for d in upload.outputs] == [(NS, "artifacts/art_1")]


# Airflow's own provider discovery imports each provider's get_provider_info at `import airflow`: not ours.
PROBE = """
import sys
def lineage_module(name):
    return name.startswith(("openlineage", "airflow.providers.openlineage.")) and not name.endswith(
        "get_provider_info")
class WithoutOpenLineage:
    def find_spec(self, name, path=None, target=None):
        if lineage_module(name) and "{block}" == "block":
            raise ImportError(name)
sys.meta_path.insert(0, WithoutOpenLineage())
import airflow_provider_nairi.operators.content, airflow_provider_nairi.operators.conversation
import airflow_provider_nairi.operators.scheduled_jobs, airflow_provider_nairi.lineage as lineage
print(sorted(m for m in sys.modules if lineage_module(m)))
print(lineage.to_operator_lineage(lineage.Lineage()) if "{block}" == "block" else "skipped")
"""


@pytest.mark.parametrize("block", ["block", "installed"])
def test_importing_the_operators_does_not_import_openlineage(block):
    args = [sys.executable, "-c", PROBE.replace("{block}", block)]
    result = subprocess.run(args, check=False, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    imported, converted = result.stdout.strip().splitlines()[-2:]
    assert imported == "[]"
    assert converted == ("None" if block == "block" else "skipped")
