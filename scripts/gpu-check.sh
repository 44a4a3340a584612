#!/usr/bin/env bash
# Runs on a GPU machine from the bundle scripts/gpu-bundle.sh made (that machine has CUDA's
# libraries and driver, python3 with onnx, numpy, torch and transformers, and no package
# registry): every GPU test, then the GPU benchmarks, then a summary.
#
#   bash scripts/gpu-check.sh [--quick] [--tests-only] [--sanitize] [--unpack-only] [BUNDLE]
#                                             (default bundle: gpu-bundle/tfhost-gpu.tar.xz)
#
# --quick: batch 1 only in the benchmarks, the targets' measurements first, tfhost's steps started
# only in the first 390 s (what is left is reported as skipped or cut short, not as failed) and
# PyTorch's side in the rest: the whole check within 600 s. --tests-only: the
# GPU tests and nothing else (a quick rerun after a fix). --unpack-only: unpack the bundle, find
# CUDA's libraries, write the binaries' library path to build/bundle-ld-path and stop (for
# scripts/gpu-profile.sh). --sanitize: the kernel tests once more
# under compute-sanitizer's memcheck (out-of-bounds and misaligned accesses), when the machine has it. Logs and results go to $OUT when set (the device tool
# brings them back), else to gpu-check-out/. Exit status: 0 when every GPU test passed, 1 if any
# failed, 2 when it could not run (no bundle, no GPU). With $OUT set, the logs end up packed in
# $OUT/logs.tar.gz beside summary.txt.
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
QUICK=0
TESTS_ONLY=0
SANITIZE=0
UNPACK_ONLY=0
BUNDLE=gpu-bundle/tfhost-gpu.tar.xz
for a in "$@"; do
  case "$a" in
    --quick) QUICK=1 ;;
    --tests-only) TESTS_ONLY=1 ;;
    --sanitize) SANITIZE=1 ;;
    --unpack-only) UNPACK_ONLY=1 ;;
    *) BUNDLE=$a ;;
  esac
done
# shellcheck source=scripts/gpu-results.sh
. scripts/gpu-results.sh
gpu_results "$ROOT/gpu-check-out"
# --quick stops starting tfhost's benchmarks 390 s in, so that PyTorch's side (last) still has
# about three minutes within the device tool's 600 s per command; each step's time limit is
# also cut to what is left (`lim N`), so that nothing hung eats the rest.
DEADLINE=$(( T0 + 100000 ))
# (TFH_GPU_CHECK_QUICK_S: another budget for tfhost's steps, to try the script's time-up paths.)
[ "$QUICK" = 1 ] && DEADLINE=$(( T0 + ${TFH_GPU_CHECK_QUICK_S:-390} ))
left() { echo $(( DEADLINE - $(date +%s) )); }
lim() { local l; l=$(left); [ "$l" -lt 5 ] && l=5; [ "$1" -lt "$l" ] && echo "$1" || echo "$l"; }
out_of_time() { [ "$(left)" -lt 15 ]; }
# Whether a step that exited `$1` was stopped by its limit because --quick's time ran out (then
# it is reported as cut short, not as a failure).
cut_short() { { [ "$1" = 124 ] || [ "$1" = 137 ]; } && [ "$(left)" -lt 10 ]; }
# perf's modes, in order: as the targets are measured (graph) first under --quick.
PERF_MODES_DEFAULT="eager graph"
[ "$QUICK" = 1 ] && PERF_MODES_DEFAULT="graph eager"

[ -f "$BUNDLE" ] || { echo "gpu-check: no bundle at $BUNDLE (make it with scripts/gpu-bundle.sh and carry gpu-bundle/)" >&2; exit 2; }
# TFH_GPU_CHECK_DRY=1 goes through every step on a machine without a GPU (the tests then skip):
# for trying the script itself.
DRY=${TFH_GPU_CHECK_DRY:-0}
if ! nvidia-smi -L > "$RESULTS/nvidia-smi.txt" 2>&1; then
  if [ "$DRY" != 1 ]; then
    echo "gpu-check: no NVIDIA GPU here (nvidia-smi failed)" >&2
    exit 2
  fi
  echo "no GPU (dry run)" > "$RESULTS/nvidia-smi.txt"
