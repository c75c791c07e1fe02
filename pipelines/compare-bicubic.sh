#!/usr/bin/env bash
# Side by side: GStreamer's bicubic (left) and SESR (right), composed into one frame.
#   pipelines/compare-bicubic.sh IN.mp4 [OUT.mp4]   (no OUT: shown on screen)
set -euo pipefail
. "$(dirname "$0")/env.sh"
in="${1:?input file}"
w=$(gst-discoverer-1.0 "$in" | awk '/Width/{print $2; exit}')
h=$(gst-discoverer-1.0 "$in" | awk '/Height/{print $2; exit}')
W=$((2 * w)); H=$((2 * h))
if [ -n "${2:-}" ]; then sink="videoconvert ! x264enc ! mp4mux ! filesink location=$2"; else sink="videoconvert ! autovideosink"; fi
# shellcheck disable=SC2086
gst-launch-1.0 -e compositor name=mix sink_1::xpos=$W ! $sink \
  filesrc location="$in" ! decodebin ! videoconvert ! video/x-raw,format=I420 ! tee name=t \
  t. ! queue ! videoscale method=catrom ! video/x-raw,width=$W,height=$H ! mix.sink_0 \
  t. ! queue ! sesrupscale ! mix.sink_1
