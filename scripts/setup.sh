#!/usr/bin/env bash
# Installs the Debian 12 packages msd-lab needs (only those missing) and builds it into build/.
# Sourced by quickstart.sh and test.sh; run on its own to just build.
set -euo pipefail

MSD_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
MSD_BUILD="${MSD_BUILD:-$MSD_ROOT/build}"

# libopenblas0-openmp, not -pthread: LibTorch runs ~25x slower on Debian's reference BLAS, and the
# pthread OpenBLAS fights LibTorch's OpenMP threads.
# gnuplot-nox draws plots and sample scatters, libpng writes image grids, dataset-fashion-mnist is the
# image dataset (IDX files under /usr/share/datasets/fashion-mnist). libgoogle-perftools-dev gives msd
# tcmalloc, which keeps freed pages that glibc's malloc returns to the kernel (host/core/CMakeLists.txt).
# libdnnl-dev: oneDNN's GEMM runs the linear layers' products (plugin_api/msd/linear.h).
MSD_PACKAGES=(cmake make g++ git libtorch-dev libopenblas0-openmp libboost-dev libtomlplusplus-dev
              libsqlitecpp-dev libsqlite3-dev libcli11-dev libgtest-dev sqlite3 gnuplot-nox libpng-dev
              dataset-fashion-mnist zlib1g-dev libgoogle-perftools-dev libdnnl-dev)
# Only the test suite needs these: GoogleMock (libgtest-dev alone lacks it), headless Chromium renders
# the HTML report, a single-node Slurm (slurmctld + slurmd + munge on localhost) runs the job-array
# launcher's integration test, and clang with its runtime builds the libFuzzer targets (scripts/fuzz.sh).
MSD_FUZZ_PACKAGES=(clang libclang-rt-14-dev)
MSD_TEST_PACKAGES=(libgmock-dev chromium fonts-dejavu-core slurm-wlm munge "${MSD_FUZZ_PACKAGES[@]}")

# Installs MSD_PACKAGES and any extra packages given as arguments, skipping those already installed.
msd_install_packages() {
  local missing=()
  for p in "${MSD_PACKAGES[@]}" "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  if [ ${#missing[@]} -gt 0 ]; then
    echo "msd-lab: installing ${missing[*]}"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
  fi
  # Make sure the OpenMP OpenBLAS is the BLAS LibTorch finds, whatever else is installed.
  local arch
  arch="$(dpkg-architecture -qDEB_HOST_MULTIARCH 2>/dev/null || echo x86_64-linux-gnu)"
  for lib in libblas.so.3 liblapack.so.3; do
    local target="/usr/lib/$arch/openblas-openmp/$lib"
    if [ -e "$target" ] && [ "$(readlink -f "/usr/lib/$arch/$lib")" != "$(readlink -f "$target")" ]; then
      $sudo update-alternatives --set "$lib-$arch" "$target"
    fi
  done
}

msd_build() {
  local tests="${1:-ON}"
  cmake -S "$MSD_ROOT" -B "$MSD_BUILD" -DCMAKE_BUILD_TYPE=Release -DMSD_BUILD_TESTS="$tests" > /dev/null
  # -j2: each LibTorch translation unit takes 1-1.5 GB and most of a core.
  cmake --build "$MSD_BUILD" -j "${MSD_JOBS:-2}"
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  msd_install_packages
  msd_build "${MSD_BUILD_TESTS:-ON}"
fi
