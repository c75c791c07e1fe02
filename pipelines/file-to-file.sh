#!/usr/bin/env bash
# Upscale a video file x2 into an H.264 MP4.
#   pipelines/file-to-file.sh IN.mp4 OUT.mp4 [extra sesrupscale properties, e.g. model-location=m.pt]
set -euo pipefail
. "$(dirname "$0")/env.sh"
in="${1:?input file}"; out="${2:?output file}"; shift 2
gst-launch-1.0 -e filesrc location="$in" ! decodebin ! videoconvert ! video/x-raw,format=I420 \
  ! sesrupscale "$@" ! videoconvert ! x264enc ! mp4mux ! filesink location="$out"
