"""Downloads from a hostile server: files stay inside ``destination``, no bytes are lost, resumes are checked.

Every case runs the real client over real HTTP against :class:`download_servers.ArtifactServer` (raw bytes on
loopback, one answer per connection) and asserts what the user sees: the Airflow outcome and the Nairi error
under it, a message that names the cause, the files written (none outside the destination, none partial) and
their exact bytes.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import pytest
from airflow.providers.common.compat.sdk import AirflowException, AirflowFailException, ObjectStoragePath
from download_servers import (
    API_KEY,
    ArtifactServer,
    all_files,
    answer,
    artifact,
    cut,
    rest,
    whole,
)

from airflow_provider_nairi.client.transfer import NAME_MAX, child_path, file_names
from airflow_provider_nairi.exceptions import NairiConfigurationError, NairiError, NairiServerError
from airflow_provider_nairi.hooks.nairi import NairiHook
from airflow_provider_nairi.operators.content import NairiDownloadArtifactsOperator
from airflow_provider_nairi.testing import connection_env_var

CONN_ID = "nairi_hostile"
#: 3 MiB: the client writes whole 1 MiB blocks, so a cut after 2.5 MB leaves 2 MiB to resume from.
BIG = hashlib.sha256(b"seed").digest() * (3 * (1 << 20) // 32)
CUT_AT = 2_500_000
RESUME_AT = 2 << 20


@pytest.fixture
def serve(monkeypatch):
    """``serve(artifacts, contents, **extra)``: a hostile server behind the connection ``nairi_hostile``."""
    servers: list[ArtifactServer] = []

    def start(
        artifacts: list[dict[str, Any]],
        contents: dict[str, Any] | None = None,
        lookups: dict[str, Any] | None = None,
        **extra: Any,
    ) -> Any:
        server = ArtifactServer(artifacts, contents or {}, lookups or {})
        servers.append(server)
        monkeypatch.setenv(connection_env_var(CONN_ID), server.connection_json(**extra))
        return server

    yield start
    for server in servers:
        server.close()


def download(destination: Any, **kwargs: Any) -> list[str]:
    operator = NairiDownloadArtifactsOperator(
        task_id="dl", destination=destination, conn_id=CONN_ID, **{"conversation_id": "conv_1", **kwargs}
    )
    return operator.execute({"ti": None})


def failure(destination: Any, **kwargs: Any) -> tuple[BaseException, NairiError]:
    """The Airflow exception a download ends with, and the Nairi error under it."""
    with pytest.raises(AirflowException) as caught:
        download(destination, **kwargs)
    assert isinstance(caught.value.__cause__, NairiError), repr(caught.value.__cause__)
    assert API_KEY not in str(caught.value)
    return caught.value, caught.value.__cause__


def hostile_set(*names: Any) -> tuple[list[dict[str, Any]], dict[str, bytes]]:
    """One artifact per name (ids art_1, art_2...), each with its own bytes."""
    contents = {f"art_{i}": f"bytes of artifact {i}: {name!r}".encode() for i, name in enumerate(names, 1)}
    return [artifact(f"art_{i}", name, contents[f"art_{i}"]) for i, name in enumerate(names, 1)], contents


def assert_every_artifact_kept(paths: list[str], contents: dict[str, bytes], dest: Path) -> None:
    """One distinct file per artifact, directly in ``dest``, holding exactly that artifact's bytes."""
    assert len(set(paths)) == len(contents)
    assert all(Path(p).parent == dest for p in paths)
    assert [Path(p).read_bytes() for p in paths] == list(contents.values())
    assert len(all_files(dest.parent)) == len(contents)  # nothing beside them, above them or half-written


# -- names ---------------------------------------------------------------------------------------------------