fi
say "gpu: $(head -1 "$RESULTS/nvidia-smi.txt")"

# ---- unpack: the binaries go where they were built (they hold absolute paths into the source
# and build folders); a link makes that path this checkout when it differs.
rm -rf build/bin build/plugins build/tests build/bundle-lib
mkdir -p build shared-bundle
# (xz, or python3's lzma where the machine has no xz)
unxz() { if command -v xz >/dev/null; then xz -dc "$1"; else
  python3 -c 'import lzma, shutil, sys; shutil.copyfileobj(lzma.open(sys.argv[1]), sys.stdout.buffer)' "$1"; fi; }
unxz "$BUNDLE" | tar -C "$ROOT" -xf - build || { echo "gpu-check: could not unpack $BUNDLE" >&2; exit 2; }
unxz "$BUNDLE" | tar -C "$ROOT/shared-bundle" --strip-components=1 -xf - shared
SRC=$(cat build/bundle-source-dir)
if [ "$SRC" != "$ROOT" ]; then
  if [ "$DRY" = 1 ] && [ -d "$SRC" ]; then
    :  # trying the script where it was built: the paths are real
  elif [ -e "$SRC" ] && [ ! -L "$SRC" ]; then
    echo "gpu-check: the tests were built for $SRC, which exists here and is not this checkout" >&2
    exit 2
  else
    mkdir -p "$(dirname "$SRC")" && ln -sfn "$ROOT" "$SRC"
  fi
  # (the tests open files under that path: without it every one of them would fail)
  if [ ! -d "$SRC/build" ]; then
    echo "gpu-check: could not make $SRC lead to this checkout (the tests were built there)" >&2
    exit 2
  fi
