#!/usr/bin/env bash
# The README's main-job command: sets everything up (idempotent), builds, and runs the demo.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
bash scripts/setup.sh
# shellcheck disable=SC1091
. target/sesr-env.sh
cargo build --release --workspace --examples
mkdir -p out
./target/release/examples/bicubic assets/images 2 out/bicubic.png
