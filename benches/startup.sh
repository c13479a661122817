#!/usr/bin/env bash
# Start-up figures (issue 13, item 6), from release builds on loopback:
#
#   1. osapictl's wall time: `--version`, and one authenticated listing
#      (`job list --limit 1`) against a running API;
#   2. a socket-activated API's first answer, starting from no process:
#      `systemd-socket-activate` holds the port, the first `GET /health`
#      starts `osapi api server start`, which connects to NATS and answers;
#   3. an agent's start to its first answered job: `osapi-agent` started,
#      its heartbeat seen by the API, then `node.uptime.get` on it.
#
# Each is timed RUNS times (default 30; 10 for 2 and 3) and printed as
# p50 / p90 / max in milliseconds. Needs `cargo build --release --bins`.
#
#   benches/startup.sh [RUNS]
set -euo pipefail
# A failure inside $(…) fails the run instead of counting as a sample.
shopt -s inherit_errexit
cd "$(dirname "$0")/.."
runs=${1:-30}
bin=${CARGO_TARGET_DIR:-target}/release
for b in osapi osapictl osapi-agent; do
  [ -x "$bin/$b" ] || { echo "$bin/$b missing: cargo build --release --bins" >&2; exit 1; }
done
export PATH="/usr/sbin:$PATH"

dir=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null; wait 2>/dev/null; rm -rf "$dir"' EXIT
port() { echo $((20000 + RANDOM % 20000)); }
api_port=$(port)
nats_port=$(port)
. scripts/stack-config.sh
(umask 077; write_stack_config "$dir" "$api_port" "$nats_port" "$dir/admin.token")
"$bin/osapi" -f "$dir/osapi.yaml" token generate -r admin -u bench --ttl 1h > "$dir/admin.token"
"$bin/osapi" -f "$dir/osapi.yaml" start > "$dir/stack.log" 2>&1 &
for _ in $(seq 1 300); do
  curl -sf "http://127.0.0.1:$api_port/health/ready" >/dev/null 2>&1 && break
  sleep 0.1
done
curl -sf "http://127.0.0.1:$api_port/health/ready" >/dev/null || { cat "$dir/stack.log" >&2; exit 1; }
ctl=("$bin/osapictl" --config "$dir/osapi.yaml")

now_ns() { date +%s%N; }
# Prints "p50 / p90 / max ms" of the numbers (ns) on standard input.
summary() {
  sort -n | awk '{ v[NR] = $1 / 1e6 } END {
    p50 = v[int((NR + 1) * 0.5)]; p90 = v[int(NR * 0.9) > 0 ? int(NR * 0.9) : 1];
    printf "p50 %.1f / p90 %.1f / max %.1f ms (%d runs)\n", p50, p90, v[NR], NR }'
}
timed() { local t0; t0=$(now_ns); "$@" >/dev/null; echo $(( $(now_ns) - t0 )); }

echo "osapictl --version:                $(for _ in $(seq 1 "$runs"); do timed "${ctl[@]}" --version; done | summary)"
echo "osapictl job list --limit 1:       $(for _ in $(seq 1 "$runs"); do timed "${ctl[@]}" -o json job list --limit 1; done | summary)"

few=$(( runs < 10 ? runs : 10 ))
first_answer() {
  local p t0
  p=$(port)
  systemd-socket-activate -l "127.0.0.1:$p" "$bin/osapi" -f "$dir/osapi.yaml" api server start >>"$dir/activated.log" 2>&1 &
  local activator=$!
  for _ in $(seq 1 100); do ss -ltn | grep -q ":$p " && break; sleep 0.02; done
  t0=$(now_ns)
  curl -sf --max-time 10 "http://127.0.0.1:$p/health" >/dev/null
  echo $(( $(now_ns) - t0 ))
  kill "$activator" 2>/dev/null; wait "$activator" 2>/dev/null || true
}
echo "socket-activated API, first answer: $(for _ in $(seq 1 "$few"); do first_answer; done | summary)"

agent_first_job() {
  local name=bench-agent-$1 t0 agent
  t0=$(now_ns)
  OSAPI_NODE_AGENT_HOSTNAME=$name "$bin/osapi-agent" -f "$dir/osapi.yaml" >>"$dir/agents.log" 2>&1 &
  agent=$!
  local tries=0
  until "${ctl[@]}" -o json node uptime --target "$name" >/dev/null 2>&1; do
    tries=$((tries + 1))
    [ "$tries" -lt 1000 ] || { echo "agent $name never answered" >&2; exit 1; }
    sleep 0.01
  done
  echo $(( $(now_ns) - t0 ))
  kill "$agent"; wait "$agent" 2>/dev/null || true
}
echo "agent start → first job answered:  $(for i in $(seq 1 "$few"); do agent_first_job "$i"; done | summary)"
