#!/usr/bin/env bash
# Builds the plugin in release mode and copies it, stripped, to $1; with a second path, also
# builds libsesrtorch.so (the libtorch backend the element opens only when needed) and copies
# it, stripped, to $2. Used by meson.build and scripts/package-deb.sh.
#
# The plugin alone needs no libtorch, so that build downloads nothing beyond crates;
# libsesrtorch.so needs the torch venv of scripts/setup.sh (made on first use).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
[ $# -ge 1 ] || { echo "usage: $0 OUT/libgstsesr.so [OUT/libsesrtorch.so]" >&2; exit 2; }
# Relative paths (meson passes its build folder's) before changing folder.
out="$(realpath -m "$1")"
out_torch="$([ $# -lt 2 ] || realpath -m "$2")"
cd "$root"

# Copies $1 to $2 without symbols or debug information.
strip_to() {
  mkdir -p "$(dirname "$2")"
  rm -f "$2"
  strip --strip-unneeded -o "$2" "$1"
}

# The plugin by itself (the sesr core without its torch feature): built apart from
# libsesrtorch.so, since one cargo invocation would unify their features.
cargo build --release -p gst-plugin-sesr
strip_to target/release/libgstsesr.so "$out"
# plugin/build.rs gives every target libtorch's folder as rpath when target/sesr-env.sh is
# sourced; the plugin links no libtorch, and an installed plugin must not search there.
if readelf -d "$out" | grep -qE '\((RUNPATH|RPATH)\)'; then
  if command -v patchelf >/dev/null 2>&1; then
    patchelf --remove-rpath "$out"
  else
    echo "$out has an rpath (built with target/sesr-env.sh sourced): install patchelf, or build in a shell without it" >&2
    exit 1
  fi
fi
if readelf -d "$out" | grep -E '\(NEEDED\)' | grep -qi torch; then
  echo "$out links libtorch; the plugin must not" >&2
  exit 1
fi

if [ $# -ge 2 ]; then
  [ -f target/sesr-env.sh ] || bash scripts/setup.sh
  # shellcheck disable=SC1091
  . target/sesr-env.sh
  cargo build --release -p sesr-torch
  # Keeps its rpath: it is how libsesrtorch.so finds libtorch.
  strip_to target/release/libsesrtorch.so "$out_torch"
fi