fi
# The bundle's libraries for tfhost's binaries only (python3 and torch keep the machine's own).
LIBS="$ROOT/build/bundle-lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
tf() { LD_LIBRARY_PATH="$LIBS" "$@"; }
# CUDA's own libraries (libcudart, libcublasLt) are not in the bundle: they come from this
# machine. The binaries look in the folder they were built against (RUNPATH: this build's
# /usr/local/cuda/lib) and in the loader's cache; where neither holds them (another CUDA layout,
# or only PyTorch's nvidia-* wheels), the folders that do are found and put on the binaries' path.
cuda_libs_missing() {
  tf ldd build/bin/tfhost build/tests/tfh_cuda_tests 2>/dev/null | awk '/=> not found/ {print $1}' | sort -u
}
cuda_lib_dir() {  # the first folder holding library $1, or nothing
  local d nv
  nv=$(python3 -c 'import nvidia; print(" ".join(nvidia.__path__))' 2>/dev/null)
  for d in /usr/local/cuda/lib64 /usr/local/cuda/lib /usr/local/cuda/targets/x86_64-linux/lib \
           /usr/local/cuda-*/lib64 /usr/local/cuda-*/lib /usr/local/cuda-*/targets/x86_64-linux/lib \
           /usr/lib/x86_64-linux-gnu $(for p in $nv; do echo "$p"/*/lib; done); do
    [ -e "$d/$1" ] && { echo "$d"; return; }
  done
  d=$(timeout 60 find /usr /opt /lib -name "$1" -print -quit 2>/dev/null)
  [ -n "$d" ] && dirname "$d"
}
for lib in $(cuda_libs_missing); do
  dir=$(cuda_lib_dir "$lib")
  if [ -z "$dir" ]; then
    say "gpu-check: $lib (CUDA's, not bundled) is not on this machine (the bundle was built with $(cat build/bundle-cuda 2>/dev/null || echo 'CUDA 13'))"
    exit 2
  fi
  case ":$LIBS:" in *":$dir:"*) ;; *) LIBS="$LIBS:$dir" ;; esac
  say "cuda libraries: $lib from $dir"
done
if [ -n "$(cuda_libs_missing)" ]; then
  say "gpu-check: still not loadable: $(cuda_libs_missing | tr '\n' ' ')"
  exit 2
fi
say "bundle: commit $(cat build/bundle-commit), $(wc -l < build/bundle-libs.txt) libraries, built with $(cat build/bundle-cuda 2>/dev/null || echo 'CUDA (version not recorded)')"
say "tfhost: $(tf build/bin/tfhost --version 2>&1 | head -1)"
if [ "$UNPACK_ONLY" = 1 ]; then
  echo "$LIBS" > build/bundle-ld-path  # (for scripts/gpu-profile.sh)
  exit 0
fi

# ---- GPU tests: the CUDA kernels against the CPU ones, and every other GPU-only test.
status=0
if [ -x build/tests/tfh_cuda_tests ]; then
  # (A kernel that hangs must not take the whole run: 300 s is several times what they need.)
  tf timeout 300 build/tests/tfh_cuda_tests --gtest_output="xml:$RESULTS/cuda_tests.xml" > "$RESULTS/cuda_tests.log" 2>&1
  rc=$?
  [ $rc -ne 0 ] && status=1
  # On a GPU machine nothing may skip itself into green.
  if [ "$DRY" != 1 ] && grep -q '^\[  SKIPPED \] [0-9]' "$RESULTS/cuda_tests.log"; then
    say "cuda tests: some skipped on a machine with a GPU"
    status=1
  fi
  say "cuda tests: $(grep -E '^\[  PASSED  \]|^\[  FAILED  \] [0-9]|^\[  SKIPPED \] [0-9]' "$RESULTS/cuda_tests.log" | tr '\n' ' ') (exit $rc)"
  grep -E '^\[  FAILED  \] [A-Z]' "$RESULTS/cuda_tests.log" | sort -u | sed 's/^/  /' | tee -a "$SUMMARY"
else
  say "cuda tests: not in the bundle (a build without CUDA?)"
  status=1
fi

# ---- every bundled export (unfused: CUDA kernels wherever they take a node) on the GPU against
# PyTorch's outputs
EXPORTS=()
for d in models/*/; do [ -f "$d/model.onnx" ] && EXPORTS+=("$d"); done
tf timeout "$(lim 120)" build/bin/tfhost check "${EXPORTS[@]}" --use_gpu > "$RESULTS/check_exports.txt" 2>&1
rc=$?
if cut_short $rc; then say "exports vs PyTorch on the GPU: cut short (--quick's time for tfhost is up)"
elif [ $rc -ne 0 ] && [ "$DRY" != 1 ]; then status=1; fi
say "exports vs PyTorch on the GPU (tfhost check --use_gpu, ${#EXPORTS[@]} models): exit $rc; $(grep -c '^    ok ' "$RESULTS/check_exports.txt") outputs ok, $(grep -c '^    FAIL ' "$RESULTS/check_exports.txt") failed"
grep '^    FAIL ' "$RESULTS/check_exports.txt" | head -5 | tee -a "$SUMMARY"

if [ "$SANITIZE" = 1 ]; then
  SAN=$(command -v compute-sanitizer || ls /usr/local/cuda*/bin/compute-sanitizer 2>/dev/null | head -1)
  if [ -n "$SAN" ] && [ -x build/tests/tfh_cuda_tests ]; then
    tf timeout 300 "$SAN" --tool memcheck --error-exitcode 3 build/tests/tfh_cuda_tests \
      --gtest_filter='CudaKernels.*:*CudaAttention.*:CudaRuntime.*-CudaRuntime.Generate*' > "$RESULTS/memcheck.log" 2>&1
    rc=$?
    # (3: memcheck found errors; any other failure, with nothing found, is the tool refusing this
    # machine, as on gVisor: "Device not supported". Reported, not counted as a test failure.)
    if [ $rc = 3 ] || grep -q '^========= Invalid' "$RESULTS/memcheck.log"; then status=1
    elif [ $rc != 0 ]; then say "memcheck: could not run here (exit $rc): $(grep -m1 -iE 'error|not supported' "$RESULTS/memcheck.log")"; fi
    say "memcheck: exit $rc; $(grep -c '^========= Invalid' "$RESULTS/memcheck.log") invalid accesses; $(tail -1 "$RESULTS/memcheck.log")"
    grep -A3 '^========= Invalid' "$RESULTS/memcheck.log" | head -20 | tee -a "$SUMMARY"
  else
    say "memcheck: compute-sanitizer not found on this machine"
  fi
fi

if [ "$TESTS_ONLY" = 1 ]; then
  say "gpu-check: tests only, done in $(( $(date +%s) - T0 )) s; GPU tests $([ $status = 0 ] && echo passed || echo FAILED)"
  exit $status
fi

# ---- kernel benchmarks (CUDA events; kernels only)
if [ "$QUICK" = 1 ]; then BERT_BATCHES="1"; GPT_BATCHES="1"; else BERT_BATCHES="1 8 64"; GPT_BATCHES="1 8 128"; fi
for b in $BERT_BATCHES; do
  tf timeout "$(lim 180)" build/bin/tfh_bench_cuda_kernels --batch "$b" --sequence 128 --past 128 --iterations 100 \
    > "$RESULTS/kernels_b$b.txt" 2>&1
  if grep -q '^  layer ' "$RESULTS/kernels_b$b.txt"; then
    say "kernels, BERT-base batch $b seq 128: $(grep -E '^  layer ' "$RESULTS/kernels_b$b.txt" | sed 's/  */ /g')"
    say "kernels, BERT-base batch $b attention: $(grep -E '^  attention, ' "$RESULTS/kernels_b$b.txt" | sed 's/  */ /g' | tr '\n' ';')"
    grep -E '^  gemm ' "$RESULTS/kernels_b$b.txt" | sed "s/^  */kernels, batch $b, /; s/  */ /g" | tee -a "$SUMMARY"
    say "kernels, GPT-2 decode batch $b past 128: $(grep -E '^  step ' "$RESULTS/kernels_b$b.txt" | sed 's/  */ /g' | tr '\n' ';')"
    say "kernels, GPT-2 decode batch $b attention: $(grep -E '^  decode, ' "$RESULTS/kernels_b$b.txt" | sed 's/  */ /g' | tr '\n' ';')"
  else
    say "kernels, batch $b: $(tail -1 "$RESULTS/kernels_b$b.txt")"
  fi
done
for b in $GPT_BATCHES; do
  case " $BERT_BATCHES " in *" $b "*) continue ;; esac
  tf timeout "$(lim 180)" build/bin/tfh_bench_cuda_kernels --batch "$b" --sequence 1 --past 128 --iterations 100 \
    > "$RESULTS/kernels_decode_b$b.txt" 2>&1
  say "kernels, GPT-2 decode batch $b past 128: $(grep -E '^  step ' "$RESULTS/kernels_decode_b$b.txt" | sed 's/  */ /g' | tr '\n' ';')"
  say "kernels, GPT-2 decode batch $b attention: $(grep -E '^  decode, ' "$RESULTS/kernels_decode_b$b.txt" | sed 's/  */ /g' | tr '\n' ';')"
  # (the GPT-2 step's GEMMs: with --sequence 1 the BERT layer's are the same shapes)
  sed -n '/^GPT-2 decode step/,$p' "$RESULTS/kernels_decode_b$b.txt" | grep -E '^  gemm ' |
    sed "s/^  */kernels, batch $b, /; s/  */ /g" | tee -a "$SUMMARY"
done

# ---- whole models through tfhost's runtime on the GPU (--use_gpu), when it exists
MODELS=$(mktemp -d)
timeout "$(lim 300)" python3 shared-bundle/tools/fill_weights.py shared-bundle/models/bert_base_opset14_skeleton.onnx "$MODELS/bert.onnx" > "$RESULTS/fill.log" 2>&1 &&
  timeout "$(lim 300)" python3 shared-bundle/tools/fill_weights.py shared-bundle/models/gpt2past_base_opset14_skeleton.onnx "$MODELS/gpt2.onnx" >> "$RESULTS/fill.log" 2>&1
if [ -f "$MODELS/bert.onnx" ]; then
  tf timeout "$(lim 120)" build/bin/tfhost optimize --input "$MODELS/bert.onnx" --output "$MODELS/bert_fp16.onnx" --model_type bert --float16 > "$RESULTS/optimize_bert.log" 2>&1
  tf timeout "$(lim 120)" build/bin/tfhost optimize --input "$MODELS/gpt2.onnx" --output "$MODELS/gpt2_fp16.onnx" --model_type gpt2 --float16 > "$RESULTS/optimize_gpt2.log" 2>&1
  # BERT with each MLP's MatMul + GELU as one GemmFastGelu (cuBLASLt's GELU epilogue; the
  # tanh form, so --enable_gelu_approximation first).
  tf timeout "$(lim 120)" build/bin/tfhost optimize --input "$MODELS/bert.onnx" --output "$MODELS/bert_fp16_gemm_gelu.onnx" \
    --model_type bert --float16 --enable_gelu_approximation --enable_gemm_fast_gelu \
    > "$RESULTS/optimize_bert_gemm_gelu.log" 2>&1
  # BERT in bfloat16 (configs/bert_bf16.yaml's pipeline; full runs only).
  if [ "$QUICK" != 1 ]; then
    tf timeout "$(lim 120)" build/bin/tfhost run configs/bert_bf16.yaml --set model.path="$MODELS/bert.onnx" \
      --set output="$MODELS/bert_bf16.onnx" --set verify=null --set benchmark=null \
      > "$RESULTS/optimize_bert_bf16.log" 2>&1
  fi
  # Each model and batch twice: eager with host inputs/outputs, then as the targets are
  # measured (CUDA graph replay, inputs on the GPU, outputs left there).
  perf_gpu() {  # label model model_type batch extra-args...
    local label=$1 model=$2 type=$3 b=$4; shift 4
    if out_of_time; then say "tfhost $label batch $b: skipped (--quick's time for tfhost is up)"; return; fi
    for mode in ${PERF_MODES:-$PERF_MODES_DEFAULT}; do
      if out_of_time; then say "tfhost $label batch $b ($mode): skipped (--quick's time for tfhost is up)"; continue; fi
      local extra=()
      [ "$mode" = graph ] && extra=(--cuda_graph --io_binding)
      local log="$RESULTS/perf_${label}_b${b}_${mode}.txt"
      local rc=0
      tf timeout "$(lim 300)" build/bin/tfhost perf -m "$model" --model_type "$type" -b "$b" "$@" --use_gpu \
           "${extra[@]}" --samples 200 --warmup 10 > "$log" 2>&1 || rc=$?
      if cut_short $rc; then
        say "tfhost $label batch $b ($mode): cut short (--quick's time for tfhost is up)"
      elif [ $rc = 0 ]; then
        say "tfhost $label batch $b ($mode): $(grep 'Latency P50' "$log"); $(grep -o 'CUDA graphs: [^(,]*,[^(,]*' "$log" | head -1 | sed 's/ *$//') $(grep -o '([0-9]* GPU operations in a run)' "$log" | head -1); $(grep -o 'values copied between CPU and GPU mid-run: [0-9]*' "$log" | head -1)"
        grep -o '(not capturable: .*' "$log" | sed 's/^/  /' | tee -a "$SUMMARY"
        grep -o 'GEMM tuning: .*' "$log" | sed 's/^/  /' | tee -a "$SUMMARY"
      else
        say "tfhost $label batch $b ($mode): FAILED: $(tail -1 "$log")"
        [ "$DRY" = 1 ] || status=1
      fi
    done
  }
  # Full-size correctness on the GPU: the fused fp16 model (CUDA graphs) against the original
  # float32 export (unfused: other kernels, some nodes on the CPU), 3 samples each.
  compare_gpu() {  # label original optimized model_type args...
    local label=$1 base=$2 opt=$3 type=$4; shift 4
    if out_of_time; then say "compare $label on the GPU: skipped (--quick's time for tfhost is up)"; return; fi
    local log="$RESULTS/compare_$label.txt"
    tf timeout "$(lim 180)" build/bin/tfhost compare --baseline_model "$base" --optimized_model "$opt" \
      --model_type "$type" --samples 3 --use_gpu --cuda_graph "$@" > "$log" 2>&1
    local rc=$?
    local what
    what=$(grep -E '^(PASS|FAIL)|max abs diff' "$log" | head -4 | tr '\n' ';')
    [ -z "$what" ] && what=$(tail -1 "$log")
    if cut_short $rc; then say "compare $label on the GPU: cut short (--quick's time for tfhost is up)"; return; fi
    say "compare $label on the GPU: exit $rc; $what"
    [ $rc -ne 0 ] && [ "$DRY" != 1 ] && status=1
  }
  # GPT-2 as decoding runs it: float16 past/present, int32 inputs, float32 logits, with
  # per-step presents (configs/gpt2_fp16.yaml), and with one key/value buffer per layer
  # updated in place (configs/gpt2_fp16_decode.yaml: gpt2.shared_kv_cache). `tfhost generate`
  # times the model's step (until the GPU is done; the median over the steps), the tokens'
  # arg-max on the GPU included, apart from copying the token ids back: a prompt of 128
  # tokens, then 32 steps (past 128 to 159).
  gpt2_decode_model() {  # config output
    tf timeout "$(lim 120)" build/bin/tfhost run "$1" --set model.path="$MODELS/gpt2.onnx" --set output="$2" \
      --set verify=null --set benchmark=null >> "$RESULTS/optimize_gpt2_decode.log" 2>&1
  }
  gpt2_decode_model configs/gpt2_fp16.yaml "$MODELS/gpt2_fp16io.onnx"
  gpt2_decode_model configs/gpt2_fp16_decode.yaml "$MODELS/gpt2_fp16io_shared.onnx"
  # The same with each MLP's MatMul + FastGelu as one GemmFastGelu (cuBLASLt's GELU epilogue:
  # one launch less per layer, but at M = batch rows the heuristic may pick a slower kernel than
  # for the plain GEMM; measured, not assumed).
  sed 's/^  - pass: core.float16$/  - pass: gpt2.gemm_fast_gelu\n  - pass: core.float16/' \
    configs/gpt2_fp16_decode.yaml > configs/gpt2_fp16_decode_gemm_gelu.tmp.yaml
  gpt2_decode_model configs/gpt2_fp16_decode_gemm_gelu.tmp.yaml "$MODELS/gpt2_fp16io_shared_gemm_gelu.onnx"
  rm -f configs/gpt2_fp16_decode_gemm_gelu.tmp.yaml
  PROMPT128=$(seq -s ' ' 101 228)
  generate_gpu() {  # label model batch extra-args...
    local label=$1 model=$2 b=$3; shift 3
    local log="$RESULTS/generate_${label//[^a-z0-9]/_}_b$b.txt"
    if out_of_time; then say "tfhost gpt2-fp16 generate, $label, batch $b: skipped (--quick's time for tfhost is up)"; return; fi
    local rc=0
    tf timeout "$(lim 300)" build/bin/tfhost generate --model "$model" --prompt "$PROMPT128" -n 33 \
         -b "$b" --use_gpu "$@" > "$log" 2>&1 || rc=$?
    if cut_short $rc; then
      say "tfhost gpt2-fp16 generate, $label, batch $b: cut short (--quick's time for tfhost is up)"
    elif [ $rc = 0 ]; then
      say "tfhost gpt2-fp16 generate, $label, batch $b, past 128-159: $(grep -o 'then .*' "$log")"
    else
      say "tfhost gpt2-fp16 generate, $label, batch $b: FAILED: $(tail -1 "$log")"
      [ "$DRY" = 1 ] || status=1
    fi
  }
  # The two targets' models checked against their float32 exports, then timed, first of all (a
  # --quick run that runs out of time still has them); the variants after.
  compare_gpu bert-base "$MODELS/bert.onnx" "$MODELS/bert_fp16.onnx" bert -b 2 -s 128
  compare_gpu gpt2-shared-cache-decode "$MODELS/gpt2.onnx" "$MODELS/gpt2_fp16io_shared.onnx" gpt2 \
    -b 2 -s 1 --past_sequence_length 128
  # The targets' batches all (under --quick, batches past 1 as replayed graphs only): the targets
  # ask for them reported, so they come before the variants.
  target_modes() { [ "$QUICK" = 1 ] && [ "$1" != 1 ] && echo graph || echo "${PERF_MODES:-$PERF_MODES_DEFAULT}"; }
  for b in 1 8 64; do
    PERF_MODES=$(target_modes $b) perf_gpu bert-base-fp16-s128 "$MODELS/bert_fp16.onnx" bert "$b" -s 128
  done
  # The GPT-2 target's step exactly (past 128), as decoding runs it: fp16 cache updated in place.
  for b in 1 8 128; do
    PERF_MODES=$(target_modes $b) perf_gpu gpt2-fp16io-shared-cache-decode-past128 \
      "$MODELS/gpt2_fp16io_shared.onnx" gpt2 "$b" -s 1 --past_sequence_length 128
  done
  compare_gpu gpt2-decode "$MODELS/gpt2.onnx" "$MODELS/gpt2_fp16.onnx" gpt2 -b 2 -s 1 --past_sequence_length 128
  compare_gpu bert-base-gemm-fast-gelu "$MODELS/bert.onnx" "$MODELS/bert_fp16_gemm_gelu.onnx" bert -b 2 -s 128
  # The attention off the Tensor Cores (the kernels before them), batch 1: the whole model's
  # side of the kernel benchmark's `attention, tensor cores` against `attention, tiled`/`warp`.
  TFH_CUDA_PREFILL_ATTENTION=simt perf_gpu bert-base-fp16-s128-simt-attention \
    "$MODELS/bert_fp16.onnx" bert 1 -s 128
  # Every GEMM tuned (TFH_CUDA_GEMM_TUNING=on: each shape's offered algorithms timed, the
  # fastest kept; off by default, as measured slower), as replayed graphs: the whole model's side
  # of the kernel benchmark's "gemm ... first/tuned" lines.
  TFH_CUDA_GEMM_TUNING=on PERF_MODES=graph perf_gpu bert-base-fp16-s128-gemm-tuned \
    "$MODELS/bert_fp16.onnx" bert 1 -s 128
  TFH_CUDA_GEMM_TUNING=on PERF_MODES=graph perf_gpu gpt2-fp16io-shared-cache-decode-past128-gemm-tuned \
    "$MODELS/gpt2_fp16io_shared.onnx" gpt2 1 -s 1 --past_sequence_length 128
  # Tuned, but without tfhost's few-row kernel (cuBLASLt's algorithms alone): what the kernel
  # changes in the whole step, where the weights stream from memory.
  TFH_CUDA_GEMM_TUNING=on TFH_CUDA_FEW_ROW_GEMM=off PERF_MODES=graph perf_gpu \
    gpt2-fp16io-shared-cache-decode-past128-gemm-tuned-no-few-row \
    "$MODELS/gpt2_fp16io_shared.onnx" gpt2 1 -s 1 --past_sequence_length 128
  if [ "$QUICK" != 1 ]; then
    # (compare's bfloat16 default, 0.15; the CPU's drift over 12 layers: 0.087, measured.)
    compare_gpu bert-base-bf16 "$MODELS/bert.onnx" "$MODELS/bert_bf16.onnx" bert -b 2 -s 128
    for b in $BERT_BATCHES; do perf_gpu bert-base-bf16-s128 "$MODELS/bert_bf16.onnx" bert "$b" -s 128; done
  fi
  # The epilogue against MatMul + BiasGelu, at batch 1 only (time).
  perf_gpu bert-base-fp16-s128-gemm-fast-gelu "$MODELS/bert_fp16_gemm_gelu.onnx" bert 1 -s 128
  for b in $GPT_BATCHES; do
    generate_gpu "shared cache + CUDA graph" "$MODELS/gpt2_fp16io_shared.onnx" "$b" --cuda_graph
    generate_gpu "per-step presents, eager" "$MODELS/gpt2_fp16io.onnx" "$b"
    perf_gpu gpt2-fp16-decode-past128 "$MODELS/gpt2_fp16.onnx" gpt2 "$b" -s 1 --past_sequence_length 128
    perf_gpu gpt2-fp16io-shared-cache-gemm-fast-gelu-decode-past128 \
      "$MODELS/gpt2_fp16io_shared_gemm_gelu.onnx" gpt2 "$b" -s 1 --past_sequence_length 128
    # The shared-cache step with the split-keys decode kernel (TFH_CUDA_DECODE_ATTENTION=split)
    # and with the one-block-per-head scalar one (=block; the default before the vectorised one).
    TFH_CUDA_DECODE_ATTENTION=split perf_gpu gpt2-fp16io-shared-cache-decode-past128-splitkeys \
      "$MODELS/gpt2_fp16io_shared.onnx" gpt2 "$b" -s 1 --past_sequence_length 128
    TFH_CUDA_DECODE_ATTENTION=block perf_gpu gpt2-fp16io-shared-cache-decode-past128-blockkernel \
      "$MODELS/gpt2_fp16io_shared.onnx" gpt2 "$b" -s 1 --past_sequence_length 128
  done
else
  say "models: could not fill the skeletons ($(tail -1 "$RESULTS/fill.log"))"
fi
rm -rf "$MODELS"

# ---- PyTorch on the same GPU (eager and torch.compile)
TORCH_ARGS=(--iterations 50)
[ "$QUICK" = 1 ] && TORCH_ARGS+=(--quick)
# (--quick keeps the whole check under the device tool's 600 s per command.)
TORCH_LIMIT=420
[ "$QUICK" = 1 ] && TORCH_LIMIT=$(( 570 - ($(date +%s) - T0) ))
[ "$TORCH_LIMIT" -lt 60 ] && TORCH_LIMIT=60
# (TFH_GPU_CHECK_TORCH=0 leaves it out: a rerun of tfhost's side after a change.)
if [ "${TFH_GPU_CHECK_TORCH:-1}" = 0 ]; then
  say "torch: left out (TFH_GPU_CHECK_TORCH=0)"
else
  PYTHONUNBUFFERED=1 timeout "$TORCH_LIMIT" python3 bench/torch_gpu.py "${TORCH_ARGS[@]}" > "$RESULTS/torch.txt" 2>&1
  grep -E '^torch' "$RESULTS/torch.txt" | tee -a "$SUMMARY"
fi

say "gpu-check: done in $(( $(date +%s) - T0 )) s; GPU tests $([ $status = 0 ] && echo passed || echo FAILED)"
exit $status
