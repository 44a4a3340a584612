#!/usr/bin/env bash
# Installs what is missing (Debian 12, as root), then configures and builds tfhost into build/.
# Idempotent: a second run only rebuilds what changed.
#   BUILD_DIR=build  JOBS=$(nproc)  TFH_WITH_CUDA=AUTO|ON|OFF
set -euo pipefail
cd "$(dirname "$0")/.."

PACKAGES=(cmake g++ make pkg-config
          libprotobuf-dev protobuf-compiler libonnx-dev
          libboost-dev libboost-program-options-dev libboost-filesystem-dev
          libyaml-cpp-dev libgtest-dev)
missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

BUILD_DIR=${BUILD_DIR:-build}
JOBS=${JOBS:-$(nproc)}
if [ ! -f "$BUILD_DIR/CMakeCache.txt" ]; then
  cmake -S . -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=Release -DTFH_WITH_CUDA="${TFH_WITH_CUDA:-AUTO}"
fi
cmake --build "$BUILD_DIR" -j "$JOBS"
