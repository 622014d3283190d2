"""Resolving ``sources`` and uploading them: what goes up, with which key, what fails before any upload."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from airflow.providers.common.compat.sdk import ObjectStoragePath

from airflow_provider_nairi import sources as sources_module
from airflow_provider_nairi.exceptions import NairiConfigurationError
from airflow_provider_nairi.idempotency import task_idempotency_key
from airflow_provider_nairi.sources import as_path, resolve_sources, upload_sources


@pytest.fixture
def files(tmp_path: Path) -> Path:
    (tmp_path / "b.txt").write_text("bee")
    (tmp_path / "a.txt").write_text("ay")
    (tmp_path / "notes.md").write_text("# notes")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "c.txt").write_text("sea")
    return tmp_path


def test_local_path_gives_name_size_and_resolved_path(files: Path):
    (source,) = resolve_sources(str(files / "a.txt"))
    assert (source.name, source.size, source.path) == ("a.txt", 2, (files / "a.txt").resolve())
    assert source.location == str(files / "a.txt")


def test_glob_matches_files_sorted_and_skips_directories(files: Path):
    assert [s.name for s in resolve_sources(str(files / "*"))] == ["a.txt", "b.txt", "notes.md"]
    assert [s.name for s in resolve_sources(str(files / "**" / "*.txt"))] == ["a.txt", "b.txt", "c.txt"]


def test_list_keeps_order_and_uploads_a_file_named_twice_once(files: Path):
    sources = resolve_sources([files / "notes.md", str(files / "*.txt"), f"file://{files}/a.txt"])
    assert [s.name for s in sources] == ["notes.md", "a.txt", "b.txt"]


def test_file_uri_is_a_local_path(files: Path):
    (source,) = resolve_sources(f"file://{files}/b.txt")
    assert isinstance(source.path, Path)
    assert source.path.read_text() == "bee"


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("missing.txt", "does not exist"),
        ("sub", "is a directory"),
        ("*.csv", "matches no file"),
        ("sub/*.csv", "matches no file"),
    ],
)
def test_bad_source_names_itself_and_the_fix(files: Path, given: str, expected: str):
    location = str(files / given)
    with pytest.raises(NairiConfigurationError) as error:
        resolve_sources(location)
    assert location in str(error.value)
    assert expected in str(error.value)


def test_directory_error_suggests_a_glob(files: Path):
    with pytest.raises(NairiConfigurationError, match=r"sub/\*"):
        resolve_sources(str(files / "sub"))


@pytest.mark.parametrize("given", [None, [], "", "   ", 3, [None]])
def test_nothing_or_not_a_path_is_refused(given):
    with pytest.raises(NairiConfigurationError, match="sources"):
        resolve_sources(given)


def test_identity_changes_when_the_file_changes(files: Path):
    (before,) = resolve_sources(str(files / "a.txt"))
    (again,) = resolve_sources(str(files / "a.txt"))
    (files / "a.txt").write_text("changed")
    os.utime(files / "a.txt", ns=(1, 1))
    (after,) = resolve_sources(str(files / "a.txt"))
    assert before.identity == again.identity
    assert after.identity != before.identity


def test_object_storage_sources_and_globs(memory_store):
    ObjectStoragePath("memory://bucket/in/x.csv").write_text("1,2")
    ObjectStoragePath("memory://bucket/in/y.csv").write_text("3,4,5")
    ObjectStoragePath("memory://bucket/in/deeper/z.csv").write_text("6")
    (single,) = resolve_sources("memory://bucket/in/x.csv")
    assert isinstance(single.path, ObjectStoragePath)
    assert (single.name, single.size) == ("x.csv", 3)
    locations = [s.location.replace(":///", "://") for s in resolve_sources("memory://bucket/in/*.csv")]
    assert locations == [
        "memory://bucket/in/x.csv",
        "memory://bucket/in/y.csv",
    ]
    assert [s.name for s in resolve_sources(ObjectStoragePath("memory://bucket/in/y.csv"))] == ["y.csv"]


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("memory://bucket/in/none.csv", "does not exist in object storage"),
        ("memory://bucket/in", "is a directory"),
        ("memory://bucket/in/*.parquet", "matches no file"),
    ],
)
def test_bad_object_storage_source(memory_store, given: str, expected: str):
    ObjectStoragePath("memory://bucket/in/x.csv").write_text("1,2")
    with pytest.raises(NairiConfigurationError, match=expected):
        resolve_sources(given)


def test_as_path_local_for_plain_and_file_uris(tmp_path: Path):
    assert as_path(str(tmp_path)) == tmp_path
    assert as_path(f"file://{tmp_path}") == tmp_path
    assert as_path(ObjectStoragePath(f"file://{tmp_path}")) == tmp_path
    assert isinstance(as_path("memory://bucket/out"), ObjectStoragePath)


def test_local_uris_need_no_object_storage_and_a_store_airflow_cannot_open_names_the_fix(files, monkeypatch):
    """Airflow 3.0 with universal-pathlib 0.3+ builds no ObjectStoragePath (upath raises this TypeError)."""

    class RefusedByUpath(ObjectStoragePath):
        def __new__(cls, uri, *args, **kwargs):
            protocol = uri.partition("://")[0]
            raise TypeError(
                f"ObjectStoragePath(...) detected protocol {protocol} which is incompatible with it."
            )

    monkeypatch.setattr(sources_module, "ObjectStoragePath", RefusedByUpath)
    uri = f"file://{files}"
    assert [s.name for s in resolve_sources([f"{uri}/a.txt", f"{uri}/*.md"])] == ["a.txt", "notes.md"]
    assert as_path(f"local://{files}") == files
    for given, opened in [("s3://bucket/in/x.csv", "s3://bucket/in/x.csv"), ("s3://b/in/*.csv", "s3://b/in")]:
        with pytest.raises(NairiConfigurationError) as refused:
            resolve_sources(given)
        assert str(refused.value) == (
            f"'{opened}': Airflow's ObjectStoragePath cannot open it (ObjectStoragePath(...) detected "
            "protocol s3 which is incompatible with it.). Airflow 3.0 refuses every URI this way when "
            "universal-pathlib 0.3 or later is installed: install Airflow with its constraints file, or pin "
            "'universal-pathlib<0.3' (local paths and file:// URIs work either way)."
        )


def test_upload_sends_each_file_with_a_key_from_task_and_identity(files: Path, hook, ti):
    uploaded = upload_sources(hook, str(files / "*.txt"), ti, conversation_id="conv_1")
    assert [(u["name"], u["size_bytes"], u["source"]) for u in uploaded] == [
        ("a.txt", 2, str(files / "a.txt")),
        ("b.txt", 3, str(files / "b.txt")),
    ]
    assert all(u["id"].startswith("art_") and len(u["sha256"]) == 64 for u in uploaded)
    calls = hook.called("upload_artifact")
    identity = resolve_sources(str(files / "a.txt"))[0].identity
    assert calls[0][1] == {
        "name": "a.txt",
        "conversation_id": "conv_1",
        "idempotency_key": task_idempotency_key(ti, "upload", identity),
    }
    assert calls[0][1]["idempotency_key"] != calls[1][1]["idempotency_key"]


def test_rerun_replays_while_another_run_or_a_changed_file_uploads_anew(files: Path, hook, ti, make_ti):
    first = upload_sources(hook, str(files / "a.txt"), ti)
    retried = upload_sources(hook, str(files / "a.txt"), ti)
    other_run = upload_sources(hook, str(files / "a.txt"), make_ti(run_id="manual__2"))
    (files / "a.txt").write_text("new text")
    changed = upload_sources(hook, str(files / "a.txt"), ti)
    assert retried == first
    assert other_run[0]["id"] != first[0]["id"]
    assert changed[0]["id"] not in (first[0]["id"], other_run[0]["id"])
    assert len(hook.artifacts) == 3


def test_a_bad_source_anywhere_uploads_nothing(files: Path, hook, ti):
    with pytest.raises(NairiConfigurationError, match=r"missing\.txt"):
        upload_sources(hook, [str(files / "a.txt"), str(files / "missing.txt")], ti)
    assert hook.calls == []


def test_a_symlink_keeps_its_name_and_any_iterable_of_sources_works(files: Path):
    (files / "latest.txt").symlink_to(files / "b.txt")
    (source,) = resolve_sources(iter([files / "latest.txt"]))
    assert (source.name, source.path) == ("latest.txt", (files / "b.txt").resolve())
