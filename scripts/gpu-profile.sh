#!/usr/bin/env bash
# Where the two targets' GPU time goes (issue 7), on a GPU machine, from the bundle that
# scripts/gpu-bundle.sh made (run scripts/gpu-check.sh first: this assumes the GPU tests pass):
#  1. the targets' runs as replayed CUDA graphs with IO binding (BERT-base fp16, batch 1,
#     sequence 128; GPT-2's fp16 decoding step with the shared key/value cache, batch 1, past 128)
#     under each GEMM setting (untuned, the default; tuned; tuned with the weights in L2; tuned
#     without the few-row kernel), taking turns over --rounds rounds: the spread between
#     processes beside the settings' differences;
#  2. with Nsight Compute (ncu), each kernel's time in eager runs of the same two (untuned, so
#     that only the model's kernels run; ncu flushes the caches before each kernel, as a
#     run meets its weights in memory): one run's kernels summed, against the replayed run's
#     latency (the difference is what launching them costs).
#
#   bash scripts/gpu-profile.sh [--rounds N] [--no-ncu] [BUNDLE]
#
# Prints a table last. Logs go to $OUT (packed into logs.tar.gz: the device tool brings back 8
# files) or gpu-profile-out/.
set -uo pipefail
cd "$(dirname "$0")/.."
ROUNDS=3
NCU_ON=1
BUNDLE=gpu-bundle/tfhost-gpu.tar.xz
while [ $# -gt 0 ]; do
  case "$1" in
    --rounds) ROUNDS=${2:?--rounds needs a number}; shift ;;
    --no-ncu) NCU_ON=0 ;;
    -h|--help) sed -n '2,18p' "$0"; exit 0 ;;
    *) BUNDLE=$1 ;;
  esac
  shift
done
# shellcheck source=scripts/gpu-results.sh
. scripts/gpu-results.sh
gpu_results "$PWD/gpu-profile-out"
trap pack_logs EXIT
T0=$(date +%s)

# (gpu-check's own results, of unpacking alone, stay out of $OUT)
if ! OUT= bash scripts/gpu-check.sh --unpack-only "$BUNDLE" > "$RESULTS/unpack.txt" 2>&1; then
  say "gpu-profile: could not unpack: $(tail -1 "$RESULTS/unpack.txt")"
  exit 2
fi
LIBS=$(cat build/bundle-ld-path)
tf() { LD_LIBRARY_PATH="$LIBS" "$@"; }
say "$(grep -E '^(gpu|bundle):' "$RESULTS/unpack.txt" | tr '\n' ';')"

M=$(mktemp -d)
trap 'rm -rf "$M"; pack_logs' EXIT
for pair in bert:bert_base gpt2:gpt2past_base; do
  timeout 300 python3 shared-bundle/tools/fill_weights.py \
    "shared-bundle/models/${pair#*:}_opset14_skeleton.onnx" "$M/${pair%%:*}.onnx" >> "$RESULTS/fill.log" 2>&1 ||
    { say "gpu-profile: could not fill ${pair#*:}: $(tail -1 "$RESULTS/fill.log")"; exit 2; }
done
tf timeout 180 build/bin/tfhost optimize --input "$M/bert.onnx" --output "$M/bert_fp16.onnx" \
  --model_type bert --float16 > "$RESULTS/optimize.log" 2>&1 &&
tf timeout 180 build/bin/tfhost run configs/gpt2_fp16_decode.yaml --set model.path="$M/gpt2.onnx" \
  --set output="$M/gpt2_decode.onnx" --set verify=null --set benchmark=null >> "$RESULTS/optimize.log" 2>&1 ||
  { say "gpu-profile: could not optimize: $(tail -1 "$RESULTS/optimize.log")"; exit 2; }
say "models ready in $(( $(date +%s) - T0 )) s"

BERT_ARGS=(-m "$M/bert_fp16.onnx" --model_type bert -b 1 -s 128)
GPT2_ARGS=(-m "$M/gpt2_decode.onnx" --model_type gpt2 -b 1 -s 1 --past_sequence_length 128)
# setting name -> environment
declare -A ENVS=([untuned]="" [tuned]="TFH_CUDA_GEMM_TUNING=on" [tuned-l2]="TFH_CUDA_GEMM_TUNING=l2"
                 [no-few-row]="TFH_CUDA_GEMM_TUNING=on TFH_CUDA_FEW_ROW_GEMM=off")
TABLE=$RESULTS/latency.tsv
: > "$TABLE"
for r in $(seq 1 "$ROUNDS"); do
  for model in bert gpt2; do
    for setting in untuned tuned tuned-l2 no-few-row; do
      # (BERT's products have 128 rows: the few-row kernel never fits them)
      [ "$model" = bert ] && [ "$setting" = no-few-row ] && continue
      if [ "$model" = bert ]; then args=("${BERT_ARGS[@]}"); else args=("${GPT2_ARGS[@]}"); fi
      log=$RESULTS/perf_${model}_${setting}_r$r.txt
      # shellcheck disable=SC2086  # (an empty setting is no variable)
      env ${ENVS[$setting]} LD_LIBRARY_PATH="$LIBS" timeout 120 build/bin/tfhost perf "${args[@]}" \
        --use_gpu --cuda_graph --io_binding --samples 500 --warmup 20 > "$log" 2>&1
      p50=$(sed -n 's/^Latency P50: \([0-9.]*\) ms/\1/p' "$log")
      echo -e "$model\t$setting\t$r\t${p50:-failed}\t$(grep -o 'GEMM tuning: .*' "$log")" >> "$TABLE"
    done
  done
