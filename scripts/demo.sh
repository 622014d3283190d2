#!/usr/bin/env bash
# make demo: start the local emulator and walk one conversation through it (replaced by the example DAG run).
set -euo pipefail
cd "$(dirname "$0")/.."
exec .venv/bin/python -c 'print("demo: not ready yet")'
