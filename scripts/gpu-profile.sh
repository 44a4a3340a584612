#!/usr/bin/env bash
# Where the two targets' GPU time goes (issue 7), on a GPU machine, from the bundle that
# scripts/gpu-bundle.sh made (run scripts/gpu-check.sh first: this assumes the GPU tests pass):
#  1. the targets' runs as replayed CUDA graphs with IO binding (BERT-base fp16, batch 1,
#     sequence 128; GPT-2's fp16 decoding step with the shared key/value cache, batch 1, past 128)
#     with the defaults and each candidate setting: cuBLASLt's split-K only in place, or none
#     (TFH_CUDA_GEMM_SPLIT_K); the weights prefetched into L2 12 or 24 MiB ahead
#     (TFH_CUDA_PREFETCH_WEIGHTS); programmatic dependent launch (TFH_CUDA_PDL); GPT-2's
#     products on tfhost's few-row kernel, with and without the prefetch
#     (TFH_CUDA_FEW_ROW_GEMM=always); each model with GemmFastGelu; GPT-2 with the decode
#     attention's wide blocks (TFH_CUDA_DECODE_ATTENTION=wide); all of them at once (`combined`,
#     then checked against the float32 export), taking turns over
#     --rounds rounds: the spread between processes beside the settings' differences; then the
#     targets' other batches (BERT 8 and 64, GPT-2 8 and 128) once;
#  2. with Nsight Compute (ncu), each kernel's time in eager runs of the same two (untuned, so
#     that only the model's kernels run; ncu flushes the caches before each kernel, as a
#     run meets its weights in memory): one run's kernels summed, per kernel name, beside the
#     replayed run's latency (on an H200 the sum was larger: in the replay a kernel finds the
#     activations it reads in L2, just written);
#  3. the kernel benchmark at batch 1 (each kernel as a replayed graph, L2-warm).
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
    -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
    *) BUNDLE=$1 ;;
  esac
  shift
done
# shellcheck source=scripts/gpu-results.sh
. scripts/gpu-results.sh
gpu_results "$PWD/gpu-profile-out"

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
optimize() {  # the fp16 models, and each with GemmFastGelu (cuBLASLt's GELU epilogue: one
  # launch less per layer; the tanh GELU, so BERT's approximated first)
  tf timeout 180 build/bin/tfhost optimize --input "$M/bert.onnx" --output "$M/bert_fp16.onnx" \
    --model_type bert --float16 &&
  tf timeout 180 build/bin/tfhost optimize --input "$M/bert.onnx" --output "$M/bert_fp16_gemm_gelu.onnx" \
    --model_type bert --float16 --enable_gelu_approximation --enable_gemm_fast_gelu &&
  tf timeout 180 build/bin/tfhost run configs/gpt2_fp16_decode.yaml --set model.path="$M/gpt2.onnx" \
    --set output="$M/gpt2_decode.onnx" --set verify=null --set benchmark=null &&
  sed 's/^  - pass: core.float16$/  - pass: gpt2.gemm_fast_gelu\n  - pass: core.float16/' \
    configs/gpt2_fp16_decode.yaml > "$M/gpt2_gemm_gelu.yaml" &&
  tf timeout 180 build/bin/tfhost run "$M/gpt2_gemm_gelu.yaml" --set model.path="$M/gpt2.onnx" \
    --set output="$M/gpt2_decode_gemm_gelu.onnx" --set verify=null --set benchmark=null
}
optimize > "$RESULTS/optimize.log" 2>&1 ||
  { say "gpu-profile: could not optimize: $(tail -1 "$RESULTS/optimize.log")"; exit 2; }
say "models ready in $(( $(date +%s) - T0 )) s"

# model name -> perf's arguments but the batch (the temporary folder's path has no spaces)
declare -A MODEL_ARGS=(
  [bert]="-m $M/bert_fp16.onnx --model_type bert -s 128"
  [bert-gemm-gelu]="-m $M/bert_fp16_gemm_gelu.onnx --model_type bert -s 128"
  [gpt2]="-m $M/gpt2_decode.onnx --model_type gpt2 -s 1 --past_sequence_length 128"
  [gpt2-gemm-gelu]="-m $M/gpt2_decode_gemm_gelu.onnx --model_type gpt2 -s 1 --past_sequence_length 128")
# setting name -> environment
# (Tuning, TFH_CUDA_GEMM_TUNING=on or l2, with and without TFH_CUDA_FEW_ROW_GEMM=off, was slower
# than untuned in all four December 2026 runs, docs/PERFORMANCE.md: "tuned" is left out of the
# rounds, to keep a 3-round profile within one device call)
declare -A ENVS=([untuned]="" [tuned]="TFH_CUDA_GEMM_TUNING=on"
                 [decode-wide]="TFH_CUDA_DECODE_ATTENTION=wide"
                 [splitk-inplace]="TFH_CUDA_GEMM_SPLIT_K=inplace" [splitk-off]="TFH_CUDA_GEMM_SPLIT_K=off"
                 [prefetch-12]="TFH_CUDA_PREFETCH_WEIGHTS=12" [prefetch-24]="TFH_CUDA_PREFETCH_WEIGHTS=24"
                 [pdl]="TFH_CUDA_PDL=on"
                 [few-row]="TFH_CUDA_FEW_ROW_GEMM=always"
                 [few-row-prefetch]="TFH_CUDA_FEW_ROW_GEMM=always TFH_CUDA_PREFETCH_WEIGHTS=24"
                 [combined]="TFH_CUDA_DECODE_ATTENTION=wide TFH_CUDA_GEMM_SPLIT_K=off TFH_CUDA_PREFETCH_WEIGHTS=24 TFH_CUDA_PDL=on")
