#!/usr/bin/env bash
# Builds the plugin and its on-demand libtorch backend in release mode and copies them to $1 and
# $2 (used by meson.build).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
out="$(realpath -m "$1")"
cd "$root"
[ -f target/sesr-env.sh ] || bash scripts/setup.sh
# shellcheck disable=SC1091
. target/sesr-env.sh
cargo build --release -p gst-plugin-sesr -p sesr-torch
cp target/release/libgstsesr.so "$out"
if [ $# -ge 2 ]; then cp target/release/libsesrtorch.so "$(realpath -m "$2")"; fi
