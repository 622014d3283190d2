"""The streaming multipart reader, fed in every chunking: file bytes that look like boundaries survive."""

from __future__ import annotations

import asyncio
import hashlib
import random

import pytest
from starlette.requests import Request

from airflow_provider_nairi.emulator.protocol import ApiError
from airflow_provider_nairi.emulator.uploads import receive_upload

BOUNDARY = b"xyzBOUNDARY123"
# Seeded bytes: random ones could complete a boundary (a "3" after "BOUNDARY12" did, one run in 256).
NOISE = random.Random(1234).randbytes(70_000)
NEAR_MISSES = b"a\r\n--xyzBOUNDARY12x" + NOISE[:3000] + b"\r\n--xyzBOUNDARY1\r\n--xyzBOUNDARY12"


def body(payload: bytes) -> bytes:
    return (
        b"--" + BOUNDARY + b'\r\nContent-Disposition: form-data; name="name"\r\n\r\nhello\r\n'
        b"--" + BOUNDARY + b'\r\nContent-Disposition: form-data; name="file"; filename="a.bin"\r\n'
        b"Content-Type: application/x-test\r\n\r\n" + payload + b"\r\n--" + BOUNDARY + b"--\r\n"
    )


def read(raw: bytes, sizes, files_dir, limit=1 << 30):
    pieces, start = [], 0
    while start < len(raw):
        size = next(sizes)
        pieces.append(raw[start : start + size])
        start += size
    messages = [{"type": "http.request", "body": p, "more_body": True} for p in pieces]
    messages.append({"type": "http.request", "body": b"", "more_body": False})

    async def receive():
        return messages.pop(0)

    headers = [(b"content-type", b"multipart/form-data; boundary=" + BOUNDARY)]
    request = Request({"type": "http", "method": "POST", "headers": headers}, receive)
    return asyncio.run(receive_upload(request, files_dir, limit, ("name",)))


def constant(n):
    while True:
        yield n


def randomly(seed):
    rng = random.Random(seed)
    while True:
        yield rng.randint(1, 400)


@pytest.mark.parametrize("payload", [b"", b"x", NEAR_MISSES, NOISE + b"\r\n--xyzBOUNDARY12"])
@pytest.mark.parametrize("sizes", [1, 17, 18, 19, 64, 65536, "random"])
def test_every_chunking_gives_the_same_file(tmp_path, payload, sizes):
    assert b"\r\n--" + BOUNDARY not in payload  # the file holds near misses only
    chunks = randomly(len(payload)) if sizes == "random" else constant(sizes)
    upload = read(body(payload), chunks, tmp_path)
    assert upload.path.read_bytes() == payload
    assert upload.size == len(payload)
    assert upload.sha256 == hashlib.sha256(payload).hexdigest()
    assert upload.fields == {"name": "hello"}
    assert (upload.filename, upload.content_type) == ("a.bin", "application/x-test")


def test_limit_is_checked_while_reading_and_leaves_no_file(tmp_path):
    with pytest.raises(ApiError) as caught:
        read(body(bytes(5000)), constant(1000), tmp_path, limit=4999)
    assert caught.value.status == 413
    assert list(tmp_path.iterdir()) == []
