#!/usr/bin/env bash
# Prepares the held-out evaluation photos that no training here has seen: the photographs among
# the wallpapers of Debian's lomiri-wallpapers-16.04 and lomiri-wallpapers-20.04 (CC-BY-4.0 and
# CC-BY-SA-4.0, see the copyright file copied beside them). Each is reduced x1/4 (Lanczos-3,
# which also averages away the JPEG artefacts of the wallpaper itself) and cut into 480x480
# tiles (examples/tile_photos.rs), into OUT_DIR (default data/heldout-photos). The drawing
# warty-final-ubuntu.png is left out. Needs the package registry only.
#   scripts/heldout-photos.sh [OUT_DIR]    then: trainer eval OUT_DIR --model … --degrade …
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
out="$(realpath -m "${1:-$root/data/heldout-photos}")"
if [ -n "$(ls "$out"/*.png 2>/dev/null)" ]; then
  echo "held-out photos present: $out"
  exit 0
fi
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
chmod 755 "$work"; cd "$work"
apt-get download lomiri-wallpapers-16.04 lomiri-wallpapers-20.04 >/dev/null 2>&1
for d in *.deb; do dpkg-deb -x "$d" x; done
mapfile -t photos < <(find x/usr/share/backgrounds -name '*.jpg' | sort)
mkdir -p "$out"
# shellcheck disable=SC1091
. "$root/target/sesr-env.sh" 2>/dev/null || true
(cd "$root" && cargo run -q --release --example tile_photos -- "$out" "${photos[@]/#/$work/}" --factor 4 --tile 480)
cp x/usr/share/doc/lomiri-wallpapers-20.04/copyright "$out/COPYRIGHT.lomiri-wallpapers"
echo "photos: ${#photos[@]}; licence: $out/COPYRIGHT.lomiri-wallpapers"
