#!/usr/bin/env bash
# The API against its own OpenAPI document: schemathesis (from PyPI, in a venv
# under .cache) runs against a live stack (`osapi start`: embedded NATS, the
# API and one agent) for a bounded time, with a token that can read and make
# jobs but cannot change the host or reach the network (no node:write,
# network:*, command:execute, service:write, time:write, power:write). The
# log follow is left out: a stream without end has nothing for schemathesis
# to check (the integration tests follow it). Any failure of the four checks
# fails the run.
#
#   CONFORMANCE_SECONDS (default 60) bounds the fuzzing.
#   The osapi binaries come from ${CARGO_TARGET_DIR:-target}/debug (built first).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:/usr/sbin:$PATH"
bin=${CARGO_TARGET_DIR:-target}/debug
seconds=${CONFORMANCE_SECONDS:-60}
schemathesis_version=4.32.5

venv=$PWD/.cache/schemathesis-$schemathesis_version
if [ ! -x "$venv/bin/st" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet "schemathesis==$schemathesis_version"
fi

work=$(mktemp -d)
pid=
cleanup() {
  [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
api_port=$(free_port)
nats_port=$(free_port)
. scripts/stack-config.sh
write_stack_config "$work" "$api_port" "$nats_port"
# This host's system bus is out of reach: reads come from procfs (D-Bus
# reads answer `unavailable`), and nothing can be changed even if a write
# got through.
DBUS_SYSTEM_BUS_ADDRESS=unix:path=$work/no-system-bus \
  "$bin/osapi" -f "$work/osapi.yaml" start >"$work/stack.log" 2>&1 &
pid=$!
for _ in $(seq 1 150); do
  curl -sf "http://127.0.0.1:$api_port/health/ready" >/dev/null && break
  kill -0 "$pid" 2>/dev/null || { cat "$work/stack.log"; exit 1; }
  sleep 0.2
done
curl -sf "http://127.0.0.1:$api_port/health/ready" >/dev/null \
  || { echo "the stack did not become ready" >&2; cat "$work/stack.log"; exit 1; }
token=$("$bin/osapi" -f "$work/osapi.yaml" token generate -r none -u conformance --ttl 1h \
  -p node:read -p service:read -p job:read -p job:write -p agent:read -p audit:read -p health:read \
  -p time:read -p log:read -p power:read -p sysctl:read -p process:read -p cert:read -p user:read -p file:read)

# From the scratch directory: schemathesis keeps a cache in its working directory.
# One worker: with two threads, hypothesis' ast.parse hits CPython 3.11's "AST
# constructor recursion depth mismatch" SystemError now and then (a
# threading bug fixed in later Pythons), which fails the run for nothing.
cd "$work"
"$venv/bin/st" run "http://127.0.0.1:$api_port/api/v1/openapi.json" \
  --header "Authorization: Bearer $token" \
  --checks not_a_server_error,status_code_conformance,response_schema_conformance,content_type_conformance \
  --max-time "$seconds" --seed 1 --workers 1 --request-timeout 35 \
  --exclude-path /api/v1/log/follow \
  --warnings off
