#!/usr/bin/env bash
# The embedded nats-server's memory under load (issue 13, item 5): a
# one-host stack (`osapi start`: the supervisor, its nats-server child, the
# API and an agent) on loopback, then JOBS jobs (default 5,000) through the
# API from 8 clients at once (`GET /node/uptime`, each a job: announcement,
# events, result). nats-server's VmRSS (anonymous part in brackets) is
# printed idle, right after the load and 60 s later, once with the
# supervisor's default GOMEMLIMIT and once with GOMEMLIMIT=off (LIMITS="…"
# lists others: LIMITS="default 32MiB off").
#
#   benches/nats-memory.sh [JOBS]
#
# TEST_NATS_SERVER picks the nats-server (default: the one on PATH, Debian's
# /usr/sbin first). Uses the release binaries when built (`cargo build --release --bins`),
# else the debug ones. Prints figures; asserts nothing.
set -euo pipefail
shopt -s inherit_errexit
cd "$(dirname "$0")/.."
jobs=${1:-5000}
bin=${CARGO_TARGET_DIR:-target}/release
[ -x "$bin/osapi" ] || bin=${CARGO_TARGET_DIR:-target}/debug
[ -x "$bin/osapi" ] || { echo "no osapi binary: cargo build --bins" >&2; exit 1; }
# TEST_NATS_SERVER picks the nats-server binary, as for the other benchmarks.
export PATH="${TEST_NATS_SERVER:+$(dirname "$TEST_NATS_SERVER"):}/usr/sbin:$PATH"
nats_version=$(nats-server --version)

rss() {
  awk '/^VmRSS/ {r=$2} /^RssAnon/ {a=$2} END {printf "%.1f (%.1f)", r/1024, a/1024}' "/proc/$1/status"
}

run() {
  local limit=$1 dir api_port nats_port stack nats_pid idle loaded later
  dir=$(mktemp -d)
  api_port=$((20000 + RANDOM % 20000))
  nats_port=$((20000 + RANDOM % 20000))
  . scripts/stack-config.sh
  (umask 077; write_stack_config "$dir" "$api_port" "$nats_port" "$dir/admin.token")
  "$bin/osapi" -f "$dir/osapi.yaml" token generate -r admin -u bench --ttl 1h > "$dir/admin.token"
  if [ "$limit" = default ]; then
    env -u GOMEMLIMIT "$bin/osapi" -f "$dir/osapi.yaml" start > "$dir/stack.log" 2>&1 &
  else
    GOMEMLIMIT=$limit "$bin/osapi" -f "$dir/osapi.yaml" start > "$dir/stack.log" 2>&1 &
  fi
  stack=$!
  for _ in $(seq 1 300); do
    curl -sf "http://127.0.0.1:$api_port/health/ready" >/dev/null 2>&1 && break
    sleep 0.1
  done
  nats_pid=$(pgrep -f "nats-server -c $dir/" | head -n1)
  [ -n "$nats_pid" ] || { cat "$dir/stack.log" >&2; kill "$stack"; return 1; }
  # The agent has announced itself once the first job answers.
  for _ in $(seq 1 100); do
    curl -sf -H "Authorization: Bearer $(cat "$dir/admin.token")" \
      "http://127.0.0.1:$api_port/api/v1/node/uptime" >/dev/null 2>&1 && break
    sleep 0.1
  done
  sleep 5
  idle=$(rss "$nats_pid")
  seq 1 "$jobs" | xargs -P 8 -n 50 sh -c '
    for _ in "$@"; do
      curl -sf -o /dev/null -H "Authorization: Bearer $(cat "'"$dir"'/admin.token")" \
        "http://127.0.0.1:'"$api_port"'/api/v1/node/uptime" || echo failed >&2
    done' _
  loaded=$(rss "$nats_pid")
  sleep 60
  later=$(rss "$nats_pid")
  printf '| %s | %s | %s | %s | %s |\n' "$nats_version" "$limit" "$idle" "$loaded" "$later"
  kill "$stack"
  wait "$stack" 2>/dev/null || true
  rm -rf "$dir"
}

echo "nats-server VmRSS MiB (anon), $jobs jobs from 8 clients"
echo "| nats-server | GOMEMLIMIT | idle | after the load | 60 s later |"
echo "| --- | --- | ---: | ---: | ---: |"
for limit in ${LIMITS:-default off}; do
  run "$limit"
done
