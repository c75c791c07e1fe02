#!/usr/bin/env bash
# Runs on a GPU machine (from the repository root, with gpu/ from prepare.sh copied beside the
# tree; results go to the folder $OUT). The GPU machines used so far (an H200 and an H100 host)
# had a 16-core Intel Xeon with AVX-512, AVX512-VNNI and AVX-VNNI, the only test bed the project
# had for those kernels, so first: machine facts, training started in the background on the GPU
# (data loading pinned to cores 2-15), then on cores 0-1 the native kernels' bit-exactness tests
# (gpu/native_reference) and the engine bench at two threads (int8 with VNNI against fp32
# AVX-512, issue #11), then the runs named in RUNS go on until T0+TRAIN_END seconds (SIGINT:
# each saves last/), and are tarred into $OUT.
#   RUNS: "name:resume|init=RUN:crop:base|extra|rescale[:lr[:ema[:teacher]]]" entries. Default
#   (since 2026-11-26, commit d01db4d): M5 x4 goes on (still rising); M5 x2 and M3 x2, level at
#   lr 5e-4, go on at 2.5e-4, M5 x2 distilled from its own self-ensemble (8 CPU epochs of that
#   showed nothing; a GPU can run many). "rescale" adds the photos' scaled copies (train
#   --rescale); "NAME-extra:init=NAME:64:extra" entries fine-tune with the extra photos, packed by
#   EXTRA=1 scripts/gpu/prepare.sh. A teacher field (a model path) adds distillation (train
#   --teacher, weight 1); "x8=PATH" distils from that model's self-ensemble
#   (--teacher-self-ensemble). An entry's lr and ema fields win over LR and EMA (default lr 1e-4;
#   a resumed run keeps its own weight average and decay unless given one).
set -u
T0=$(date +%s)
el() { echo $(( $(date +%s) - T0 )); }
export LD_LIBRARY_PATH=$(python3 -c 'import torch,os;print(os.path.dirname(torch.__file__)+"/lib")')
G=gpu; D=$G/data; V="--val $G/val/Set5 $G/val/Set14"
{ nvidia-smi; grep -m1 "model name" /proc/cpuinfo; nproc
  grep -o 'avx512[a-z_]*\|avx2\|avx_vnni\|amx[a-z_]*' /proc/cpuinfo | sort | uniq -c; } > "$OUT/machine.txt" 2>&1
END=$((T0 + ${TRAIN_END:-480}))
base="$D/T91 $D/BSD200"; extra="$base $D/extra-photos"
RUNS=${RUNS:-"m5x4-rescale:resume:50:rescale:3e-4 m5x2-rescale:resume:64:rescale:2.5e-4:0.999:x8=models/sesr_m5_x2.pt m3x2-ecb:resume:64:rescale:2.5e-4"}
names=()
for spec in $RUNS; do
  IFS=: read -r name how crop set lr ema teacher <<< "$spec"
  lr=${lr:-${LR:-1e-4}}; ema=${ema:-${EMA:-}}
  names+=("$name")
  data=$base; [ "$set" = extra ] && data=$extra
  scale=2; [[ $name == *x4* ]] && scale=4
  # scaled copies: about as many crops an epoch as 64 of the photos alone (1,299 images at x2, 893 at x4)
  more=""; [ "$set" = rescale ] && more="--rescale 0.9,0.8,0.7,0.6 --crops-per-image $((scale == 2 ? 14 : 18))"
  model=m5; [[ $name == m3* ]] && model=m3
  kd=""; [ -n "${teacher:-}" ] && kd="--teacher ${teacher#x8=}"; [[ ${teacher:-} == x8=* ]] && kd="$kd --teacher-self-ensemble"
  if [ "$how" = resume ]; then start="--resume models/runs/$name"
  else start="--init models/runs/${how#init=} --out models/runs/$name --model $model --scale $scale --block ecb"; fi
  # shellcheck disable=SC2086
  timeout -k 60 -s INT $((END - $(date +%s))) taskset -c 2-15 $G/trainer train $start --crop "$crop" \
    --data $data $more $V --epochs 300 --device cuda --threads 4 --lr "$lr" ${ema:+--ema "$ema"} $kd > "/tmp/log_$name.txt" 2>&1 &
done
{ echo "== native_reference on cores 0-1 (started at $(el)s)"
  taskset -c 0,1 timeout 200 $G/native_reference --nocapture --test-threads 2 2>&1 | grep -v "^$"
  echo "== bench_engine, 2 threads on cores 0-1 (training on cores 2-15 and the GPU) at $(el)s"
  taskset -c 0,1 timeout 200 $G/bench_engine --models models/sesr_m5_x2.pt,models/sesr_m3_x2.pt --sizes 1280x720 --threads 2 --frames 8 2>&1
  echo "benches done at $(el)s"; } > "$OUT/cpu.txt" 2>&1
wait
for n in "${names[@]}"; do
  tar -cf "$OUT/$n.tar" --exclude='*.prev' --exclude='*.corrupt' "models/runs/$n"
done
for n in "${names[@]}"; do echo "== $n"; grep -v "^warning: skipping" "/tmp/log_$n.txt" | tail -c 4000; done > "$OUT/train.txt"
echo "all done at $(el)s"
