#!/usr/bin/env bash
# Runs on the lent GPU machine (from the repository root, gpu/ carried): machine facts, the GPU
# inference bench (../shared/docs/gpu.md), the native kernels and int8 on that machine's CPU
# (it has AVX512-VNNI and AVX-VNNI: the VNNI blocks' only test bed so far), then resumes the
# training runs named in RUNS (default: the ×2 and ×4 M5 runs) until T0+TRAIN_END seconds
# (SIGINT: each saves last/), and tars them into $OUT. Session 5 ran an earlier form of this.
set -u
T0=$(date +%s)
el() { echo $(( $(date +%s) - T0 )); }
export LD_LIBRARY_PATH=$(python3 -c 'import torch,os;print(os.path.dirname(torch.__file__)+"/lib")')
G=gpu; D=$G/data; V="--val $G/val/Set5 $G/val/Set14"
{ nvidia-smi; grep -m1 "model name" /proc/cpuinfo; nproc
  grep -o 'avx512[a-z_]*\|avx2\|avx_vnni\|amx[a-z_]*' /proc/cpuinfo | sort | uniq -c; } > "$OUT/machine.txt" 2>&1
timeout 150 $G/bench_cuda --model models/sesr_m5_x2.pt --size 1920x1080 --frames 50 > "$OUT/bench.txt" 2>&1
timeout 150 $G/bench_engine --models models/sesr_m5_x2.pt --sizes 1280x720,1920x1080 --threads 2 --frames 8 >> "$OUT/bench.txt" 2>&1
echo "benches done at $(el)s" >> "$OUT/bench.txt"
END=$((T0 + ${TRAIN_END:-450}))
for r in ${RUNS:-m5x2-ecb m5x4-ecb}; do
  crop=64; [[ $r == *x4* ]] && crop=50
  timeout -k 60 -s INT $((END - $(date +%s))) $G/trainer train --resume models/runs/$r --crop $crop \
    --data $D/T91 $D/BSD200 $V --epochs 300 --device cuda --threads 4 ${LR:+--lr $LR} > /tmp/log_$r.txt 2>&1 &
done
wait
for r in ${RUNS:-m5x2-ecb m5x4-ecb}; do
  tar -cf "$OUT/$r.tar" --exclude='*.prev' --exclude='*.corrupt' models/runs/$r
done
for f in /tmp/log_*.txt; do echo "== $f"; grep -v "^warning: skipping" "$f" | tail -c 5000; done > "$OUT/train.txt"
echo "all done at $(el)s"