def test_path_traversal_names_land_inside_the_destination(serve, tmp_path):
    artifacts, contents = hostile_set(
        "../../escape.sh", "/etc/cron.d/job", "..\\..\\windows.ini", "sub/dir/deep.txt", "~/.bashrc"
    )
    serve(artifacts, contents)
    dest = tmp_path / "box" / "dest"
    paths = download(str(dest))
    assert [Path(p).name for p in paths] == ["escape.sh", "job", "windows.ini", "deep.txt", ".bashrc"]
    assert_every_artifact_kept(paths, contents, dest)


def test_names_a_file_system_cannot_hold_get_a_fallback_and_the_others_still_download(serve, tmp_path):
    long_name = "é" * 300 + ".csv"  # 604 bytes of UTF-8
    artifacts, contents = hostile_set(
        "..", "", ".", None, 42, "nul\x00byte.txt", "line\nbreak\r.txt", "bad\ud800.txt", long_name, "ok.txt"
    )
    serve(artifacts, contents)
    dest = tmp_path / "dest"
    paths = download(str(dest))
    names = [Path(p).name for p in paths]
    assert names[:8] == [
        "art_1",
        "art_2",
        "art_3",
        "art_4",
        "art_5",
        "nul_byte.txt",
        "line_break_.txt",
        "bad_.txt",
    ]
    assert len(os.fsencode(names[8])) <= NAME_MAX and names[8].endswith(".csv") and names[8].startswith("éé")
    assert names[9] == "ok.txt"
    assert_every_artifact_kept(paths, contents, dest)


def test_a_spoofing_right_to_left_override_is_neutralised(serve, tmp_path):
    artifacts, contents = hostile_set("invoice\u202egpj.exe")  # shows as "invoiceexe.jpg"
    serve(artifacts, contents)
    (path,) = download(str(tmp_path / "dest"))
    assert Path(path).name == "invoice_gpj.exe"


def test_hostile_ids_used_as_fallback_names_stay_inside_too(serve, tmp_path):
    contents = {"../../../outside": b"first", "a/b\\c": b"second", "nul\x00": b"third", "%2e%2e": b"fourth"}
    server = serve([artifact(i, "..", c) for i, c in contents.items()], contents)
    dest = tmp_path / "dest"
    paths = download(str(dest))
    assert [Path(p).name for p in paths] == ["outside", "c", "nul_", "%2e%2e"]
    assert_every_artifact_kept(paths, contents, dest)
    assert len(server.requests) == 1 + len(contents)  # the list, then one content request each


@pytest.mark.parametrize("bad_id", ["..", ".", ""])
def test_an_id_that_would_change_the_request_path_is_never_sent(serve, tmp_path, bad_id):
    artifacts, contents = hostile_set("a.txt", "b.txt")
    artifacts[1]["id"] = bad_id or "art_2"
    artifacts.append({**artifacts[0], "id": bad_id})
    server = serve(artifacts, contents)
    with pytest.raises(AirflowException) as caught:
        download(str(tmp_path / "dest"))
    error = caught.value.__cause__
    assert isinstance(error, NairiError) and error.code in ("invalid_path", "malformed_answer")
    assert [r.path for r in server.requests if r.path != "/v1/artifacts"] in (
        [],
        ["/v1/artifacts/art_1/content"],
    )


def test_an_artifact_answer_cannot_redirect_the_download_to_another_id(serve, tmp_path):
    contents = {"art_1": b"what was asked for", "art_2": b"what the server would rather send"}
    lookups = {"art_1": artifact("art_2", "../n.txt", contents["art_1"]), "art_3": "not an artifact"}
    server = serve([], contents, lookups)
    (path,) = download(str(tmp_path / "dest"), conversation_id=None, artifact_ids=["art_1"])
    assert Path(path).read_bytes() == contents["art_1"] and Path(path).name == "n.txt"
    assert server.content_requests("art_1") == [None] and server.content_requests("art_2") == []
    _, error = failure(str(tmp_path / "other"), conversation_id=None, artifact_ids=["art_3"])
    assert isinstance(error, NairiServerError) and error.retryable
    assert not (tmp_path / "other").exists()


