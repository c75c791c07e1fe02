#!/usr/bin/env bash
# Cross-builds the core crate without libtorch (`--no-default-features`) for
# aarch64-unknown-linux-gnu and runs its libtorch-free tests under qemu-user: the portable
# kernel (the one aarch64 gets) against the scalar reference, across tilings and threads, plus
# the core's unit tests (weights, pool, engine without libtorch, resampling, metrics).
#
# Idempotent set-up: Debian's gcc-aarch64-linux-gnu, libc6-dev-arm64-cross and qemu-user when
# missing, and the rust-std of the target through rustup. Where either cannot be installed
# (no root, no rustup), it says so and exits 0 with "SKIPPED".
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
target=aarch64-unknown-linux-gnu
log() { printf '[cross-aarch64] %s\n' "$*" >&2; }

pkgs=(gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  sudo=""; [ "$(id -u)" != 0 ] && sudo="sudo"
  log "installing ${missing[*]}"
  if ! { DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends "${missing[@]}" ||
         { $sudo apt-get update -q && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends "${missing[@]}"; }; }; then
    log "SKIPPED: cannot install ${missing[*]}"
    exit 0
  fi
fi
if ! rustup target list --installed 2>/dev/null | grep -qx "$target"; then
  if ! rustup target add "$target"; then
    log "SKIPPED: rustup cannot add the $target standard library here"
    exit 0
  fi
fi

export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER="qemu-aarch64 -L /usr/aarch64-linux-gnu"
export CC_aarch64_unknown_linux_gnu=aarch64-linux-gnu-gcc
log "cargo test -p sesr --no-default-features --target $target (under qemu-aarch64)"
cargo test --release -p sesr --no-default-features --target "$target" --lib --test native_reference -- --nocapture 2>&1 |
  tee target/cross-aarch64.log
grep -q "portable kernel tested" target/cross-aarch64.log || { log "the portable kernel was not tested"; exit 1; }
log "aarch64: the portable kernel equals the scalar reference under qemu"
