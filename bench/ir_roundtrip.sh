#!/usr/bin/env bash
# Load/save benchmark of the IR on a full-size model (issue: 440 MB BERT-base round trip).
#
#   bench/ir_roundtrip.sh [MODEL.onnx] [REPEATS]
#
# Without MODEL, makes BERT-base (440 MB, seeded random weights) from the shared skeleton, outside
# the repository. For each repeat runs `tfhost optimize --opt_level 0` (no passes: a pure load+save)
# and the default `tfhost optimize` (core cleanup) under /usr/bin/time, checks that the output is
# the same model (bench/same_model.py), and prints load/save seconds (from tfhost --verbose) and
# peak RSS, as medians over the repeats, with RSS / model size.
set -euo pipefail
cd "$(dirname "$0")/.."
TFHOST=${TFHOST:-build/bin/tfhost}
WORK=${WORK:-/tmp/tfhost-bench}
mkdir -p "$WORK"
MODEL=${1:-}
REPEATS=${2:-3}
if [ -z "$MODEL" ]; then
  MODEL=$WORK/bert_base.onnx
  [ -f "$MODEL" ] || /usr/bin/python3 ../shared/tools/fill_weights.py \
      ../shared/models/bert_base_opset14_skeleton.onnx "$MODEL"
fi
size=$(stat -c %s "$MODEL")
echo "model: $MODEL ($((size / 1000000)) MB); machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"

median() { sort -g | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }

for mode in "--opt_level 0" ""; do
  loads=(); saves=(); rss=(); walls=()
  for ((r = 0; r < REPEATS; r++)); do
    out=$WORK/out.onnx
    rm -f "$out"
    log=$( { /usr/bin/time -f 'TIME %e %M' "$TFHOST" optimize --verbose --input "$MODEL" --output "$out" $mode; } 2>&1 )
    loads+=("$(grep -oP 'loaded .* in \K[0-9.]+' <<<"$log" | head -1)")
    saves+=("$(grep -oP 'saved .* in \K[0-9.]+' <<<"$log" | head -1)")
    walls+=("$(grep -oP '^TIME \K[0-9.]+' <<<"$log")")
    rss+=("$(grep -oP '^TIME [0-9.]+ \K[0-9]+' <<<"$log")")
  done
  same=$(/usr/bin/python3 bench/same_model.py "$MODEL" "$out" || true)
  rss_kb=$(printf '%s\n' "${rss[@]}" | median)
  printf '| optimize %-14s | load %5s s | save %5s s | wall %5s s | peak RSS %4d MB (%.2fx model) | %s |\n' \
    "${mode:-(core cleanup)}" "$(printf '%s\n' "${loads[@]}" | median)" \
    "$(printf '%s\n' "${saves[@]}" | median)" "$(printf '%s\n' "${walls[@]}" | median)" \
    $((rss_kb / 1000)) "$(echo "$rss_kb * 1024 / $size" | bc -l)" "$same"
done

# The peer: what onnxruntime.transformers.optimizer does to read and write a model (onnx.load /
# onnx.save_model in Python), on the same file in the same run.
loads=(); saves=(); rss=()
for ((r = 0; r < REPEATS; r++)); do
  log=$( { /usr/bin/time -f 'TIME %e %M' /usr/bin/python3 -c '
import sys, time, onnx
t0 = time.perf_counter(); m = onnx.load(sys.argv[1]); t1 = time.perf_counter()
onnx.save_model(m, sys.argv[2]); t2 = time.perf_counter()
print(f"PEER {t1 - t0:.2f} {t2 - t1:.2f}")' "$MODEL" "$WORK/peer.onnx"; } 2>&1 )
  loads+=("$(grep -oP '^PEER \K[0-9.]+' <<<"$log")")
  saves+=("$(grep -oP '^PEER [0-9.]+ \K[0-9.]+' <<<"$log")")
  rss+=("$(grep -oP '^TIME [0-9.]+ \K[0-9]+' <<<"$log")")
done
rss_kb=$(printf '%s\n' "${rss[@]}" | median)
printf '| peer: python onnx.load + onnx.save_model | load %5s s | save %5s s | | peak RSS %4d MB (%.2fx model) | |\n' \
  "$(printf '%s\n' "${loads[@]}" | median)" "$(printf '%s\n' "${saves[@]}" | median)" \
  $((rss_kb / 1000)) "$(echo "$rss_kb * 1024 / $size" | bc -l)"