def test_an_id_or_name_of_dot_dot_never_reaches_another_endpoint(serve):
    server = serve([])
    for call in (
        lambda hook: hook.client.delete_vault_secret("vlt_1", ".."),  # would be DELETE /vaults/vlt_1
        lambda hook: hook.client.delete_agent("."),  # would be DELETE /agents
        lambda hook: hook.client.get_artifact(""),  # would be GET /artifacts, the list
    ):
        with pytest.raises(NairiConfigurationError, match="cannot be an id or a name in an API path"):
            call(NairiHook(CONN_ID))
    assert server.requests == []


def test_clashing_names_never_share_a_file_and_no_bytes_are_lost(serve, tmp_path):
    artifacts, contents = hostile_set(
        "Report.pdf", "report.pdf", "sub/report.pdf", "art_1-Report.pdf", "x.txt"
    )
    serve(artifacts, contents)
    dest = tmp_path / "dest"
    paths = download(str(dest))
    assert [Path(p).name for p in paths] == [
        "art_1-Report.pdf",
        "art_2-report.pdf",
        "art_3-report.pdf",
        "art_1-Report-2.pdf",  # its own name was taken by art_1's prefixed one (ignoring case)
        "x.txt",
    ]
    assert len({p.casefold() for p in paths}) == len(paths)  # distinct on macOS and Windows too
    assert_every_artifact_kept(paths, contents, dest)
    again = download(str(tmp_path / "again"), conversation_id=None, artifact_ids=["art_5", "art_5"])
    assert [Path(p).name for p in again] == ["art_5-x.txt", "art_5-x-2.txt"]
    assert [Path(p).read_bytes() for p in again] == [contents["art_5"]] * 2


def test_a_name_like_the_providers_temporary_files_cannot_replace_another_download(serve, tmp_path):
    artifacts, contents = hostile_set("a.txt", ".nairi-0123.part", ".nairi-whatever.partial")
    serve(artifacts, contents)
    dest = tmp_path / "dest"
    paths = download(str(dest))
    assert [Path(p).name for p in paths] == ["a.txt", "art_2", "art_3"]
    assert_every_artifact_kept(paths, contents, dest)


def test_object_storage_destinations_get_the_same_names_and_no_partial_objects(serve, tmp_path):
    artifacts, contents = hostile_set("../../../../escape.txt", "x.txt", "X.txt", "..")
    serve(artifacts, contents)
    dest = tmp_path / "bucket" / "results"
    paths = download(f"file://{dest}")
    assert [path.rsplit("/", 1)[1] for path in paths] == ["escape.txt", "art_2-x.txt", "art_3-X.txt", "art_4"]
    assert [ObjectStoragePath(p).read_bytes() for p in paths] == list(contents.values())
    assert all_files(tmp_path) == sorted(f"bucket/results/{p.rsplit('/', 1)[1]}" for p in paths)


def test_a_folder_in_the_way_is_a_named_conflict_even_with_overwrite(serve, tmp_path):
    artifacts, contents = hostile_set("report.txt", "other.txt")
    serve(artifacts, contents)
    (tmp_path / "report.txt").mkdir()
    with pytest.raises(AirflowFailException, match=r"report\.txt already exist") as caught:
        download(str(tmp_path), overwrite=True)
    assert isinstance(caught.value.__cause__, NairiConfigurationError)
    assert not (tmp_path / "other.txt").exists()  # refused before the first byte


def test_the_final_path_check_refuses_anything_but_a_plain_child(tmp_path):
    assert child_path(tmp_path, "ok.txt") == tmp_path / "ok.txt"
    assert child_path(ObjectStoragePath("memory://bucket/dl"), "ok.txt").name == "ok.txt"
    for bad in ("../x", "a/b", "..", ".", "", "nul\x00", "é" * 200, ".nairi-x.part"):
        with pytest.raises(NairiError, match="not a plain file name") as caught:
            child_path(tmp_path, bad)
        assert caught.value.code == "unsafe_path"
    names = file_names([("a" * 300 + ".txt", "art_1"), ("a" * 300 + ".txt", "art_2" * 100)])
    assert len(set(names)) == 2 and all(len(n.encode()) <= NAME_MAX and n.endswith(".txt") for n in names)