TABLE=$RESULTS/latency.tsv
: > "$TABLE"
perf_one() {  # model setting batch round: one process's P50 into the table
  local log=$RESULTS/perf_$1_$2_b$3_r$4.txt p50
  # shellcheck disable=SC2086  # (word splitting wanted: the setting's variables, the arguments)
  env ${ENVS[$2]} LD_LIBRARY_PATH="$LIBS" timeout 120 build/bin/tfhost perf ${MODEL_ARGS[$1]} -b "$3" \
    --use_gpu --cuda_graph --io_binding --samples 500 --warmup 20 > "$log" 2>&1
  p50=$(sed -n 's/^Latency P50: \([0-9.]*\) ms/\1/p' "$log")
  echo -e "$1\t$2\t$3\t$4\t${p50:-failed}\t$(grep -o 'GEMM tuning: .*' "$log")" >> "$TABLE"
}
for r in $(seq 1 "$ROUNDS"); do
  # (BERT's products have 128 rows: the few-row kernel never fits them)
  for setting in untuned splitk-inplace splitk-off prefetch-12 prefetch-24 pdl; do
    perf_one bert "$setting" 1 "$r"
  done
  perf_one bert-gemm-gelu untuned 1 "$r"
  perf_one bert-gemm-gelu combined 1 "$r"
  # (few-row: tfhost's few-row kernel for every decoding product; warm in L2 it beat cuBLASLt,
  # from memory it lost: with the weights prefetched it may win)
  for setting in untuned splitk-inplace splitk-off prefetch-12 prefetch-24 pdl few-row \
      few-row-prefetch; do
    perf_one gpt2 "$setting" 1 "$r"
  done
  perf_one gpt2-gemm-gelu untuned 1 "$r"
  # (up to 512 threads a block in the decode attention: batch 1 has 12 blocks for 132 SMs)
  perf_one gpt2 decode-wide 1 "$r"
  perf_one gpt2-gemm-gelu decode-wide 1 "$r"
  # (every candidate at once, with GemmFastGelu: what the targets would get if each helps)
  perf_one gpt2-gemm-gelu combined 1 "$r"
done
# The candidates all at once give the float32 export's outputs (PDL, the prefetch branch and the
# others are new code paths on a GPU; the emulator runs each launch to its end): compare, as
# gpu-check does for the defaults.
for pair in bert:bert_fp16_gemm_gelu gpt2:gpt2_decode_gemm_gelu; do
  model=${pair%%:*}
  args="-b 2 -s 128"
  [ "$model" = gpt2 ] && args="-b 2 -s 1 --past_sequence_length 128"
  # shellcheck disable=SC2086  # (word splitting wanted: the setting's variables, the arguments)
  env ${ENVS[combined]} LD_LIBRARY_PATH="$LIBS" timeout 180 build/bin/tfhost compare \
    --baseline_model "$M/$model.onnx" --optimized_model "$M/${pair#*:}.onnx" --model_type "$model" \
    --samples 3 --use_gpu --cuda_graph $args > "$RESULTS/compare_${model}_combined.txt" 2>&1
  rc=$?
  what=$(grep -E '^(PASS|FAIL)|max abs diff' "$RESULTS/compare_${model}_combined.txt" | head -3 | tr '\n' ';')
  say "compare $model (GemmFastGelu, combined) on the GPU: exit $rc; ${what:-$(tail -1 "$RESULTS/compare_${model}_combined.txt")}"
done

# The targets' other batches, once, with the defaults.
for b in 8 64; do perf_one bert untuned "$b" 1; done
for b in 8 128; do perf_one gpt2 untuned "$b" 1; done
say "latency rounds done in $(( $(date +%s) - T0 )) s"

# The kernel benchmark at batch 1 (each kernel as a replayed graph of 20 launches, L2-warm).
tf timeout 120 build/bin/tfh_bench_cuda_kernels --batch 1 --sequence 128 --past 128 --iterations 50 \
  > "$RESULTS/kernels_b1.txt" 2>&1 || say "kernel benchmark: exit $? ($(tail -1 "$RESULTS/kernels_b1.txt"))"

NCU=$(command -v ncu || ls /usr/local/cuda/bin/ncu /opt/nvidia/nsight-compute/*/ncu 2>/dev/null | head -1)
if [ "$NCU_ON" = 1 ] && [ -n "$NCU" ]; then
  for model in bert gpt2; do
    # Three eager runs (the last one's kernels are summed: the first may differ); ncu passes the
    # environment on.
    timeout 240 "$NCU" --clock-control none --metrics gpu__time_duration.sum \
      --csv --print-units base --log-file "$RESULTS/ncu_$model.csv" \
      env LD_LIBRARY_PATH="$LIBS" build/bin/tfhost perf ${MODEL_ARGS[$model]} -b 1 --use_gpu --io_binding \
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
    if f[4] != "failed":
        rows[(f[0], f[1], int(f[2]))].append(float(f[4]))
print("replayed graphs, IO binding (P50 of 500 runs per process; median [min-max] of the rounds):")
p50 = {}
for (model, setting, batch), v in rows.items():
    p50[(model, setting, batch)] = statistics.median(v)
    print(f"  {model:14} {setting:14} batch {batch:<3} {statistics.median(v):.3f} ms "
          f"[{min(v):.3f}-{max(v):.3f}] ({len(v)} round{'s' if len(v) > 1 else ''})")
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
    base = p50.get((model, "untuned", 1))
    print(f"ncu {model}: {len(run)} kernels in a run (of {len(names)} profiled), {total_us:.1f} us summed (caches flushed before each)"
          + (f"; the replayed untuned run: {base * 1000:.1f} us ({base * 1000 - total_us:+.1f} us "
             f"against the sum)" if base else ""))
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
