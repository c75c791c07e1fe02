#!/usr/bin/env bash
# Prepares the folder gpu/ (git-ignored through .git/info/exclude) that a GPU session carries to
# the lent machine (`device` tool, `carry: ["gpu"]`, 64 MiB at most): the stripped trainer and
# benchmark binaries, the training photos packed as 8-bit luma PNGs (examples/luma_gray.rs;
# 23 MB instead of 59 MB) and the validation sets. Then, on the device: `bash scripts/gpu/device.sh`.
#   scripts/gpu/prepare.sh [DATA_DIR]   (default ../shared/data)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$root"
data="$(realpath "${1:-$root/../shared/data}")"
grep -qx '/gpu/' .git/info/exclude 2>/dev/null || echo '/gpu/' >> .git/info/exclude
# shellcheck disable=SC1091
. target/sesr-env.sh
cargo build --release -p trainer
cargo build --release -p sesr --example bench_cuda --example bench_engine --example luma_gray
cargo test --release -p sesr --no-default-features --test native_reference --no-run
mkdir -p gpu/val
for b in trainer examples/bench_cuda examples/bench_engine; do cp "target/release/$b" gpu/; strip "gpu/$(basename "$b")"; done
[ -d gpu/data/BSD200 ] || ./target/release/examples/luma_gray gpu/data "$data/train/T91" "$data/train/BSD200"
cp -r "$data/val/Set5" "$data/val/Set14" gpu/val/
du -sh gpu
