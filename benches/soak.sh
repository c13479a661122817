#!/usr/bin/env bash
# Soak (issue 13, item 4): the stack as three processes on loopback — the
# embedded NATS supervisor with its nats-server child (`osapi nats server
# start`), the API (`osapi api server start`) and an agent (`osapi-agent`) —
# under a steady mix of jobs for MINUTES (default 30): every 100 ms one
# request, in turn a sync `node uptime`, `node hostname`, `node status`, a
# `command shell` (echo), an async `node uptime`, `GET /jobs?limit=20` and
# `GET /jobs/stats`. Every 30 s it samples each process's VmRSS; at the end
# it prints, per process, RSS at the start and the end, its peak, and the
# least-squares slope over the whole run and over its second half (KiB per
# minute; flat is the goal). Prints figures; asserts nothing.
#
#   benches/soak.sh [MINUTES]
#
# Needs `cargo build --release --bins`. TEST_NATS_SERVER picks nats-server.
set -euo pipefail
shopt -s inherit_errexit
cd "$(dirname "$0")/.."
minutes=${1:-30}
bin=${CARGO_TARGET_DIR:-target}/release
for b in osapi osapi-agent; do
  [ -x "$bin/$b" ] || { echo "$bin/$b missing: cargo build --release --bins" >&2; exit 1; }
done
export PATH="${TEST_NATS_SERVER:+$(dirname "$TEST_NATS_SERVER"):}/usr/sbin:$PATH"

dir=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null; wait 2>/dev/null; rm -rf "$dir"' EXIT
api_port=$((20000 + RANDOM % 20000))
nats_port=$((20000 + RANDOM % 20000))
. scripts/stack-config.sh
(umask 077; write_stack_config "$dir" "$api_port" "$nats_port" "$dir/admin.token")
cfg=(-f "$dir/osapi.yaml")
"$bin/osapi" "${cfg[@]}" nats server start >"$dir/nats.log" 2>&1 &
nats_sup=$!
for _ in $(seq 1 300); do
  (exec 3<>"/dev/tcp/127.0.0.1/$nats_port") 2>/dev/null && break
  sleep 0.1
done
"$bin/osapi" "${cfg[@]}" token generate -r admin -u soak --ttl 2h >"$dir/admin.token"
"$bin/osapi" "${cfg[@]}" api server start >"$dir/api.log" 2>&1 &
api=$!
OSAPI_NODE_AGENT_HOSTNAME=soak-agent "$bin/osapi-agent" "${cfg[@]}" >"$dir/agent.log" 2>&1 &
agent=$!
auth="Authorization: Bearer $(cat "$dir/admin.token")"
url="http://127.0.0.1:$api_port/api/v1"
for _ in $(seq 1 300); do
  curl -sf -H "$auth" "$url/node/uptime?target=soak-agent" >/dev/null 2>&1 && break
  sleep 0.1
done
curl -sf -H "$auth" "$url/node/uptime?target=soak-agent" >/dev/null ||
  { tail -5 "$dir"/*.log >&2; exit 1; }
nats=$(pgrep -P "$nats_sup" nats-server | head -n1)
declare -A pid=([nats-server]=$nats [supervisor]=$nats_sup [api]=$api [agent]=$agent)

rss_kib() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }
sample() {
  local t=$1 name
  for name in "${!pid[@]}"; do echo "$name $t $(rss_kib "${pid[$name]}")"; done >>"$dir/rss"
}

requests=0
failures=0
one() {
  case $((requests % 7)) in
    0) curl -sf -o /dev/null -H "$auth" "$url/node/uptime?target=soak-agent" ;;
    1) curl -sf -o /dev/null -H "$auth" "$url/node/hostname?target=soak-agent" ;;
    2) curl -sf -o /dev/null -H "$auth" "$url/node/status?target=soak-agent" ;;
    3) curl -sf -o /dev/null -H "$auth" -H 'Content-Type: application/json' \
         -d '{"command":"echo soak"}' "$url/command/shell?target=soak-agent" ;;
    4) curl -sf -o /dev/null -H "$auth" "$url/node/uptime?target=soak-agent&async=true" ;;
    5) curl -sf -o /dev/null -H "$auth" "$url/jobs?limit=20" ;;
    6) curl -sf -o /dev/null -H "$auth" "$url/jobs/stats" ;;
  esac
}

start=$(date +%s)
end=$((start + minutes * 60))
next_sample=$start
while [ "$(date +%s)" -lt "$end" ]; do
  now=$(date +%s)
  if [ "$now" -ge "$next_sample" ]; then
    sample $((now - start))
    next_sample=$((next_sample + 30))
  fi
  one || failures=$((failures + 1))
  requests=$((requests + 1))
  sleep 0.1
done
sample $(( $(date +%s) - start ))

echo "soak: $minutes min, $requests requests ($failures failed), $(nats-server --version)"
echo "| process | RSS start MiB | RSS end MiB | peak MiB | slope KiB/min (all) | slope KiB/min (second half) |"
echo "| --- | ---: | ---: | ---: | ---: | ---: |"
for name in api agent nats-server supervisor; do
  awk -v n="$name" -v half=$((minutes * 30)) '
    $1 == n { t[++k] = $2 / 60; r[k] = $3 }
    function slope(from,   i, c, sx, sy, sxx, sxy) {
      for (i = 1; i <= k; i++) if (t[i] * 60 >= from) {
        c++; sx += t[i]; sy += r[i]; sxx += t[i] * t[i]; sxy += t[i] * r[i] }
      return c > 1 ? (c * sxy - sx * sy) / (c * sxx - sx * sx) : 0
    }
    END {
      peak = 0; for (i = 1; i <= k; i++) if (r[i] > peak) peak = r[i]
      printf "| %s | %.1f | %.1f | %.1f | %+.1f | %+.1f |\n",
        n, r[1] / 1024, r[k] / 1024, peak / 1024, slope(0), slope(half)
    }' "$dir/rss"
done
