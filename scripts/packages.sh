#!/usr/bin/env bash
# Builds the packages from this checkout (release build):
#
#   ./scripts/packages.sh                  dist/osapi_<ver>-<rev>_<arch>.deb and
#                                          dist/osapi-<ver>-<rel>.<arch>.rpm
#                                          (osapi_0.1.0-1_amd64.deb,
#                                          osapi-0.1.0-1.x86_64.rpm)
#   ./scripts/packages.sh --deb-version V [--out DIR] [--no-build]
#                                          only the .deb, as version V (e.g.
#                                          0.1.0-1+1, for upgrade tests), into
#                                          DIR; --no-build packages the binaries,
#                                          man pages and completions already in
#                                          target/release
#
# Installs cargo-deb and cargo-generate-rpm with `cargo install --locked` when
# missing (about 90 s and 340 s once), generates the man pages and shell
# completions from the clap definitions (`osapi generate-docs`), then packages
# the binaries, units, sysusers.d/tmpfiles.d files, /etc/osapi/osapi.yaml, docs,
# man pages and completions as described in Cargo.toml ([package.metadata.deb],
# [package.metadata.generate-rpm]).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"

deb_version=
out=dist
build=1
while [ $# -gt 0 ]; do
  case "$1" in
    --deb-version) deb_version=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --no-build) build=; shift ;;
    *) echo "usage: $0 [--deb-version VERSION [--out DIR] [--no-build]]" >&2; exit 2 ;;
  esac
done

command -v cargo >/dev/null 2>&1 || { echo "cargo (rustup toolchain) is required" >&2; exit 1; }
for tool in cargo-deb cargo-generate-rpm; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    echo "== installing $tool (cargo install --locked)" >&2
    cargo install --locked --quiet "$tool"
  fi
done

# cargo deb and cargo generate-rpm map the target/release/ asset paths onto
# CARGO_TARGET_DIR themselves; this script's own paths follow it too.
release=${CARGO_TARGET_DIR:-target}/release
docs=$release/osapi-docs
if [ -n "$build" ] || [ ! -x "$release/osapi" ] || [ ! -d "$docs" ]; then
  echo "== cargo build --release" >&2
  cargo build --release --locked --bins
  rm -rf "$docs"
  "$release/osapi" generate-docs "$docs" >/dev/null
  gzip -9n "$docs"/man/*.1
fi

mkdir -p "$out"
if [ -n "$deb_version" ]; then
  rm -f "$out/osapi_${deb_version}_"*.deb
  cargo deb --no-build --locked --quiet --deb-version "$deb_version" --output "$out/"
else
  rm -f "$out"/osapi_*.deb "$out"/osapi-*.rpm
  cargo deb --no-build --locked --quiet --output "$out/"
  cargo generate-rpm --output "$out/"
fi
ls -l "$out"/osapi[_-]*
