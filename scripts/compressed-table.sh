#!/usr/bin/env bash
# The README's compressed-input table: bicubic, the clean model and the compressed-input model,
# each on clean LR input and on LR coded by H.264 (QP 24 and 32, intra) and JPEG (quality 60),
# PSNR-Y under the SR protocol, the models run by the element's native kernel (fp32, 8-bit Y
# in and out). Deterministic: the same numbers on every run.
#   scripts/compressed-table.sh [SCALE] [SET_DIR...]
# (default: 2, ../shared/data/val/Set5 ../shared/data/val/Set14 data/heldout-photos, the last made
# by scripts/heldout-photos.sh)
# MODEL=path.pt scores another model in the compressed-input column (default: the shipped
# models/sesr_m5_xSCALE_compressed.pt), PRECISION=int8 runs it in the int8 kernel (the clean
# model stays fp32, the reference the gains are measured against).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
scale="${1:-2}"
shift || true
sets=("$@")
if [ ${#sets[@]} -eq 0 ]; then
  bash scripts/heldout-photos.sh >/dev/null
  sets=(../shared/data/val/Set5 ../shared/data/val/Set14 data/heldout-photos)
fi
# shellcheck disable=SC1091
. target/sesr-env.sh
cargo build -q --release -p trainer
inputs=(clean h264:24 h264:32 jpeg:60)
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
./target/release/trainer eval "${sets[@]}" --method bicubic --scale "$scale" --degrade "${inputs[@]}" --json >"$work/bicubic.json"
./target/release/trainer eval "${sets[@]}" --model "models/sesr_m5_x${scale}.pt" --native fp32 \
  --degrade "${inputs[@]}" --json >"$work/clean.json"
./target/release/trainer eval "${sets[@]}" --model "${MODEL:-models/sesr_m5_x${scale}_compressed.pt}" \
  --native "${PRECISION:-fp32}" \
  --degrade "${inputs[@]}" --json >"$work/compressed.json"
python3 - "$work" <<'PY'
import json, sys
w = sys.argv[1]
res = {}
for k in ("bicubic", "clean", "compressed"):
    for i in json.load(open(f"{w}/{k}.json"))["inputs"]:
        for s in i["sets"]:
            res[(k, i["input"], s["set"])] = (s["psnr_y"], s["images"])
sets = list(dict.fromkeys(s for (_, _, s) in res))
print("| set (images) | LR input | bicubic | clean model | compressed-input model | gain over the clean model |")
print("| --- | --- | --- | --- | --- | --- |")
for s in sets:
    for inp in ("clean", "h264:24", "h264:32", "jpeg:60"):
        b, c, n = (res[(k, inp, s)][0] for k in ("bicubic", "clean", "compressed"))
        print(f"| {s} ({res[('clean', inp, s)][1]}) | {inp} | {b:.2f} | {c:.2f} | {n:.2f} | {n - c:+.2f} |")
PY
