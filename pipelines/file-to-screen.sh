#!/usr/bin/env bash
# Play a video file upscaled x2.   pipelines/file-to-screen.sh IN.mp4 [sesrupscale properties]
set -euo pipefail
. "$(dirname "$0")/env.sh"
in="${1:?input file}"; shift
gst-launch-1.0 filesrc location="$in" ! decodebin ! videoconvert ! video/x-raw,format=NV12 \
  ! queue max-size-buffers=2 leaky=downstream ! sesrupscale "$@" ! videoconvert ! autovideosink
