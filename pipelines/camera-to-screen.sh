#!/usr/bin/env bash
# Live camera upscaled x2 (QoS drops late frames rather than piling up).
#   pipelines/camera-to-screen.sh [/dev/video0] [sesrupscale properties]
set -euo pipefail
. "$(dirname "$0")/env.sh"
dev="${1:-/dev/video0}"; shift || true
gst-launch-1.0 v4l2src device="$dev" ! video/x-raw,width=640,height=360 ! videoconvert ! video/x-raw,format=NV12 \
  ! queue max-size-buffers=1 leaky=downstream ! sesrupscale "$@" ! videoconvert ! autovideosink sync=false
