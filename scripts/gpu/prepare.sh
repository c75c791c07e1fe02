#!/usr/bin/env bash
# Prepares the folder gpu/ (git-ignored through .git/info/exclude) that is copied with the tree to
# a GPU machine (tree + gpu/ at most 64 MiB, the transfer limit of the machines used so far): the
# stripped trainer and benchmark and kernel-test binaries, the training photos packed as 8-bit
# luma PNGs (examples/luma_gray.rs; 23 MB instead of 59 MB) and the validation sets. Then, on the
# GPU machine: `bash scripts/gpu/device.sh`.
#   scripts/gpu/prepare.sh [DATA_DIR]   (default ../shared/data)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$root"
data="$(realpath "${1:-$root/../shared/data}")"
grep -qx '/gpu/' .git/info/exclude 2>/dev/null || echo '/gpu/' >> .git/info/exclude
# shellcheck disable=SC1091
. target/sesr-env.sh
cargo build --release -p trainer
cargo build --release -p sesr --example bench_engine --example luma_gray
cargo test --release -p sesr --no-default-features --test native_reference --no-run
mkdir -p gpu
for b in trainer examples/bench_engine; do cp "target/release/$b" gpu/; strip "gpu/$(basename "$b")"; done
cp "$(ls -t target/release/deps/native_reference-* | grep -v '\.d$' | head -1)" gpu/native_reference
strip gpu/native_reference
# The photos and the validation sets as luma PNGs (64 MiB travel, the tracked tree included).
[ -d gpu/data/BSD200 ] || ./target/release/examples/luma_gray gpu/data "$data/train/T91" "$data/train/BSD200"
[ -d gpu/val/Set14 ] || ./target/release/examples/luma_gray gpu/val "$data/val/Set5" "$data/val/Set14"
# The extra photos (scripts/extra-photos.sh, 7.7 MB packed) only when asked: EXTRA=1, for
# RUNS with "extra" entries (they no longer fit beside the tracked tree otherwise).
if [ "${EXTRA:-0}" = 1 ] && [ -d data/extra-photos ] && [ ! -d gpu/data/extra-photos ]; then
  ./target/release/examples/luma_gray gpu/data data/extra-photos
elif [ "${EXTRA:-0}" != 1 ]; then
  rm -rf gpu/data/extra-photos
fi
du -sh gpu
tracked=$(git ls-files -z | du -cb --files0-from=- | tail -1 | cut -f1)
carried=$(( tracked + $(du -sb gpu | cut -f1) ))
echo "carried: tracked tree $tracked B + gpu/ = $carried B (at most $((64 << 20)))"
if [ "$carried" -gt $((64 << 20)) ]; then
  echo "too large to copy (64 MiB): move untracked run folders out, or drop EXTRA=1" >&2
  exit 1
fi
