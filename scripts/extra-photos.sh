#!/usr/bin/env bash
# Prepares extra training photos from Debian packages (issue #12: more data, honestly licensed):
# the photographs (not the drawings) among the wallpapers of
#   mate-backgrounds             nature/*.jpg (12 photos)        GPL-2+ (debian/copyright)
#   plasma-workspace-wallpapers  11 photographic wallpapers     GPL-2+ (debian/copyright:
#                                                                 "Files: * … License: GPL-2+")
# Each is reduced x1/2 (Lanczos-3) and cut into 400x400 tiles (examples/tile_photos.rs): 113
# tiles from 23 photos, into OUT_DIR (default data/extra-photos), with each package's copyright
# file beside them. Not used: lomiri-wallpapers* (kept for evaluation), gnome-backgrounds (no
# photos left in version 43), ukui-wallpapers (CC-BY-SA-3.0, but drawings). Needs the package
# registry only.
#   scripts/extra-photos.sh [OUT_DIR]      then: trainer train --data … OUT_DIR
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
out="$(realpath -m "${1:-$root/data/extra-photos}")"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
chmod 755 "$work"; cd "$work"
apt-get download mate-backgrounds plasma-workspace-wallpapers >/dev/null
for d in *.deb; do dpkg-deb -x "$d" x; done
mate=x/usr/share/backgrounds/mate/nature
plasma=x/usr/share/wallpapers
photos=("$mate"/*.jpg)
for n in BytheWater ColdRipple ColorfulCups DarkestHour EveningGlow FallenLeaf Grey Kite OneStandsOut Path summer_1am; do
  # The largest size of each wallpaper.
  photos+=("$(ls -S "$plasma/$n"/contents/images/* | head -1)")
done
mkdir -p "$out"
# shellcheck disable=SC1091
. "$root/target/sesr-env.sh" 2>/dev/null || true
(cd "$root" && cargo run -q --release --example tile_photos -- "$out" "${photos[@]/#/$work/}")
for p in mate-backgrounds plasma-workspace-wallpapers; do
  cp "x/usr/share/doc/$p/copyright" "$out/COPYRIGHT.$p"
done
echo "photos: ${#photos[@]}; licences: $out/COPYRIGHT.*"
