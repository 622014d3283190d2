"""Downloads through a proxy that breaks bodies: a cut resumes with ``Range``; corrupted bytes are refused."""

from __future__ import annotations

import hashlib
import socket
import threading
from urllib.parse import urlsplit

import pytest
from airflow.providers.common.compat.sdk import AirflowException, AirflowFailException

from airflow_provider_nairi.hooks.nairi import NairiHook
from airflow_provider_nairi.operators.content import NairiDownloadArtifactsOperator
from airflow_provider_nairi.testing import connection_env_var, connection_json

CUT_AFTER = 1_500_000


def _read_request(conn: socket.socket) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            return data
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(
        (
            int(line.split(b":")[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length:")
        ),
        0,
    )
    while len(body) < length:
        body += conn.recv(65536)
    return head + b"\r\n\r\n" + body


class CuttingProxy:
    """Forwards one request per connection to ``upstream``; the first artifact-content answer without a
    ``Range`` header is cut after :data:`CUT_AFTER` body bytes (the connection then closes). With
    ``corrupt=True`` every artifact-content answer has its last byte changed instead."""

    def __init__(self, upstream: tuple[str, int], corrupt: bool = False) -> None:
        self.upstream = upstream
        self.corrupt = corrupt
        self.server = socket.create_server(("127.0.0.1", 0))
        self.server.settimeout(0.2)
        self.port = self.server.getsockname()[1]
        self.ranges: list[str] = []
        self.cut = False
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while not self.stopped.is_set():
            try:
                conn, _ = self.server.accept()
            except TimeoutError:
                continue
            with conn:
                conn.settimeout(5)
                self._handle(conn)

    def _handle(self, conn: socket.socket) -> None:
        request = _read_request(conn)
        head, _, body = request.partition(b"\r\n\r\n")
        lines = [line for line in head.split(b"\r\n") if not line.lower().startswith(b"connection:")]
        is_content = lines[0].startswith(b"GET ") and b"/content " in lines[0]
        ranges = [
            line.split(b":", 1)[1].strip().decode() for line in lines if line.lower().startswith(b"range:")
        ]
        if is_content:
            self.ranges.extend(ranges or ["<none>"])
        with socket.create_connection(self.upstream, timeout=5) as upstream:
            upstream.sendall(b"\r\n".join([*lines, b"Connection: close"]) + b"\r\n\r\n" + body)
            answer = b""
            while chunk := upstream.recv(65536):
                answer += chunk
        if is_content and self.corrupt:
            answer = answer[:-1] + bytes([answer[-1] ^ 0xFF])
        elif is_content and not ranges and not self.cut:
            self.cut = True
            answer_head, _, answer_body = answer.partition(b"\r\n\r\n")
            answer = answer_head + b"\r\n\r\n" + answer_body[:CUT_AFTER]
        conn.sendall(answer)

    def close(self) -> None:
        self.stopped.set()
        self.thread.join(5)
        self.server.close()


def start_proxy(emulator, monkeypatch, corrupt: bool = False):
    url = urlsplit(emulator.base_url)
    proxy = CuttingProxy((url.hostname, url.port), corrupt=corrupt)
    proxied = emulator.base_url.replace(f":{url.port}/", f":{proxy.port}/")
    monkeypatch.setenv(connection_env_var("nairi_proxy"), connection_json(proxied, emulator.api_key))
    return proxy


@pytest.fixture
def proxy(nairi_emulator, monkeypatch):
    cutting = start_proxy(nairi_emulator, monkeypatch)
    yield cutting
    cutting.close()


@pytest.fixture
def corrupting_proxy(nairi_emulator, monkeypatch):
    corrupting = start_proxy(nairi_emulator, monkeypatch, corrupt=True)
    yield corrupting
    corrupting.close()


def test_a_download_cut_mid_file_resumes_with_range_and_is_verified(nairi_emulator, proxy, tmp_path, ti):
    payload = bytes(range(256)) * 12_288  # 3 MiB: the client writes in blocks of up to 1 MiB
    source = tmp_path / "big.bin"
    source.write_bytes(payload)
    artifact = NairiHook().client.upload_artifact(source, name="big.bin")
    op = NairiDownloadArtifactsOperator(
        task_id="dl", artifact_ids=[artifact["id"]], destination=str(tmp_path / "out"), conn_id="nairi_proxy"
    )
    (written,) = op.execute({"ti": ti})
    assert proxy.cut
    first, resumed = proxy.ranges
    assert first == "<none>"
    offset = int(resumed.removeprefix("bytes=").removesuffix("-"))
    assert 0 < offset <= CUT_AFTER  # the second request asked only for what was missing
    with open(written, "rb") as file:
        assert hashlib.sha256(file.read()).hexdigest() == artifact["sha256"]


def test_corrupted_bytes_fail_the_try_for_a_retry_and_leave_no_file(
    nairi_emulator, corrupting_proxy, tmp_path, ti
):
    source = tmp_path / "small.txt"
    source.write_bytes(b"exact bytes matter")
    artifact = NairiHook().client.upload_artifact(source, name="small.txt")
    out = tmp_path / "out"
    op = NairiDownloadArtifactsOperator(
        task_id="dl", artifact_ids=[artifact["id"]], destination=str(out), conn_id="nairi_proxy"
    )
    with pytest.raises(AirflowException) as error:
        op.execute({"ti": ti})
    assert not isinstance(error.value, AirflowFailException)  # Airflow's retries apply
    assert "sha256" in str(error.value)
    assert list(out.iterdir()) == []
