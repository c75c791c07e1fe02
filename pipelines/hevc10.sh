#!/usr/bin/env bash
# 10-bit HEVC in, 10-bit HEVC out, no 8-bit step: decoded to I420_10LE (P010_10LE, e.g. from a
# hardware decoder, works the same), luma through the model at 10 bits, chroma bicubic at 10
# bits, re-encoded as HEVC Main 10 with x265.
#   pipelines/hevc10.sh IN OUT.mkv   [extra sesrupscale properties in SESR_PROPS]
#   pipelines/hevc10.sh              makes a 10-bit HEVC test clip (target/hevc10-in.mkv), upscales
#                                    it into target/hevc10-out.mkv and prints what the files hold
set -euo pipefail
. "$(dirname "$0")/env.sh"
if [ $# -eq 0 ]; then
  in="$root/target/hevc10-in.mkv"; out="$root/target/hevc10-out.mkv"
  gst-launch-1.0 -q videotestsrc num-buffers=30 pattern=ball \
    ! video/x-raw,format=I420_10LE,width=320,height=180,framerate=30/1 \
    ! x265enc speed-preset=ultrafast ! video/x-h265,profile=main-10 ! h265parse ! matroskamux ! filesink location="$in"
else
  in="$1"; out="${2:?output file}"
fi
# shellcheck disable=SC2086
gst-launch-1.0 -q -e filesrc location="$in" ! parsebin ! avdec_h265 ! videoconvert ! video/x-raw,format=I420_10LE \
  ! sesrupscale ${SESR_PROPS:-} ! x265enc speed-preset=fast ! video/x-h265,profile=main-10 ! h265parse \
  ! matroskamux ! filesink location="$out"
for f in "$in" "$out"; do
  echo "$f: $(gst-discoverer-1.0 "$f" | grep -E "Width|Height|Depth|profile" | tr -s ' \n' ' ')"
done
