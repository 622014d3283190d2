"""How fast the emulator is, beside the same work on bare baselines, in one run.

Prints requests/s of ``GET /conversations/{id}`` (the call every poller makes) next to a bare ASGI
hello-world served by the same uvicorn set-up, and MiB/s of one 1 GiB multipart upload to ``POST /artifacts``
next to a bare socket server that only drains the bytes. Every server runs in its own process on 127.0.0.1;
the client is a raw-socket one (keep-alive, no HTTP library) so that it is not what is measured.

    .venv/bin/python bench/emulator.py [--requests 3000] [--connections 4] [--upload-mib 1024]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request

import uvicorn

from airflow_provider_nairi.emulator.server import uvicorn_config  # same parser, loop and options

KEY = "nr_bench_key_0123456789"
PREFIX = "/api/public/v1"
CHUNK = 1 << 20
ROUNDS = 3
BOUNDARY = "benchboundary7f3a"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_listening(port: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {port}")


# Baselines, run as child processes of this script ------------------------------------------------------
async def hello_app(scope, receive, send):
    """Reads the request body (if any) and answers a small JSON object: uvicorn's own ceiling."""
    if scope["type"] != "http":
        return
    while (await receive()).get("more_body"):
        pass
    body = b'{"success":true,"data":{"hello":"world"}}'
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def serve_hello(port: int) -> None:
    config = uvicorn_config(hello_app, "127.0.0.1", port)  # type: ignore[arg-type]
    config.lifespan = "off"
    uvicorn.Server(config).run()


def serve_drain(port: int) -> None:
    """Read one request's headers, drain Content-Length bytes, answer 200; per connection, forever."""
    server = socket.create_server(("127.0.0.1", port))
    while True:
        conn, _ = server.accept()
        with conn:
            head = b""
            while b"\r\n\r\n" not in head:
                received = conn.recv(65536)
                if not received:  # a probe connection (wait_listening) or a client that gave up
                    break
                head += received
            if b"\r\n\r\n" not in head:
                continue
            header, _, rest = head.partition(b"\r\n\r\n")
            length = next(
                int(line.split(b":")[1])
                for line in header.split(b"\r\n")
                if line.lower().startswith(b"content-length")
            )
            left = length - len(rest)
            buffer = bytearray(1 << 20)
            while left > 0:
                received_size = conn.recv_into(buffer)
                if not received_size:
                    break
                left -= received_size
            conn.sendall(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\n{}")


# The client ---------------------------------------------------------------------------------------------
async def read_response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":")[1])
    return status, await reader.readexactly(length)


