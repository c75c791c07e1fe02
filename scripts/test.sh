#!/usr/bin/env bash
# The README's test command: sets everything up (idempotent), then runs formatting, lints and
# every test of the workspace.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
# Each stage's wall time, printed as it ends and as a table at the end (also after a failure).
stage_names=()
stage_secs=()
stage_start=$SECONDS
all_start=$SECONDS
stage_end() {
  if [ ${#stage_names[@]} -gt 0 ] && [ ${#stage_secs[@]} -lt ${#stage_names[@]} ]; then
    stage_secs+=($((SECONDS - stage_start)))
    printf '   (%d s)\n' "${stage_secs[-1]}"
  fi
}
stage() {
  stage_end
  stage_names+=("$1")
  stage_start=$SECONDS
  echo "== $1"
}
summary() {
  local rc=$?
  stage_end
  echo "== time per stage (s)"
  for i in "${!stage_names[@]}"; do
    printf '%6d  %s\n' "${stage_secs[$i]:-0}" "${stage_names[$i]}"
  done
  printf '%6d  total%s\n' $((SECONDS - all_start)) "$([ $rc -eq 0 ] || echo " (failed, exit $rc)")"
}
trap summary EXIT
stage "set-up (scripts/setup.sh)"
bash scripts/setup.sh
# shellcheck disable=SC1091
. target/sesr-env.sh
have() { cargo "$1" --version >/dev/null 2>&1; }
for c in fmt clippy; do
  if ! have "$c" && command -v rustup >/dev/null 2>&1; then
    rustup component add "${c/fmt/rustfmt}" || true
  fi
done
if have fmt; then
  stage "cargo fmt --check"
  cargo fmt --all -- --check
else
  stage "cargo fmt not available on this toolchain: format check skipped"
fi
if have clippy; then
  stage "cargo clippy"
  cargo clippy --workspace --all-targets -- -D warnings
else
  stage "cargo clippy not available on this toolchain: lint skipped"
fi
stage "cargo build (the plugin and libsesrtorch.so, which the element tests load)"
cargo build --workspace "$@"
stage "cargo test"
cargo test --workspace "$@"
stage "the core without libtorch (cargo feature torch off): lints and tests"
if have clippy; then
  cargo clippy -p sesr --no-default-features --all-targets -- -D warnings
fi
cargo test -p sesr --no-default-features "$@"
stage "which native kernel variants and int8 blocks this CPU tested (the others say SKIPPED)"
cargo test -p sesr --no-default-features "$@" --test native_reference -- --nocapture --test-threads 1 2>&1 \
  | sed "s/^test .* \.\.\. //" | grep -E "tested|SKIPPED" | sort -u
stage "element checks that need a VNNI CPU (they say SKIPPED where it lacks one)"
# `--workspace`, as the test stage above: the same features, so nothing is built again.
cargo test --workspace "$@" --test element int8_precision -- --nocapture 2>&1 | grep -E "SKIPPED|test result"
stage "soak: sesrupscale for 1 minute (renegotiation, seeks, state cycles, model swaps, tee)"
# The library (libgstsesr.so, which the soak loads from the build folder) and the soak itself.
cargo build --release -p gst-plugin-sesr --lib --example soak
# One minute is too short for a 5 % verdict (see examples/soak.rs); errors and stalls fail it,
# and growth over 30 %. BENCHMARKS.md records a 30-minute run at 5 %.
./target/release/examples/soak --minutes 1 --max-growth 30
stage "the core cross-built for aarch64, its native tests under qemu-user"
bash scripts/cross-aarch64.sh
stage "install: meson install into a temporary prefix and the Debian package (scripts/package-deb.sh):"
echo "   stripped libgstsesr.so in the plugin folder, no libtorch, Depends without torch; gst-inspect-1.0 loads each"
bash scripts/test-install.sh
