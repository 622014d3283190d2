"""``nairi-emulator``: serve the local Nairi from a shell until Ctrl-C."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

import uvicorn

from airflow_provider_nairi.emulator.app import ADMIN_PREFIX, API_PREFIX, NairiApp
from airflow_provider_nairi.emulator.core import Core
from airflow_provider_nairi.emulator.server import uvicorn_config
from airflow_provider_nairi.emulator.settings import FAULT_KINDS, SCOPES, EmulatorSettings


def key_spec(text: str) -> tuple[str, list[str]]:
    """``nr_abc:read,write`` → ``("nr_abc", ["read", "write"])``; no scopes means read and write."""
    key, _, scopes = text.partition(":")
    chosen = [s for s in scopes.split(",") if s] or list(SCOPES)
    if not key or set(chosen) - set(SCOPES):
        raise argparse.ArgumentTypeError(f"expected KEY[:read,write], got {text!r}")
    return key, chosen


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="nairi-emulator", description="A local Nairi public API for tests and demos."
    )
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8765)
    p.add_argument(
        "--key",
        action="append",
        type=key_spec,
        default=[],
        metavar="KEY[:SCOPES]",
        help="seed a key, e.g. nr_test:read,write (repeatable); none: one read-write key is made",
    )
    p.add_argument("--state-dir", help="keep state (SQLite and files) here across restarts")
    p.add_argument("--admin-token", default="", help="token of the admin API (default: random, printed)")
    p.add_argument("--turn-latency", type=float, default=EmulatorSettings.turn_latency)
    p.add_argument("--video-delay", type=float, default=EmulatorSettings.video_delay)
    p.add_argument("--upload-limit", type=int, default=EmulatorSettings.upload_limit, metavar="BYTES")
    p.add_argument(
        "--rate-limit", type=int, default=EmulatorSettings.rate_limit, help="requests per key per window"
    )
    p.add_argument("--rate-window", type=float, default=EmulatorSettings.rate_window, metavar="SECONDS")
    p.add_argument("--fault-rate", type=float, default=0.0)
    p.add_argument("--fault-kinds", nargs="+", choices=FAULT_KINDS, default=list(FAULT_KINDS))
    p.add_argument("--fault-seed", type=int)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        settings = EmulatorSettings(
            turn_latency=args.turn_latency,
            video_delay=args.video_delay,
            upload_limit=args.upload_limit,
            rate_limit=args.rate_limit,
            rate_window=args.rate_window,
            keys=args.key,
            admin_token=args.admin_token,
            state_dir=args.state_dir,
            fault_rate=args.fault_rate,
            fault_kinds=args.fault_kinds,
            fault_seed=args.fault_seed,
        )
    except ValueError as error:
        print(f"nairi-emulator: {error}", file=sys.stderr)
        return 2
    core = Core(settings)
    origin = f"http://{args.host}:{args.port}"
    print(f"Nairi emulator on {origin}{API_PREFIX}", flush=True)
    if not args.key:
        print(f"API key (read, write): {core.api_key}", flush=True)
    if not args.admin_token:
        print(f"Admin API: {origin}{ADMIN_PREFIX} with X-Admin-Token: {core.admin_token}", flush=True)
    try:
        uvicorn.Server(uvicorn_config(NairiApp(core), args.host, args.port)).run()
    finally:
        core.store.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
