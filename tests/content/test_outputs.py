"""What the operators' results become, once, in NairiBaseOperator: the extra of each asset outlet's event
(ids, sha256s, counts; never a reply, never a secret, bounded) and the OpenLineage facets."""

from __future__ import annotations

import hashlib
from pathlib import Path
from types import SimpleNamespace

from airflow_provider_nairi import lineage
from airflow_provider_nairi.operators.content import (
    NairiDownloadArtifactsOperator,
    NairiReprocessVideoOperator,
    NairiUploadArtifactsOperator,
)

try:
    from airflow.sdk import Asset, AssetAlias
    from airflow.sdk.execution_time.context import OutletEventAccessors
except ImportError:  # Airflow 2.11
    from airflow.datasets import Dataset as Asset
    from airflow.datasets import DatasetAlias as AssetAlias
    from airflow.utils.context import OutletEventAccessors

BASE_URL = "https://api.nairi.ai/api/public/v1"
NS = "nairi://api.nairi.ai"


def execute(operator, hook, ti):
    hook.config = SimpleNamespace(base_url=BASE_URL)
    operator.__dict__["hook"] = hook
    events = OutletEventAccessors()
    return operator.execute({"ti": ti, "outlet_events": events}), events


def test_an_upload_names_its_artifacts_and_sha256s_in_each_asset_event(tmp_path: Path, hook, ti):
    (tmp_path / "a.csv").write_bytes(b"a,b\n")
    (tmp_path / "b.csv").write_bytes(b"c,d\n")
    first, second = Asset("nairi://uploads/one"), Asset("s3://lake/two")
    op = NairiUploadArtifactsOperator(
        task_id="upload", sources=str(tmp_path / "*.csv"), outlets=[first, second, AssetAlias("ignored")]
    )
    result, events = execute(op, hook, ti)
    expected = {
        "count": 2,
        "items": [
            {"id": r["id"], "name": r["name"], "sha256": r["sha256"], "size_bytes": r["size_bytes"]}
            for r in result
        ],
    }
    assert events[first].extra == expected and events[second].extra == expected
    assert expected["items"][0]["sha256"] == hashlib.sha256(b"a,b\n").hexdigest()

    built = lineage.to_operator_lineage(op.lineage(NS, result))
    facets = op.get_openlineage_facets_on_complete(ti)
    if built is None:  # without the openlineage extra: nothing, and no error
        assert facets is None
    else:
        assert [(d.namespace, d.name) for d in facets.inputs] == [
            ("file", str(tmp_path / n)) for n in ("a.csv", "b.csv")
        ]
        assert [(d.namespace, d.name) for d in facets.outputs] == [
            (NS, f"artifacts/{r['id']}") for r in result
        ]


def test_a_download_names_its_destination_files_artifacts_and_sha256s(tmp_path: Path, hook, ti):
    art = hook.add_artifact("summary.md", b"# summary", "conv_1")
    destination = tmp_path / "out"
    asset = Asset(f"file://{destination}")
    op = NairiDownloadArtifactsOperator(
        task_id="download", conversation_id="conv_1", destination=str(destination), outlets=[asset]
    )
    written, events = execute(op, hook, ti)
    assert events[asset].extra == {
        "count": 1,
        "items": [{"id": art["id"], "sha256": hashlib.sha256(b"# summary").hexdigest(), "path": written[0]}],
    }
    assert op.lineage(NS, written).inputs == [(NS, f"artifacts/{art['id']}")]
    assert op.lineage(NS, written).outputs == [("file", str(destination / "summary.md"))]


def test_videos_and_no_outlets(hook, ti):
    op = NairiReprocessVideoOperator(task_id="re", video_ids=["vid_1"], wait_until_ready=False)
    hook.videos = {"vid_1": {"id": "vid_1", "title": "t", "status": "ready"}}
    result, _events = execute(op, hook, ti)  # no outlets: nothing to attach, nothing fails
    assert op.nairi_result == result
    assert op.lineage(NS, result).outputs == [(NS, "videos/vid_1")]


def test_a_conversation_extra_has_ids_and_no_reply_and_lists_are_bounded():
    reply = {
        "conversation_id": "conv_1",
        "status": "completed",
        "turn": 2,
        "reply": "the agent's whole text",
        "reply_message_id": "msg_2",
        "artifact_ids": [f"art_{n}" for n in range(80)],
        "url": "https://app.nairi.ai/conversations/conv_1",
    }
    extra = lineage.asset_extra(reply)
    assert extra == {
        "conversation_id": "conv_1",
        "status": "completed",
        "turn": 2,
        "reply_message_id": "msg_2",
        "artifact_ids": [f"art_{n}" for n in range(lineage.MAX_ITEMS)],
    }
    plan = {
        "kind": "vault",
        "id": "vlt_1",
        "name": "crm",
        "action": "updated",
        "secrets": [{"name": "TOKEN", "action": "created", "value": "s3cr3t"}],
        "rewritten": 1,
    }
    assert lineage.asset_extra(plan) == {
        "kind": "vault",
        "id": "vlt_1",
        "name": "crm",
        "action": "updated",
        "secrets": [{"name": "TOKEN", "action": "created"}],
    }
    assert lineage.asset_extra({"name": "x" * 10_000})["name"] == "x" * lineage.MAX_STRING
    assert lineage.asset_extra(None) == {} and lineage.asset_extra(["/a", 3, {"id": "x"}]) == {
        "count": 3,
        "items": ["/a", {"id": "x"}],
    }
