#!/usr/bin/env bash
# Runs every test: the systemd units' checks, unit tests, the integration suite
# against Debian's nats-server 2.9 and again against a current 2.x, the API
# against its OpenAPI document (schemathesis), then the packages (built,
# linted) and the appliance test. Installs what is missing first.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-deps.sh
export PATH="$HOME/.cargo/bin:/usr/sbin:$PATH"

debian_nats=$(command -v nats-server)
current_nats=$PWD/.cache/nats-server-current/nats-server

echo "== systemd units: verify and exposure"
./packaging/check.sh units
cargo build --all-targets --locked
cargo test --locked --lib --bins
echo "== integration tests against $("$debian_nats" --version)"
TEST_NATS_SERVER=$debian_nats cargo test --locked --test integration
echo "== integration tests against $("$current_nats" --version)"
TEST_NATS_SERVER=$current_nats cargo test --locked --test integration
echo "== API conformance: schemathesis against the served OpenAPI document"
./scripts/conformance.sh
echo "== packages: build, lintian, rpmlint"
./scripts/packages.sh
./packaging/check.sh packages
echo "== appliance test: the .deb in a container booted with systemd, the .rpm in an rpm root"
./scripts/appliance-test.sh
