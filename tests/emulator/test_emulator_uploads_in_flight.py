"""Uploads still streaming: a duplicate Idempotency-Key waits its turn (409), a key revoked mid-upload creates
nothing. The body is sent in two halves over a raw socket so the test controls what is in flight."""

from __future__ import annotations

import socket
from urllib.parse import urlsplit

from emulator_helpers import assert_error, client_for, wait_until_received

from airflow_provider_nairi.emulator import run_emulator

BOUNDARY = "inflightboundary"
HEAD = (f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="slow.bin"\r\n\r\n').encode()
TAIL = f"\r\n--{BOUNDARY}--\r\n".encode()
PAYLOAD = b"x" * 100_000


def start_upload(emu, key: str, idempotency_key: str) -> socket.socket:
    """Send the headers and the first half of a multipart upload; return the open socket."""
    url = urlsplit(emu.base_url)
    request = (
        f"POST {url.path}/artifacts HTTP/1.1\r\nHost: {url.netloc}\r\nX-API-Key: {key}\r\n"
        f"Idempotency-Key: {idempotency_key}\r\nContent-Type: multipart/form-data; boundary={BOUNDARY}\r\n"
        f"Content-Length: {len(HEAD) + len(PAYLOAD) + len(TAIL)}\r\n\r\n"
    ).encode()
    sock = socket.create_connection((url.hostname, url.port), timeout=10)
    sock.sendall(request + HEAD + PAYLOAD[:50_000])
    wait_until_received(emu, idempotency_key)  # logged and in flight: the server is reading the body
    return sock


def finish_upload(sock: socket.socket) -> int:
    sock.sendall(PAYLOAD[50_000:] + TAIL)
    answer = b""
    while b"\r\n\r\n" not in answer:
        answer += sock.recv(65536)
    sock.close()
    return int(answer.split(b" ", 2)[1])


def test_duplicate_key_while_the_first_upload_streams_is_a_conflict():
    with run_emulator() as emu, client_for(emu, emu.api_key) as client:
        sock = start_upload(emu, emu.api_key, "same-upload")
        duplicate = client.post(
            "/artifacts", files={"file": ("b.bin", b"b")}, headers={"Idempotency-Key": "same-upload"}
        )
        assert_error(duplicate, 409, "conflict")
        assert finish_upload(sock) == 201
        replay = client.post(
            "/artifacts", files={"file": ("b.bin", b"b")}, headers={"Idempotency-Key": "same-upload"}
        )
        assert replay.headers["Idempotent-Replayed"] == "true"
        assert replay.json()["data"]["size_bytes"] == len(PAYLOAD)
        assert emu.admin.counts()["artifacts"] == 1


def test_key_revoked_during_an_upload_gets_401_and_creates_nothing():
    with run_emulator() as emu:
        key = emu.admin.create_key(scopes=("read", "write"))
        sock = start_upload(emu, key, "revoked-upload")
        emu.admin.revoke_key(key)
        assert finish_upload(sock) == 401
        assert emu.admin.counts()["artifacts"] == 0
        assert [p for p in emu.core.store.files_dir.iterdir()] == []