def test_an_artifact_without_a_usable_size_is_a_malformed_answer(serve, tmp_path):
    artifacts, contents = hostile_set("a.txt")
    artifacts[0]["size_bytes"] = "lots"
    serve(artifacts, contents)
    outcome, error = failure(str(tmp_path / "dest"))
    assert type(error) is NairiServerError and error.code == "malformed_answer"
    assert "size_bytes 'lots'" in str(outcome)
    assert not (tmp_path / "dest" / "a.txt").exists()


# -- resumed downloads ---------------------------------------------------------------------------------------


def resumed(claimed: str | None) -> list[Any]:
    """A first answer cut at CUT_AT, then a 206 from RESUME_AT claiming ``claimed``, then the whole file."""
    return [cut(BIG, CUT_AT), rest(BIG, RESUME_AT, claimed=claimed), whole(BIG)]


@pytest.mark.parametrize(
    ("claimed", "why"),
    [
        (f"bytes 0-{len(BIG) - 1}/{len(BIG)}", "wrong start"),
        (f"bytes {RESUME_AT + 7}-{len(BIG) - 1}/{len(BIG)}", "start past the byte asked for"),
        (f"bytes {RESUME_AT}-{len(BIG) + 9}/{len(BIG) + 10}", "wrong total"),
        ("", "no Content-Range at all"),
        ("bytes */junk", "garbage Content-Range"),
    ],
)
def test_a_206_that_is_not_the_range_asked_for_restarts_from_zero(serve, tmp_path, claimed, why):
    server = serve([artifact("art_1", "big.bin", BIG, sha256=False)], {"art_1": resumed(claimed)})
    paths = download(str(tmp_path / "dest"))
    assert server.content_requests("art_1") == [None, f"bytes={RESUME_AT}-", None], why
    assert Path(paths[0]).read_bytes() == BIG  # not stitched from the wrong bytes
    assert all_files(tmp_path) == ["dest/big.bin"]


def test_a_good_206_continues_where_the_cut_left_off(serve, tmp_path):
    server = serve([artifact("art_1", "big.bin", BIG, sha256=False)], {"art_1": resumed(None)})
    paths = download(str(tmp_path / "dest"))
    assert server.content_requests("art_1") == [None, f"bytes={RESUME_AT}-"]
    assert Path(paths[0]).read_bytes() == BIG


def test_a_200_to_a_ranged_request_restarts_without_doubling_bytes(serve, tmp_path):
    server = serve(
        [artifact("art_1", "big.bin", BIG, sha256=False)], {"art_1": [cut(BIG, CUT_AT), whole(BIG)]}
    )
    paths = download(str(tmp_path / "dest"))
    assert server.content_requests("art_1") == [None, f"bytes={RESUME_AT}-"]
    assert Path(paths[0]).read_bytes() == BIG


def test_a_server_that_keeps_answering_the_wrong_range_fails_typed_and_leaves_no_file(serve, tmp_path):
    wrong = rest(BIG, RESUME_AT, claimed=f"bytes 5-{len(BIG) - 1}/{len(BIG)}")
    serve([artifact("art_1", "big.bin", BIG)], {"art_1": [cut(BIG, CUT_AT), wrong, cut(BIG, CUT_AT), wrong]})
    outcome, error = failure(str(tmp_path / "dest"))
    assert not isinstance(outcome, AirflowFailException)  # Airflow's retries apply
    assert type(error) is NairiServerError and error.code == "bad_content_range"
    assert f"asked for the bytes from {RESUME_AT} on, the server sent 'bytes 5-" in str(outcome)
    assert all_files(tmp_path) == []


# -- byte counts without a checksum --------------------------------------------------------------------------


