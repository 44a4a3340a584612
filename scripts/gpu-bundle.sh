#!/usr/bin/env bash
# Packs what scripts/gpu-check.sh needs on a GPU machine that has no package registry: tfhost and
# its plugins built with CUDA, the test and benchmark binaries, the non-CUDA shared libraries they
# load (protobuf, onnx, yaml-cpp, Boost, oneDNN, GoogleTest, ...; CUDA's own come from that
# machine), the model skeletons of ../shared/models and ../shared/tools/fill_weights.py.
#
#   scripts/gpu-bundle.sh [BUILD_DIR]        (default build; it must be a CUDA build)
#
# Writes gpu-bundle/tfhost-gpu.tar.xz (ignored by git; under 60 MB) and prints its size. With the
# device tool, carry the folder and run the check there:
#   run(command="bash scripts/gpu-check.sh", carry=["gpu-bundle"], timeout_s=...)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
BUILD=${1:-build}
OUTDIR=$ROOT/gpu-bundle
LIMIT_MB=60

[ -f "$BUILD/CMakeCache.txt" ] || { echo "gpu-bundle: no build in '$BUILD' (run scripts/setup.sh)" >&2; exit 2; }
echo "gpu-bundle: building $BUILD"
cmake --build "$BUILD" -j"$(nproc)" >/dev/null
"$BUILD/bin/tfhost" --version | grep -q "built with CUDA\|cuda:" && [ -x "$BUILD/tests/tfh_cuda_tests" ] ||
  { echo "gpu-bundle: '$BUILD' is not a CUDA build (configure with -DTFH_WITH_CUDA=ON)" >&2; exit 2; }

STAGE=$(mktemp -d)
trap 'rm -rf "$STAGE"' EXIT
B=$STAGE/build
mkdir -p "$B/bundle-lib" "$STAGE/shared/models" "$STAGE/shared/tools"

# Binaries, under the same paths as in the build folder (the tests know them).
copy() { mkdir -p "$B/$(dirname "$1")" && cp -p "$BUILD/$1" "$B/$1"; }
ELFS=()
for f in bin/tfhost bin/tfh_bench_cuda_kernels; do copy "$f"; ELFS+=("$B/$f"); done
# (Not the CPU emulator's runtime and plugins, tests/libtfh_cuda_emu.so and tests/emu_plugins/.)
while IFS= read -r f; do copy "$f"; ELFS+=("$B/$f"); done < <(cd "$BUILD" && find plugins tests -name '*.so' -type f ! -name libtfh_cuda_emu.so ! -path 'tests/emu_plugins/*')
# (Not tfh_cuda_emu_tests: the CUDA tests on the CPU emulator, for machines without a GPU.)
while IFS= read -r f; do copy "$f"; ELFS+=("$B/$f"); done < <(cd "$BUILD" && find tests -maxdepth 1 -name 'tfh_*_tests' ! -name tfh_cuda_emu_tests -type f)

# Shared libraries: everything the binaries load except the C library family and CUDA's own.
# (libstdc++ too: any newer one there runs these binaries, and an older one put first on the path
# would break the machine's own programs.)
skip='^(linux-vdso|ld-linux|libc\.|libm\.|libdl\.|librt\.|libpthread\.|libgcc_s\.|libstdc\+\+|libcuda\.|libcudart\.|libcublas|libnvidia|libnvrtc|libnvJitLink)'
for e in "${ELFS[@]}"; do
  ldd "$e" 2>/dev/null | awk '/=>/ {print $1, $3}'
done | sort -u | while read -r name path; do
  [[ "$name" =~ $skip ]] && continue
  [ -f "$path" ] && cp -pL "$path" "$B/bundle-lib/$name"
done

cp -p ../shared/models/*_skeleton.onnx "$STAGE/shared/models/"
cp -p ../shared/tools/fill_weights.py "$STAGE/shared/tools/"
# Where the tests were built: they carry absolute paths into the source and build folders.
grep '^CMAKE_HOME_DIRECTORY:' "$BUILD/CMakeCache.txt" | cut -d= -f2 > "$B/bundle-source-dir"
# The CUDA it was built with (the machine's libcudart/libcublasLt must be that major version).
echo "CUDA $(sed -n 's/^set(CMAKE_CUDA_COMPILER_VERSION "\(.*\)")/\1/p' "$BUILD"/CMakeFiles/*/CMakeCUDACompiler.cmake | head -1)" > "$B/bundle-cuda"
git -C "$ROOT" rev-parse HEAD > "$B/bundle-commit" 2>/dev/null || echo unknown > "$B/bundle-commit"
ls "$B/bundle-lib" > "$B/bundle-libs.txt"

mkdir -p "$OUTDIR"
tar -C "$STAGE" -cf - build shared | xz -T0 -9 > "$OUTDIR/tfhost-gpu.tar.xz.tmp"
mv "$OUTDIR/tfhost-gpu.tar.xz.tmp" "$OUTDIR/tfhost-gpu.tar.xz"
size=$(stat -c %s "$OUTDIR/tfhost-gpu.tar.xz")
echo "gpu-bundle: $OUTDIR/tfhost-gpu.tar.xz: $((size / 1048576)) MB ($(wc -l < "$B/bundle-libs.txt") libraries, commit $(cat "$B/bundle-commit"))"
if [ "$size" -gt $((LIMIT_MB * 1048576)) ]; then
  echo "gpu-bundle: over the ${LIMIT_MB} MB limit" >&2
  exit 1
fi
