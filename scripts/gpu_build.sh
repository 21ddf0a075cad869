#!/usr/bin/env bash
# Build msd-lab against the CUDA LibTorch that ships inside a PyTorch 2.x wheel (see docs/GPU.md).
#
#   scripts/gpu_build.sh [BUILD_DIR] [extra cmake args...]
#   scripts/gpu_build.sh --collect-deps [DEST]   (run on Debian 12 with the -dev packages installed)
#
# --collect-deps fills DEST (default .gpu-deps/prefix, git-ignored through .git/info/exclude) with
# what a PyTorch GPU machine lacks: toml++ (shared lib), SQLiteCpp (static) + sqlite3, CLI11, the
# Boost headers Boost.DLL needs and Boost's CMake configs (about 5.5 MiB). Carry that folder over.
#
# Environment:
#   PYTHON     interpreter whose torch provides LibTorch (default: python3)
#   MSD_DEPS   prefix holding the non-Torch dependencies (toml++, SQLiteCpp, sqlite3, CLI11,
#              Boost.DLL headers + Boost CMake configs). Default: .gpu-deps/prefix/usr if it
#              exists (a machine without Debian's -dev packages), else nothing (system packages).
#   CUDA_ARCH  CUDA architectures for Torch's CMake config (default: 9.0, Hopper)
#   JOBS       parallel build jobs (default: nproc)
#   MSD_BUILD_TESTS  ON/OFF (default OFF: GoogleTest is usually absent on GPU machines)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

if [[ "${1:-}" == "--collect-deps" ]]; then
  DEST="${2:-$ROOT/.gpu-deps/prefix}"
  mkdir -p "$DEST"
  DEST="$(cd "$DEST" && pwd)"
  TMP="$(mktemp -d)"
  trap 'rm -rf "$TMP"' EXIT
  (cd "$TMP" && apt-get download libtomlplusplus-dev libtomlplusplus3 libsqlitecpp-dev \
      libsqlite3-dev libsqlite3-0 libcli11-dev)
  for deb in "$TMP"/*.deb; do dpkg -x "$deb" "$DEST"; done
  rm -rf "$DEST/usr/share/doc" "$DEST/usr/share/lintian" "$DEST/usr/lib/x86_64-linux-gnu/libsqlite3.a"
  # Boost: only the headers Boost.DLL pulls in (plus all of boost/config), and the CMake configs.
  printf '#include <boost/dll/shared_library.hpp>\n#include <boost/dll/import.hpp>\n#include <boost/dll/runtime_symbol_info.hpp>\n#include <boost/dll/alias.hpp>\n' >"$TMP/b.cpp"
  g++ -std=c++17 -DBOOST_DLL_USE_STD_FS -M "$TMP/b.cpp" | tr ' \\' '\n\n' | grep '^/usr/include/boost/' | sort -u \
    | sed 's|^/||' >"$TMP/boost.txt"
  (cd / && tar cf - -T "$TMP/boost.txt" usr/include/boost/config) | tar xf - -C "$DEST"
  mkdir -p "$DEST/usr/lib/x86_64-linux-gnu/cmake"
  cp -r /usr/lib/x86_64-linux-gnu/cmake/Boost-1.74.0 /usr/lib/x86_64-linux-gnu/cmake/boost_headers-1.74.0 \
    /usr/lib/x86_64-linux-gnu/cmake/BoostDetectToolset-1.74.0.cmake "$DEST/usr/lib/x86_64-linux-gnu/cmake/"
  du -sh "$DEST"
  exit 0
fi
BUILD_DIR="${1:-$ROOT/build-gpu}"
shift || true
PYTHON="${PYTHON:-python3}"
CUDA_ARCH="${CUDA_ARCH:-9.0}"
JOBS="${JOBS:-$(nproc)}"
TESTS="${MSD_BUILD_TESTS:-OFF}"

TORCH_PREFIX="$("$PYTHON" -c 'import torch;print(torch.utils.cmake_prefix_path)')"
TORCH_INFO="$("$PYTHON" -c 'import torch;print(torch.__version__, "cuda", torch.version.cuda, "cxx11abi", torch.compiled_with_cxx11_abi())')"
echo "gpu_build: torch $TORCH_INFO at $TORCH_PREFIX"

if [[ -z "${MSD_DEPS+x}" ]]; then
  if [[ -d "$ROOT/.gpu-deps/prefix/usr" ]]; then MSD_DEPS="$ROOT/.gpu-deps/prefix/usr"; else MSD_DEPS=""; fi
fi
PREFIX_PATH="$TORCH_PREFIX"
[[ -n "$MSD_DEPS" ]] && PREFIX_PATH="$TORCH_PREFIX;$MSD_DEPS"
echo "gpu_build: CMAKE_PREFIX_PATH=$PREFIX_PATH"

GEN=()
command -v ninja >/dev/null 2>&1 && GEN=(-G Ninja)

# LibTorch's CMake config enables CUDA and wants nvcc; point it at the toolkit if not on PATH.
if ! command -v nvcc >/dev/null 2>&1 && [[ -x /usr/local/cuda/bin/nvcc ]]; then
  export PATH="/usr/local/cuda/bin:$PATH"
fi

cmake -S "$ROOT" -B "$BUILD_DIR" "${GEN[@]}" \
  -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_PREFIX_PATH="$PREFIX_PATH" \
  -DMSD_BUILD_TESTS="$TESTS" \
  -DTORCH_CUDA_ARCH_LIST="$CUDA_ARCH" \
  "$@"
cmake --build "$BUILD_DIR" -j "$JOBS"
echo "gpu_build: OK -> $BUILD_DIR/host/core/msd"
