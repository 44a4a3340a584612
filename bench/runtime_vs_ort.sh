#!/usr/bin/env bash
# tfhost's runtime against ONNX Runtime (CPU, graph optimizations off by default: the same graph,
# so this compares kernels and executors) on one model, same inputs, same thread count, in one run.
#
#   bench/runtime_vs_ort.sh MODEL [--batch_size B] [--sequence_length S] [--past_sequence_length P]
#                           [--threads T] [--repeats R] [--samples N] [--opt LEVEL]
#                           [--tfhost_model FUSED]
#
# --tfhost_model runs tfhost on another file (e.g. the model `tfhost optimize --model_type bert`
# wrote) while ONNX Runtime runs MODEL, typically with --opt all: fused tfhost against ORT at its
# best on the same export. Both get the same inputs (MODEL's, from core.inputs).
#
# Each repeat runs tfhost perf then ONNX Runtime (interleaved, so machine noise hits both) with N
# timed runs each; the ratio tfhost/ORT of their P50 latencies is taken per repeat, and the median
# over the repeats is reported. Ratio < 1: tfhost is faster.
set -euo pipefail
cd "$(dirname "$0")/.."
MODEL=${1:?usage: bench/runtime_vs_ort.sh MODEL [options]}
shift
B=1 S=128 P=0 T=2 R=5 N=20 OPT=disabled TMODEL=
while [ $# -gt 0 ]; do
  case "$1" in
    --batch_size) B=$2; shift 2 ;;
    --sequence_length) S=$2; shift 2 ;;
    --past_sequence_length) P=$2; shift 2 ;;
    --threads) T=$2; shift 2 ;;
    --repeats) R=$2; shift 2 ;;
    --samples) N=$2; shift 2 ;;
    --opt) OPT=$2; shift 2 ;;
    --tfhost_model) TMODEL=$2; shift 2 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
TFHOST=${TFHOST:-build/bin/tfhost}
TMODEL=${TMODEL:-$MODEL}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
p50() { sed -n 's/^Latency P50: \([0-9.]*\) ms$/\1/p'; }

echo "model: $MODEL (tfhost runs $TMODEL)  batch $B  sequence $S  past $P  threads $T  repeats $R x $N runs  ORT opt: $OPT"
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
# Inputs once (tfhost's core.inputs), used by both engines.
"$TFHOST" perf --model "$MODEL" -b "$B" -s "$S" --past_sequence_length "$P" -t "$T" \
  --samples 1 --warmup 0 --save_inputs "$WORK/in" > /dev/null 2>&1
rm -f "$(dirname "$MODEL")"/perf_results_CPU_B"$B"_S"$S"_*.txt
ratios=()
printf '%-8s %12s %12s %8s\n' repeat tfhost_ms ort_ms ratio
for r in $(seq 1 "$R"); do
  t=$("$TFHOST" perf --model "$TMODEL" -b "$B" -s "$S" --past_sequence_length "$P" -t "$T" \
        --samples "$N" --warmup 3 2>/dev/null | p50)
  rm -f "$(dirname "$TMODEL")"/perf_results_CPU_B"$B"_S"$S"_*.txt
  o=$(OMP_NUM_THREADS=$T node bench/ort_perf.js "$MODEL" "$WORK/in/inputs.json" --threads "$T" \
        --samples "$N" --warmup 3 --opt "$OPT" | p50)
  ratio=$(awk -v a="$t" -v b="$o" 'BEGIN { printf "%.3f", a / b }')
  ratios+=("$ratio")
  printf '%-8s %12s %12s %8s\n' "$r" "$t" "$o" "$ratio"
done
median=$(printf '%s\n' "${ratios[@]}" | sort -g | awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }')
echo "median ratio tfhost/ORT: $median"
