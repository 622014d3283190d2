"""Upload and download operators against the hook's methods: request shapes, files written, error branches."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from airflow.providers.common.compat.sdk import AirflowException, AirflowFailException, ObjectStoragePath

from airflow_provider_nairi.exceptions import NairiChecksumError, NairiDestinationExistsError
from airflow_provider_nairi.operators.content import (
    NairiDownloadArtifactsOperator,
    NairiUploadArtifactsOperator,
)


def run(operator, hook, ti):
    operator.__dict__["hook"] = hook  # the cached_property, filled with the fake
    return operator.execute({"ti": ti})


def test_upload_operator_returns_ids_names_sizes_and_checksums(tmp_path: Path, hook, ti):
    (tmp_path / "t1.txt").write_bytes(b"first transcript")
    (tmp_path / "t2.txt").write_bytes(b"second")
    op = NairiUploadArtifactsOperator(
        task_id="upload", sources=str(tmp_path / "t*.txt"), conversation_id="conv_9"
    )
    result = run(op, hook, ti)
    assert [(r["name"], r["size_bytes"], r["sha256"]) for r in result] == [
        ("t1.txt", 16, hashlib.sha256(b"first transcript").hexdigest()),
        ("t2.txt", 6, hashlib.sha256(b"second").hexdigest()),
    ]
    assert [kwargs["conversation_id"] for _, kwargs in hook.called("upload_artifact")] == ["conv_9", "conv_9"]
    assert run(op, hook, ti) == result  # a retry replays: same ids, nothing new
    assert len(hook.artifacts) == 2


def test_upload_operator_fails_without_retry_on_a_missing_source(tmp_path: Path, hook, ti):
    op = NairiUploadArtifactsOperator(task_id="upload", sources=[str(tmp_path / "nope.csv")])
    with pytest.raises(AirflowFailException, match=r"nope\.csv"):
        run(op, hook, ti)
    assert hook.calls == []


@pytest.fixture
def produced(hook):
    """A conversation with a user attachment and two agent artifacts."""
    hook.add_artifact("brief.txt", b"the brief", "conv_1", by="user")
    hook.add_artifact("summary.md", b"# summary", "conv_1")
    hook.add_artifact("table.csv", b"a,b\n1,2\n", "conv_1")
    hook.add_artifact("other.txt", b"elsewhere", "conv_2")
    return hook


def test_download_writes_each_artifact_of_a_conversation_and_returns_the_paths(tmp_path: Path, produced, ti):
    dest = tmp_path / "out" / "nested"
    op = NairiDownloadArtifactsOperator(task_id="dl", conversation_id="conv_1", destination=str(dest))
    paths = run(op, produced, ti)
    assert paths == [str(dest / "brief.txt"), str(dest / "summary.md"), str(dest / "table.csv")]
    assert (dest / "table.csv").read_bytes() == b"a,b\n1,2\n"
    assert sorted(p.name for p in dest.iterdir()) == ["brief.txt", "summary.md", "table.csv"]  # no .partial
    sent = [kwargs["expected_sha256"] for _, kwargs in produced.called("download_artifact")]
    assert sent == [produced.artifacts[i]["sha256"] for i in ("art_1", "art_2", "art_3")]


def test_download_only_what_the_agent_produced(tmp_path: Path, produced, ti):
    op = NairiDownloadArtifactsOperator(
        task_id="dl", conversation_id="conv_1", destination=str(tmp_path), created_by="agent"
    )
    assert [Path(p).name for p in run(op, produced, ti)] == ["summary.md", "table.csv"]


def test_download_listed_artifacts_given_as_an_upload_result(tmp_path: Path, produced, ti):
    op = NairiDownloadArtifactsOperator(
        task_id="dl", artifact_ids=[{"id": "art_4", "name": "other.txt"}, "art_2"], destination=tmp_path
    )
    assert [Path(p).name for p in run(op, produced, ti)] == ["other.txt", "summary.md"]
    assert [args[0] for args, _ in produced.called("get_artifact")] == ["art_4", "art_2"]


def test_download_refuses_to_overwrite_before_downloading_anything(tmp_path: Path, produced, ti):
    (tmp_path / "table.csv").write_text("my own table")
    op = NairiDownloadArtifactsOperator(task_id="dl", conversation_id="conv_1", destination=str(tmp_path))
    with pytest.raises(AirflowFailException, match=r"table\.csv.*overwrite=True") as caught:
        run(op, produced, ti)
    assert isinstance(caught.value.__cause__, NairiDestinationExistsError)
    assert produced.called("download_artifact") == []
    assert (tmp_path / "table.csv").read_text() == "my own table"
    assert not (tmp_path / "brief.txt").exists()


def test_download_overwrites_when_asked(tmp_path: Path, produced, ti):
    (tmp_path / "table.csv").write_text("my own table")
    op = NairiDownloadArtifactsOperator(
        task_id="dl", conversation_id="conv_1", destination=str(tmp_path), overwrite=True
    )
    run(op, produced, ti)
    assert (tmp_path / "table.csv").read_bytes() == b"a,b\n1,2\n"


def test_download_retry_keeps_files_that_already_hold_the_artifact(tmp_path: Path, produced, ti):
    (tmp_path / "summary.md").write_bytes(b"# summary")  # left by a first try that stopped midway
    op = NairiDownloadArtifactsOperator(task_id="dl", conversation_id="conv_1", destination=str(tmp_path))
    assert len(run(op, produced, ti)) == 3
    assert [args[0] for args, _ in produced.called("download_artifact")] == ["art_1", "art_3"]


def test_download_names_cannot_escape_the_destination_and_twins_get_their_id(tmp_path: Path, hook, ti):
    hook.add_artifact("../../escape.sh", b"x", "conv_1")
    hook.add_artifact("report.md", b"v1", "conv_1")
    hook.add_artifact("dir/report.md", b"v2", "conv_1")
    hook.add_artifact("..", b"dots", "conv_1")
    dest = tmp_path / "dest"
    op = NairiDownloadArtifactsOperator(task_id="dl", conversation_id="conv_1", destination=str(dest))
    paths = run(op, hook, ti)
    assert [Path(p).name for p in paths] == ["escape.sh", "art_2-report.md", "art_3-report.md", "art_4"]
    assert all(Path(p).parent == dest for p in paths)
    assert (dest / "art_3-report.md").read_bytes() == b"v2"


def test_a_failed_download_leaves_no_partial_object_and_lets_airflow_retry(memory_store, produced, ti):
    def broken(artifact_id, destination, *, expected_sha256=None, expected_size=None):
        destination.write(b"half")
        raise NairiChecksumError("sha256 mismatch", code="checksum_mismatch")

    produced.download_artifact = broken
    op = NairiDownloadArtifactsOperator(
        task_id="dl", artifact_ids=["art_2"], destination="memory://bucket/dl"
    )
    with pytest.raises(AirflowException) as error:
        run(op, produced, ti)
    assert not isinstance(error.value, AirflowFailException)
    assert "sha256 mismatch" in str(error.value)
    assert list(ObjectStoragePath("memory://bucket/dl").iterdir()) == []


def test_download_into_object_storage(memory_store, produced, ti):
    op = NairiDownloadArtifactsOperator(
        task_id="dl", conversation_id="conv_1", destination="memory://bucket/results", created_by="agent"
    )
    written = [path.replace(":///", "://") for path in run(op, produced, ti)]  # Airflow 2: memory:///bucket
    assert written == [
        "memory://bucket/results/summary.md",
        "memory://bucket/results/table.csv",
    ]
    assert ObjectStoragePath("memory://bucket/results/summary.md").read_bytes() == b"# summary"
    assert not ObjectStoragePath("memory://bucket/results/summary.md.partial").exists()


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({}, "exactly one of conversation_id or artifact_ids"),
        ({"conversation_id": "conv_1", "artifact_ids": ["art_1"]}, "got both"),
        ({"artifact_ids": [42]}, "artifact_ids: 42 is not an id"),
    ],
)
def test_download_parameter_errors_fail_before_any_request(tmp_path: Path, produced, ti, kwargs, expected):
    op = NairiDownloadArtifactsOperator(task_id="dl", destination=str(tmp_path), **kwargs)
    with pytest.raises(AirflowFailException, match=expected):
        run(op, produced, ti)
    assert produced.calls == []


def test_download_destination_that_is_a_file_is_refused(tmp_path: Path, produced, ti):
    (tmp_path / "file").write_text("x")
    op = NairiDownloadArtifactsOperator(
        task_id="dl", conversation_id="conv_1", destination=str(tmp_path / "file")
    )
    with pytest.raises(AirflowFailException, match="is a file") as caught:
        run(op, produced, ti)
    assert isinstance(caught.value.__cause__, NairiDestinationExistsError)


def test_created_by_is_checked_when_the_dag_is_parsed():
    with pytest.raises(ValueError, match="created_by"):
        NairiDownloadArtifactsOperator(
            task_id="dl", conversation_id="c", destination="/tmp", created_by="bot"
        )
