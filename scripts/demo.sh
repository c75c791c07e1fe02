#!/usr/bin/env bash
# The README's main-job command: sets everything up (idempotent), builds the plugin and the
# trainer, upscales the shipped clip with `sesrupscale` (embedded SESR-M5 x2 model) in a real
# GStreamer pipeline, and writes a PNG comparing nearest, bicubic and SESR on one frame; then
# encodes the clip at a low bitrate (x264, 100 kbit/s) and writes a PNG comparing bicubic, the
# clean model (artifact-reduction=off) and the compressed-input model (on) on one of its frames.
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

# The output size: twice the clip's (its first video stream's).
read -r W H < <(gst-discoverer-1.0 "$input" | awk '/Width/ && !w {w = $2} /Height/ && !h {h = $2} END {print 2 * w, 2 * h}')

echo "== same clip with GStreamer's bicubic (videoscale method=catrom), for comparison"
gst-launch-1.0 -q filesrc location="$input" ! decodebin ! videoconvert ! video/x-raw,format=I420 \
  ! videoscale method=catrom ! "video/x-raw,width=$W,height=$H" \
  ! videoconvert ! x264enc ! mp4mux ! filesink location="$out/demo_bicubic.mp4"

echo "== one frame, nearest | bicubic | SESR"
gst-launch-1.0 -q filesrc location="$input" ! decodebin ! videoconvert ! pngenc snapshot=true \
  ! filesink location="$out/demo_frame.png"
./target/release/trainer upscale "$out/demo_frame.png" "$out/demo_frame_sesr.png" \
  --model models/sesr_m5_x2.pt --device cpu --compare "$out/demo_compare.png" --crop 512

echo "== a low-bitrate encode (x264, 100 kbit/s): bicubic | artifact-reduction=off | artifact-reduction=on"
gst-launch-1.0 -q filesrc location="$input" ! decodebin ! videoconvert ! video/x-raw,format=I420 \
  ! x264enc bitrate=100 ! mp4mux ! filesink location="$out/demo_lowbitrate.mp4"
gst-launch-1.0 -q filesrc location="$out/demo_lowbitrate.mp4" ! decodebin ! videoconvert ! video/x-raw,format=I420 \
  ! sesrupscale ! videoconvert ! x264enc ! mp4mux ! filesink location="$out/demo_lowbitrate_sesr.mp4"
frames="$(mktemp -d)"
gst-launch-1.0 -q -e compositor name=mix sink_1::xpos=$W sink_2::xpos=$((2 * W)) ! videoconvert ! pngenc \
  ! multifilesink location="$frames/%03d.png" \
  filesrc location="$out/demo_lowbitrate.mp4" ! decodebin ! videoconvert ! video/x-raw,format=I420 ! tee name=t \
  t. ! queue ! videoscale method=catrom ! "video/x-raw,width=$W,height=$H" ! mix.sink_0 \
  t. ! queue ! sesrupscale artifact-reduction=off ! mix.sink_1 \
  t. ! queue ! sesrupscale artifact-reduction=on ! mix.sink_2
# A frame from the middle of the clip (a predicted frame, as most of a stream is).
pngs=("$frames"/*.png)
cp "${pngs[${#pngs[@]} / 2]}" "$out/demo_compressed_compare.png"
rm -rf "$frames"

size=$(gst-discoverer-1.0 "$out/demo_sesr.mp4" | awk '/Width|Height/{printf "%s ", $2}')
frames=$(gst-discoverer-1.0 -v "$input" | awk '/Duration/{print $2; exit}')
echo
echo "SESR clip:        $out/demo_sesr.mp4 (${size% }; input duration $frames; $(awk "BEGIN{printf \"%.1f\", $end - $start}") s wall)"
echo "bicubic clip:     $out/demo_bicubic.mp4"
echo "comparison PNG:   $out/demo_compare.png (nearest | bicubic | SESR)"
echo "low-bitrate clip: $out/demo_lowbitrate.mp4, upscaled: $out/demo_lowbitrate_sesr.mp4"
echo "comparison PNG:   $out/demo_compressed_compare.png (bicubic | artifact-reduction=off | on)"
if [ -n "${DISPLAY:-}${WAYLAND_DISPLAY:-}" ] && [ -z "${CI:-}" ]; then
  echo "== playing the SESR clip"
  gst-launch-1.0 -q filesrc location="$out/demo_sesr.mp4" ! decodebin ! videoconvert ! autovideosink || true
else
  echo "(no display: play it with  gst-launch-1.0 playbin uri=file://$out/demo_sesr.mp4)"
fi
