#!/usr/bin/env bash
# A low-bitrate (heavily compressed) file upscaled two ways, side by side: the model trained on
# clean pictures (artifact-reduction=off, left) and the one trained on decoded H.264/HEVC/VP9/
# MPEG-2/JPEG pictures (artifact-reduction=on, the default, right).
#   pipelines/low-bitrate.sh IN.mp4 [OUT.mp4]   (no OUT: shown on screen)
# A low-bitrate file to try it on, from any clip:
#   gst-launch-1.0 filesrc location=clip.mp4 ! decodebin ! videoconvert ! x264enc bitrate=100 \
#       ! mp4mux ! filesink location=low.mp4
set -euo pipefail
. "$(dirname "$0")/env.sh"
in="${1:?input file}"
w=$(gst-discoverer-1.0 "$in" | awk '/Width/{print $2; exit}')
W=$((2 * w))
if [ -n "${2:-}" ]; then sink="videoconvert ! x264enc ! mp4mux ! filesink location=$2"; else sink="videoconvert ! autovideosink"; fi
# shellcheck disable=SC2086
gst-launch-1.0 -e compositor name=mix sink_1::xpos=$W ! $sink \
  filesrc location="$in" ! decodebin ! videoconvert ! video/x-raw,format=I420 ! tee name=t \
  t. ! queue ! sesrupscale artifact-reduction=off ! mix.sink_0 \
  t. ! queue ! sesrupscale artifact-reduction=on ! mix.sink_1
