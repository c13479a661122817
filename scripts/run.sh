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
[ -s dev/signing.key ] || head -c 48 /dev/urandom | base64 -w0 > dev/signing.key
cat > dev/osapi.yaml <<YAML
# Development configuration written by scripts/run.sh; see packaging/osapi.yaml
# for every key with comments.
api:
  server:
    port: $api_port
    listen: 127.0.0.1
    unix_socket: ""
    nats:
      servers: ["nats://127.0.0.1:$nats_port"]
    security:
      signing_key_file: $PWD/dev/signing.key
  client:
    url: http://127.0.0.1:$api_port
    security:
      bearer_token_file: $PWD/dev/admin.token
nats:
  server:
    port: $nats_port
    store_dir: $PWD/dev/nats
node:
  agent:
    nats:
      servers: ["nats://127.0.0.1:$nats_port"]
YAML
# The binaries are where cargo put them (CI may point CARGO_TARGET_DIR elsewhere).
bin=${CARGO_TARGET_DIR:-target}/release
"$bin/osapi" -f dev/osapi.yaml token generate -r admin -u "${USER:-root}" --ttl 720h > dev/admin.token
echo "admin token: dev/admin.token   try: $bin/osapictl --config dev/osapi.yaml node status" >&2
exec "$bin/osapi" -f dev/osapi.yaml start
