#!/usr/bin/env bash
# Runs the whole suite on this host for a first try: embedded NATS, the API and
# one agent in one process tree (`osapi start`), with a development config under
# ./dev (signing key, admin token). Installs what is missing first.
#
#   API_PORT (default 8080) and NATS_PORT (default 4223, so Debian's own
#   nats-server.service on 4222 is never in the way) choose the ports.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-deps.sh
export PATH="$HOME/.cargo/bin:/usr/sbin:$PATH"
cargo build --release --locked --bins

api_port=${API_PORT:-8080}
nats_port=${NATS_PORT:-4223}
mkdir -p dev
umask 077
. scripts/stack-config.sh
write_stack_config "$PWD/dev" "$api_port" "$nats_port" "$PWD/dev/admin.token"
# The binaries are where cargo put them (CI may point CARGO_TARGET_DIR elsewhere).
bin=${CARGO_TARGET_DIR:-target}/release
"$bin/osapi" -f dev/osapi.yaml token generate -r admin -u "${USER:-root}" --ttl 720h > dev/admin.token
echo "admin token: dev/admin.token   try: $bin/osapictl --config dev/osapi.yaml node status" >&2
exec "$bin/osapi" -f dev/osapi.yaml start
