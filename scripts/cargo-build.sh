#!/usr/bin/env bash
# Builds the plugin in release mode and copies it to $1 (used by meson.build).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
out="$(realpath -m "$1")"
cd "$root"
[ -f target/sesr-env.sh ] || bash scripts/setup.sh
# shellcheck disable=SC1091
. target/sesr-env.sh
cargo build --release -p gst-plugin-sesr
cp target/release/libgstsesr.so "$out"
