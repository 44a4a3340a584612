#!/usr/bin/env bash
# Installs what is missing (Debian 12, as root or with sudo), then configures and builds tfhost
# into build/. Idempotent: a second run only rebuilds what changed.
#   BUILD_DIR=build  JOBS=$(nproc)  TFH_WITH_CUDA=AUTO|ON|OFF  TFH_CUDA_ARCHITECTURES=90
# A release build for A100 and H100/H200 GPUs: BUILD_DIR=build-release TFH_CUDA_ARCHITECTURES='80;90'.
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
apt_updated=0
apt_install() {
  if [ "$apt_updated" = 0 ]; then $SUDO apt-get update -qq; apt_updated=1; fi
  echo "setup: installing $*"
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

PACKAGES=(cmake g++ make libdnnl-dev libonnx-testdata
          libprotobuf-dev protobuf-compiler libonnx-dev
          libboost-dev libboost-program-options-dev libboost-filesystem-dev libboost-context-dev
          libyaml-cpp-dev libgtest-dev nlohmann-json3-dev)
missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
command -v node >/dev/null || missing+=(nodejs)
command -v npm >/dev/null || missing+=(npm)
((${#missing[@]})) && apt_install "${missing[@]}"

# ONNX Runtime (CPU) for the compatibility tests and as the benchmark peer: the npm package
# onnxruntime-node, whose CPU library ships inside the package (nothing downloaded at install).
if [ ! -f tools/ort/node_modules/onnxruntime-node/package.json ]; then
  echo "setup: installing onnxruntime-node into tools/ort"
  (cd tools/ort && ONNXRUNTIME_NODE_INSTALL=skip npm ci --no-audit --no-fund --loglevel=error)
fi

BUILD_DIR=${BUILD_DIR:-build}
JOBS=${JOBS:-$(nproc)}
if [ ! -f "$BUILD_DIR/CMakeCache.txt" ]; then
  cmake -S . -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=Release -DTFH_WITH_CUDA="${TFH_WITH_CUDA:-AUTO}" \
    -DTFH_CUDA_ARCHITECTURES="${TFH_CUDA_ARCHITECTURES:-90}"
fi
cmake --build "$BUILD_DIR" -j "$JOBS"
