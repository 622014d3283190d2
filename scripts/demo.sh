#!/usr/bin/env bash
# make demo: run example_dags/nairi_conversation.py end to end against the local Nairi emulator and show the
# agent's reply. Needs only `make venv`; everything it writes goes under .airflow/demo (removed by make clean).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BIN="${VENV:-$ROOT/.venv}/bin"
DEMO_HOME="$ROOT/.airflow/demo"
LOG="$DEMO_HOME/dags_test.log"
mkdir -p "$DEMO_HOME"

export AIRFLOW_HOME="$DEMO_HOME"
export AIRFLOW__CORE__DAGS_FOLDER="$ROOT/example_dags"
export AIRFLOW__CORE__LOAD_EXAMPLES=False
export AIRFLOW__OPERATORS__DEFAULT_DEFERRABLE="${DEFERRABLE:-True}"
unset AIRFLOW__CORE__UNIT_TEST_MODE

echo "== Airflow metadata database ($AIRFLOW_HOME)"
"$BIN/airflow" db migrate >"$DEMO_HOME/db_migrate.log" 2>&1 || { tail -n 30 "$DEMO_HOME/db_migrate.log"; exit 1; }

PORT="$("$BIN/python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
KEY="nr_demo_$("$BIN/python" -c 'import secrets; print(secrets.token_hex(16))')"
BASE_URL="http://127.0.0.1:$PORT/api/public/v1"

echo "== Nairi emulator on 127.0.0.1:$PORT (agents take 1 s per turn)"
"$BIN/nairi-emulator" --host 127.0.0.1 --port "$PORT" --key "$KEY:read,write" --turn-latency 1 \
    >"$DEMO_HOME/emulator.log" 2>&1 &
EMULATOR_PID=$!
trap 'kill "$EMULATOR_PID" 2>/dev/null || true; wait "$EMULATOR_PID" 2>/dev/null || true' EXIT

"$BIN/python" - "$BASE_URL" <<'PY'
import sys, time, urllib.error, urllib.request

deadline = time.monotonic() + 30
while True:
    try:
        urllib.request.urlopen(sys.argv[1] + "/me", timeout=1)
    except urllib.error.HTTPError:
        break  # it answers (401 without a key): it is up
    except OSError:
        if time.monotonic() > deadline:
            sys.exit("the emulator did not start within 30 s; see .airflow/demo/emulator.log")
        time.sleep(0.2)
PY

export AIRFLOW_CONN_NAIRI_DEFAULT="$("$BIN/python" -c '
import json, sys
print(json.dumps({"conn_type": "nairi", "host": sys.argv[1], "password": sys.argv[2]}))' "$BASE_URL" "$KEY")"

echo "== airflow dags test nairi_conversation (deferrable=$AIRFLOW__OPERATORS__DEFAULT_DEFERRABLE; log: $LOG)"
STATUS=0
"$BIN/airflow" dags test nairi_conversation >"$LOG" 2>&1 || STATUS=$?

REPLY="$(sed -n '/=== Nairi agent replied/,/=== end of reply ===/p' "$LOG" | sed 's/^.*\(=== Nairi\)/\1/')"
if [[ $STATUS -ne 0 || -z "$REPLY" ]]; then
    tail -n 40 "$LOG"
    echo "== the DAG run did not succeed (exit $STATUS); full log: $LOG" >&2
    exit 1
fi
echo
echo "$REPLY"
echo
echo "== DAG run succeeded"
