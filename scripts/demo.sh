#!/usr/bin/env bash
# The README's main-job command: sets everything up (idempotent), builds the plugin and the
# trainer, upscales the shipped clip with `sesrupscale` (embedded SESR-M5 x2 model) in a real
# GStreamer pipeline, and writes a PNG comparing nearest, bicubic and SESR on one frame.
#
#   scripts/demo.sh [INPUT.mp4] [OUT_DIR]
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
bash scripts/setup.sh
# shellcheck disable=SC1091
. target/sesr-env.sh
cargo build --release -p gst-plugin-sesr -p sesr-torch -p trainer
input="$(realpath "${1:-assets/clips/coffee_pan_256x144.mp4}")"
out="$(realpath -m "${2:-out}")"
mkdir -p "$out"
export GST_PLUGIN_PATH="$root/target/release${GST_PLUGIN_PATH:+:$GST_PLUGIN_PATH}"
gst-inspect-1.0 sesrupscale >/dev/null

echo "== upscaling $input with sesrupscale (embedded SESR-M5 x2)"
start=$(date +%s.%N)
gst-launch-1.0 -q filesrc location="$input" ! decodebin ! videoconvert ! video/x-raw,format=I420 \
  ! sesrupscale ! videoconvert ! x264enc ! mp4mux ! filesink location="$out/demo_sesr.mp4"
end=$(date +%s.%N)

echo "== same clip with GStreamer's bicubic (videoscale method=catrom), for comparison"
gst-launch-1.0 -q filesrc location="$input" ! decodebin ! videoconvert ! video/x-raw,format=I420 \
  ! videoscale method=catrom ! "video/x-raw,width=$(($(gst-discoverer-1.0 "$input" | awk '/Width/{print $2; exit}') * 2))" \
  ! videoconvert ! x264enc ! mp4mux ! filesink location="$out/demo_bicubic.mp4"

echo "== one frame, nearest | bicubic | SESR"
gst-launch-1.0 -q filesrc location="$input" ! decodebin ! videoconvert ! pngenc snapshot=true \
  ! filesink location="$out/demo_frame.png"
./target/release/trainer upscale "$out/demo_frame.png" "$out/demo_frame_sesr.png" \
  --model models/sesr_m5_x2.pt --device cpu --compare "$out/demo_compare.png" --crop 512

size=$(gst-discoverer-1.0 "$out/demo_sesr.mp4" | awk '/Width|Height/{printf "%s ", $2}')
frames=$(gst-discoverer-1.0 -v "$input" | awk '/Duration/{print $2; exit}')
echo
echo "SESR clip:        $out/demo_sesr.mp4 (${size% }; input duration $frames; $(awk "BEGIN{printf \"%.1f\", $end - $start}") s wall)"
echo "bicubic clip:     $out/demo_bicubic.mp4"
echo "comparison PNG:   $out/demo_compare.png (nearest | bicubic | SESR)"
if [ -n "${DISPLAY:-}${WAYLAND_DISPLAY:-}" ] && [ -z "${CI:-}" ]; then
  echo "== playing the SESR clip"
  gst-launch-1.0 -q filesrc location="$out/demo_sesr.mp4" ! decodebin ! videoconvert ! autovideosink || true
else
  echo "(no display: play it with  gst-launch-1.0 playbin uri=file://$out/demo_sesr.mp4)"
fi