async def hammer(port: int, path: str, total: int, connections: int, budget: float) -> float:
    """Requests/s of ``GET path`` over ``connections`` keep-alive connections (bounded in count and time)."""
    request = (
        f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nX-API-Key: {KEY}\r\nUser-Agent: bench\r\n\r\n"
    ).encode()
    done = 0
    deadline = time.monotonic() + budget

    async def one_connection(count: int) -> None:
        nonlocal done
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        for _ in range(count):
            if time.monotonic() > deadline:
                break
            writer.write(request)
            status, _ = await read_response(reader)
            if status != 200:
                raise RuntimeError(f"GET {path}: {status}")
            done += 1
        writer.close()

    started = time.perf_counter()
    await asyncio.gather(*(one_connection(total // connections) for _ in range(connections)))
    return done / (time.perf_counter() - started)


def upload(port: int, path: str, size: int) -> tuple[float, int, bytes]:
    """MiB/s of one multipart upload of ``size`` bytes (a 1 MiB block repeated), status and answer body."""
    preamble = (
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="big.bin"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n"
    ).encode()
    epilogue = f"\r\n--{BOUNDARY}--\r\n".encode()
    head = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nX-API-Key: {KEY}\r\n"
        f"Content-Type: multipart/form-data; boundary={BOUNDARY}\r\n"
        f"Content-Length: {len(preamble) + size + len(epilogue)}\r\nConnection: close\r\n\r\n"
    ).encode()
    block = os.urandom(CHUNK)
    started = time.perf_counter()
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(head + preamble)
        sent = 0
        while sent < size:
            piece = block[: min(CHUNK, size - sent)]
            sock.sendall(piece)
            sent += len(piece)
        sock.sendall(epilogue)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    elapsed = time.perf_counter() - started
    status = int(answer.split(b" ", 2)[1])
    return size / CHUNK / elapsed, status, answer.partition(b"\r\n\r\n")[2]


def child(*args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, *args], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument("--upload-mib", type=int, default=1024)
    parser.add_argument("--serve-hello", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--serve-drain", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_hello:
        serve_hello(args.serve_hello)
        return
    if args.serve_drain:
        serve_drain(args.serve_drain)
        return

    emu_port, hello_port, drain_port = free_port(), free_port(), free_port()
    here = os.path.abspath(__file__)
    children = [
        child(
            "-m",
            "airflow_provider_nairi.emulator.cli",
            "--port",
            str(emu_port),
            "--key",
            f"{KEY}:read,write",
            "--admin-token",
            "bench",
        ),
        child(here, "--serve-hello", str(hello_port)),
        child(here, "--serve-drain", str(drain_port)),
    ]
    try:
        for port in (emu_port, hello_port, drain_port):
            wait_listening(port)
        base = f"http://127.0.0.1:{emu_port}{PREFIX}"

        def call(method: str, path: str, body: dict) -> dict:
            request = urllib.request.Request(
                base + path,
                json.dumps(body).encode(),
                method=method,
                headers={"X-API-Key": KEY, "Content-Type": "application/json"},
            )
            with urllib.request.urlopen(request) as answer:
                return json.loads(answer.read())["data"]

        agent = call("POST", "/agents", {"name": "bench", "instructions": "Be quick."})
        conversation = call("POST", "/conversations", {"agent_id": agent["id"], "message": "hello"})
        target = f"{PREFIX}/conversations/{conversation['id']}"

        # Alternating rounds, best of each: the machine is shared, so load shifts between phases.
        emu_rounds, hello_rounds = [], []
        for _ in range(ROUNDS):
            emu_rounds.append(asyncio.run(hammer(emu_port, target, args.requests, args.connections, 30)))
            hello_rounds.append(asyncio.run(hammer(hello_port, "/", args.requests, args.connections, 30)))
        emu_rps, hello_rps = max(emu_rounds), max(hello_rounds)
        ratio = emu_rps / hello_rps
        print(
            f"GET /conversations/{{id}}: emulator {emu_rps:,.0f} req/s, bare ASGI hello-world "
            f"{hello_rps:,.0f} req/s, ratio {ratio:.2f} ({args.connections} keep-alive connections, "
            f"best of {ROUNDS} alternating rounds of {args.requests})"
        )

        size = args.upload_mib * CHUNK
        emu_mibs, status, body = upload(emu_port, f"{PREFIX}/artifacts", size)
        if status != 201:
            raise RuntimeError(f"upload answered {status}: {body[:200]!r}")
        artifact = json.loads(body)["data"]
        assert artifact["size_bytes"] == size, artifact
        drain_mibs, _, _ = upload(drain_port, "/", size)
        asgi_mibs, _, _ = upload(hello_port, "/", size)
        print(
            f"POST /artifacts ({args.upload_mib} MiB multipart): emulator {emu_mibs:,.0f} MiB/s, bare socket "
            f"drain {drain_mibs:,.0f} MiB/s, ratio {emu_mibs / drain_mibs:.2f}; bare ASGI drain on the same "
            f"uvicorn {asgi_mibs:,.0f} MiB/s, ratio {emu_mibs / asgi_mibs:.2f}"
        )
        delete = urllib.request.Request(
            base + f"/artifacts/{artifact['id']}", method="DELETE", headers={"X-API-Key": KEY}
        )
        urllib.request.urlopen(delete).close()
    finally:
        for process in children:
            process.terminate()
            process.wait(timeout=10)


if __name__ == "__main__":
    main()
