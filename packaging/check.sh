#!/usr/bin/env bash
# Packaging checks (SPEC §10), run by scripts/test.sh:
#
#   packaging/check.sh units      systemd-analyze verify on every unit in systemd/,
#                                 and systemd-analyze security --offline=true with
#                                 the exposure limits: <= 2.0 for the API and NATS
#                                 services, <= 2.5 for the agent (printed)
#   packaging/check.sh packages   lintian on dist/*.deb (no errors) and rpmlint on
#                                 dist/*.rpm (no errors), with packaging/rpmlint.toml
#
# With no argument, both. Exits non-zero on the first failing group, after
# printing everything that group found.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/usr/sbin:/sbin:$PATH"

# Exposure limits per service (systemd-analyze's 0-10 scale).
SERVICES=(osapi-nats.service osapi-api.service osapi-agent.service)
declare -A LIMIT=(
  [osapi-nats.service]=2.0
  [osapi-api.service]=2.0
  [osapi-agent.service]=2.5
)

units() {
  local failed=0 root out
  # verify needs the units next to the ones they reference (sockets.target,
  # dbus.socket, ...) and an executable at each ExecStart= path: a scratch root
  # with the host's units, ours, and stand-ins for /usr/bin/osapi and the
  # agent's /usr/libexec/osapi/osapi-agent.
  root=$(mktemp -d)
  trap 'rm -rf "$root"' RETURN
  mkdir -p "$root/usr/lib/systemd" "$root/usr/bin" "$root/usr/libexec/osapi" "$root/etc/systemd/system"
  cp -a /usr/lib/systemd/system "$root/usr/lib/systemd/"
  install -m 0755 /bin/true "$root/usr/bin/osapi"
  install -m 0755 /bin/true "$root/usr/libexec/osapi/osapi-agent"
  install -m 0644 systemd/osapi* "$root/usr/lib/systemd/system/"
  echo "== systemd-analyze verify"
  for unit in systemd/osapi*; do
    name=$(basename "$unit")
    # Warnings (unknown keys, bad values) do not change the exit status, so any
    # output at all fails the check.
    if out=$(systemd-analyze verify --man=no --root="$root" "$root/usr/lib/systemd/system/$name" 2>&1) \
        && [ -z "$out" ]; then
      echo "ok    $name"
    else
      echo "FAIL  $name"
      printf '%s\n' "$out" | sed 's/^/      /'
      failed=1
    fi
  done
  echo "== systemd-analyze security --offline=true (exposure, lower is better)"
  for name in "${SERVICES[@]}"; do
    out=$(systemd-analyze security --offline=true --no-pager "$PWD/systemd/$name" 2>&1) || true
    score=$(printf '%s\n' "$out" | sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\).*/\1/p')
    if [ -z "$score" ]; then
      echo "FAIL  $name: no exposure level in the output:"
      printf '%s\n' "$out" | tail -5 | sed 's/^/      /'
      failed=1
    elif awk -v s="$score" -v l="${LIMIT[$name]}" 'BEGIN { exit !(s <= l) }'; then
      echo "ok    $name  exposure $score (limit ${LIMIT[$name]})"
    else
      echo "FAIL  $name  exposure $score exceeds ${LIMIT[$name]}; the exposed settings:"
      printf '%s\n' "$out" | grep '✗' | sed 's/^/      /'
      failed=1
    fi
  done
  return $failed
}

packages() {
  local failed=0 deb rpm out
  deb=$(ls dist/osapi_*.deb 2>/dev/null | sort -V | tail -1)
  rpm=$(ls dist/osapi-*.rpm 2>/dev/null | sort -V | tail -1)
  [ -n "$deb" ] && [ -n "$rpm" ] || { echo "no packages in dist/; run ./scripts/packages.sh" >&2; return 1; }
  echo "== lintian $deb"
  # Errors fail; warnings are printed. The ones we keep are explained in
  # docs/architecture.md (Packaging and units).
  out=$(lintian --no-cfg --fail-on error --display-level '>=warning' "$deb" 2>&1) || failed=1
  printf '%s\n' "${out:-(no errors, no warnings)}" | sed 's/^/      /'
  [ $failed = 0 ] && echo "ok    lintian: no errors" || echo "FAIL  lintian reported errors"
  echo "== rpmlint $rpm"
  local rfail=0
  out=$(rpmlint --config packaging/rpmlint.toml "$rpm" 2>&1) || rfail=1
  printf '%s\n' "$out" | sed 's/^/      /'
  # rpmlint exits 64 on errors (66 on badness over the threshold), 0 otherwise.
  if [ $rfail = 0 ]; then echo "ok    rpmlint: no errors"; else echo "FAIL  rpmlint reported errors"; failed=1; fi
  return $failed
}

what=("$@")
[ ${#what[@]} -gt 0 ] || what=(units packages)
rc=0
for w in "${what[@]}"; do
  case "$w" in
    units) units || rc=1 ;;
    packages) packages || rc=1 ;;
    *) echo "usage: $0 [units] [packages]" >&2; exit 2 ;;
  esac
done
exit $rc