def unverifiable(content: bytes, **fields: Any) -> list[dict[str, Any]]:
    """Metadata without sha256 (and the server sends no ETag): only the byte count can catch a bad body."""
    return [artifact("art_1", "data.bin", content, sha256=False, **fields)]


def test_a_body_that_always_ends_early_is_a_typed_error_not_a_short_file(serve, tmp_path):
    content = b"0123456789" * 100
    short = answer(200, {}, content[:600], length=False)  # no Content-Length: the close ends it
    server = serve(unverifiable(content), {"art_1": [short]})  # to a Range too: a 200 restarts, ends early
    outcome, error = failure(str(tmp_path / "dest"))
    assert type(error) is NairiServerError and error.code == "incomplete_body"
    assert "ended after 600 of the 1000 bytes announced" in str(outcome)
    assert server.content_requests("art_1")[1] == "bytes=600-"  # it did try to resume first
    assert all_files(tmp_path) == []


def test_a_body_that_ends_early_once_is_resumed_to_the_exact_bytes(serve, tmp_path):
    content = b"0123456789" * 100
    short = answer(200, {}, content[:600], length=False)
    server = serve(unverifiable(content), {"art_1": [short, rest(content, 600)]})
    paths = download(str(tmp_path / "dest"))
    assert server.content_requests("art_1") == [None, "bytes=600-"]
    assert Path(paths[0]).read_bytes() == content


def test_a_body_longer_than_announced_is_a_typed_error(serve, tmp_path):
    content = b"exactly these bytes"
    longer = answer(200, {}, content + b" and some more the server slipped in", length=False)
    serve(unverifiable(content), {"art_1": [longer]})
    outcome, error = failure(str(tmp_path / "dest"))
    assert type(error) is NairiServerError and error.code == "size_mismatch"
    assert f"longer than the {len(content)} bytes announced" in str(outcome)
    assert all_files(tmp_path) == []


def test_a_content_length_that_disagrees_with_size_bytes_is_a_typed_error(serve, tmp_path):
    content = b"twelve bytes"
    serve(unverifiable(content), {"art_1": [whole(content[:10])]})
    outcome, error = failure(str(tmp_path / "dest"))
    assert type(error) is NairiServerError and error.code == "size_mismatch"
    assert "announced a file of 10 bytes, 12 bytes were announced before" in str(outcome)
    assert all_files(tmp_path) == []


def test_the_hook_alone_checks_the_count_a_content_length_announced(serve, tmp_path):
    content = b"0123456789" * 100
    bad_206 = rest(content, 0, claimed=f"bytes 0-999/{len(content)}")  # a 206 to no Range, start 0: accepted
    serve(unverifiable(content), {"art_1": [bad_206]})
    target = tmp_path / "out.bin"
    assert NairiHook(CONN_ID).client.download_artifact("art_1", target) == len(content)
    assert target.read_bytes() == content
    truncated = answer(200, {"Content-Length": "1000"}, content[:400], length=False)
    serve(unverifiable(content), {"art_1": [truncated]})
    with pytest.raises(NairiError) as caught:
        NairiHook(CONN_ID).client.download_artifact("art_1", tmp_path / "second.bin")
    assert caught.value.retryable  # a broken body: retried, then Airflow's retries
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.bin"]


def test_the_hook_writes_to_any_name_the_file_system_holds_and_refuses_a_folder(serve, tmp_path):
    content = b"plain bytes"
    serve(unverifiable(content), {"art_1": content})
    longest = tmp_path / ("n" * NAME_MAX)  # its temporary name must not be longer than the name itself
    assert NairiHook(CONN_ID).client.download_artifact("art_1", longest, expected_size=len(content)) == len(
        content
    )
    assert longest.read_bytes() == content
    folder = tmp_path / "folder"
    folder.mkdir()
    with pytest.raises(NairiConfigurationError, match=r"folder is a folder; give the path of the file"):
        NairiHook(CONN_ID).client.download_artifact("art_1", folder)
    assert all_files(tmp_path) == [longest.name]
