#!/usr/bin/env bash
# x4: 960x540 -> 3840x2160 with the shipped SESR-M5 x4 (models/sesr_m5_x4.pt), luma through the
# model, chroma bicubic.
#   pipelines/x4-540p-to-2160p.sh                 a 960x540 test pattern, FRAMES frames (default
#                                                 30), throughput printed, nothing shown
#   pipelines/x4-540p-to-2160p.sh IN.mp4          the file scaled to 960x540, upscaled, shown
#   pipelines/x4-540p-to-2160p.sh IN.mp4 OUT.mp4  ... written as an H.264 MP4 instead
# Extra sesrupscale properties go in SESR_PROPS, e.g. SESR_PROPS="precision=int8".
set -euo pipefail
. "$(dirname "$0")/env.sh"
model="$root/models/sesr_m5_x4.pt"
up="sesrupscale model-location=$model ${SESR_PROPS:-} ! video/x-raw,width=3840,height=2160"
to540="videoconvert ! videoscale ! video/x-raw,format=I420,width=960,height=540,pixel-aspect-ratio=1/1"
# shellcheck disable=SC2086
if [ $# -eq 0 ]; then
  log=$(gst-launch-1.0 videotestsrc num-buffers="${FRAMES:-30}" pattern=smpte ! $to540 ! $up \
    ! fpsdisplaysink video-sink=fakesink text-overlay=false sync=false -v 2>&1)
  grep -m1 "sesrupscale0.GstPad:src: caps" <<<"$log"
  grep "fpsdisplaysink0: last-message" <<<"$log" | tail -n 1
elif [ $# -eq 1 ]; then
  gst-launch-1.0 filesrc location="$1" ! decodebin ! $to540 ! $up ! videoconvert ! autovideosink
else
  gst-launch-1.0 -e filesrc location="$1" ! decodebin ! $to540 ! $up ! videoconvert ! x264enc ! mp4mux \
    ! filesink location="$2"
fi
