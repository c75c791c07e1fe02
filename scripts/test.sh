#!/usr/bin/env bash
# The README's test command: sets everything up (idempotent), then runs formatting, lints and
# every test of the workspace.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
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
  echo "== cargo fmt --check"
  cargo fmt --all -- --check
else
  echo "== cargo fmt not available on this toolchain: format check skipped"
fi
if have clippy; then
  echo "== cargo clippy"
  cargo clippy --workspace --all-targets -- -D warnings
else
  echo "== cargo clippy not available on this toolchain: lint skipped"
fi
echo "== cargo build (the plugin and libsesrtorch.so, which the element tests load)"
cargo build --workspace "$@"
echo "== cargo test"
cargo test --workspace "$@"
echo "== the core without libtorch (cargo feature torch off): lints and tests"
if have clippy; then
  cargo clippy -p sesr --no-default-features --all-targets -- -D warnings
fi
cargo test -p sesr --no-default-features "$@"
echo "== which native kernel variants and int8 blocks this CPU tested (the others say SKIPPED)"
cargo test -p sesr --no-default-features "$@" --test native_reference -- --nocapture --test-threads 1 2>&1 \
  | sed "s/^test .* \.\.\. //" | grep -E "tested|SKIPPED" | sort -u
echo "== element checks that need a VNNI CPU (they say SKIPPED where it lacks one)"
cargo test -p gst-plugin-sesr "$@" --test element int8_precision -- --nocapture 2>&1 | grep -E "SKIPPED|test result"
echo "== soak: sesrupscale for 1 minute (renegotiation, seeks, state cycles, model swaps, tee)"
# The library (libgstsesr.so, which the soak loads from the build folder) and the soak itself.
cargo build --release -p gst-plugin-sesr --lib --example soak
# One minute is too short for a 5 % verdict (see examples/soak.rs); errors and stalls fail it,
# and growth over 30 %. BENCHMARKS.md records a 30-minute run at 5 %.
./target/release/examples/soak --minutes 1 --max-growth 30
echo "== the core cross-built for aarch64, its native tests under qemu-user"
bash scripts/cross-aarch64.sh
echo "== install: meson install into a temporary prefix and the Debian package (scripts/package-deb.sh):"
echo "   stripped libgstsesr.so in the plugin folder, no libtorch, Depends without torch; gst-inspect-1.0 loads each"
bash scripts/test-install.sh