done
say "latency rounds done in $(( $(date +%s) - T0 )) s"

# The kernel benchmark at batch 1 (each kernel as a replayed graph of 20 launches, L2-warm).
tf timeout 120 build/bin/tfh_bench_cuda_kernels --batch 1 --sequence 128 --past 128 --iterations 50 \
  > "$RESULTS/kernels_b1.txt" 2>&1 || say "kernel benchmark: exit $? ($(tail -1 "$RESULTS/kernels_b1.txt"))"

NCU=$(command -v ncu || ls /usr/local/cuda/bin/ncu /opt/nvidia/nsight-compute/*/ncu 2>/dev/null | head -1)
if [ "$NCU_ON" = 1 ] && [ -n "$NCU" ]; then
  for model in bert gpt2; do
    if [ "$model" = bert ]; then args=("${BERT_ARGS[@]}"); else args=("${GPT2_ARGS[@]}"); fi
    # Three eager runs (the last one's kernels are summed: the first may differ); ncu passes the
    # environment on.
    timeout 240 "$NCU" --clock-control none --metrics gpu__time_duration.sum \
      --csv --print-units base --log-file "$RESULTS/ncu_$model.csv" \
      env LD_LIBRARY_PATH="$LIBS" build/bin/tfhost perf "${args[@]}" --use_gpu --io_binding \
      --samples 1 --warmup 2 > "$RESULTS/ncu_${model}_run.txt" 2>&1 ||
      say "ncu $model: exit $? ($(tail -1 "$RESULTS/ncu_${model}_run.txt"))"
  done
else
  say "ncu: $([ "$NCU_ON" = 1 ] && echo 'not found on this machine' || echo 'left out (--no-ncu)')"
fi

python3 - "$RESULTS" <<'EOF' | tee -a "$SUMMARY"
import collections, csv, os, statistics, sys
res = sys.argv[1]
rows = collections.defaultdict(list)
for line in open(os.path.join(res, "latency.tsv")):
    f = line.rstrip("\n").split("\t")
    if f[3] != "failed":
        rows[(f[0], f[1])].append(float(f[3]))
print("replayed graphs, IO binding, batch 1 (P50 of 500 runs per process; median [min-max] of the rounds):")
p50 = {}
for (model, setting), v in rows.items():
    p50[(model, setting)] = statistics.median(v)
    print(f"  {model:5} {setting:11} {statistics.median(v):.3f} ms [{min(v):.3f}-{max(v):.3f}] ({len(v)} rounds)")
for model in ("bert", "gpt2"):
    path = os.path.join(res, f"ncu_{model}.csv")
    if not os.path.exists(path):
        continue
    kernels = []  # (name, ns)
    with open(path) as fh:
        col = None
        for rec in csv.reader(l for l in fh if l.startswith('"')):
            if col is None:  # the header row
                col = {name: i for i, name in enumerate(rec)}
                continue
            if rec[col["Metric Name"]] != "gpu__time_duration.sum":
                continue
            scale = {"nsecond": 1, "ns": 1, "usecond": 1e3, "us": 1e3, "msecond": 1e6,
                     "ms": 1e6}.get(rec[col["Metric Unit"]], 1)
            kernels.append((rec[col["Kernel Name"]],
                            float(rec[col["Metric Value"]].replace(",", "")) * scale))
    if not kernels:
        print(f"ncu {model}: no kernels read")
        continue
    names = [k[0] for k in kernels]
    # One run's kernels: the longest tail that the kernels before it repeat (the last two runs
    # are alike; a layer's kernels repeat too, so not the shortest).
    period = next((p for p in range(len(names) // 2, 0, -1) if names[-p:] == names[-2 * p:-p]),
                  len(names))
    run = kernels[-period:]
    total_us = sum(ns for _, ns in run) / 1e3
    base = p50.get((model, "untuned"))
    print(f"ncu {model}: {len(run)} kernels in a run (of {len(names)} profiled), {total_us:.1f} us summed (caches flushed before each)"
          + (f"; the replayed untuned run: {base * 1000:.1f} us, {base * 1000 - total_us:.1f} us more" if base else ""))
    agg = collections.OrderedDict()
    for name, ns in run:
        short = name.split("(")[0][:70]
        c, t = agg.get(short, (0, 0.0))
        agg[short] = (c + 1, t + ns)
    for short, (c, t) in sorted(agg.items(), key=lambda kv: -kv[1][1])[:14]:
        print(f"  {t / 1e3:8.1f} us  {c:3d} x {t / c / 1e3:6.2f} us  {short}")
EOF
grep -E '^  (attention|decode|layer|step|SkipLayerNorm|QKV|FFN|output|LM|gemm|tensor)' "$RESULTS/kernels_b1.txt" |
  sed 's/  */ /g; s/^ /kernels b1: /' | tee -a "$SUMMARY"
say "gpu-profile: done in $(( $(date +%s) - T0 )) s"
