#!/usr/bin/env bash
# The platform against its Python PyTorch peer, step by step (bench/README.md): builds msd_peer_bench,
# then runs every step in the platform and in the peer alternately, ROUNDS times each, with the same
# threads, and prints the median seconds per iteration of each side and the ratio peer / platform
# (above 1: the platform is faster).
#
#   bench/compare_with_peer.sh [--threads T] [--rounds R] [--build DIR] [STEP ...]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
THREADS=2 ROUNDS=3 BUILD="$ROOT/build" STEPS=()
# Debian's interpreter, which python3-torch installs into (a python3 earlier on PATH may lack it).
PYTHON="${PYTHON:-/usr/bin/python3}"
# msd and msd_peer_bench link tcmalloc (host/core/CMakeLists.txt); the peer gets it preloaded, so both
# sides allocate alike.
TCMALLOC=$(ls /usr/lib/*/libtcmalloc_minimal.so.4 2>/dev/null | head -n 1)
while [ $# -gt 0 ]; do
  case "$1" in
    --threads) THREADS="$2"; shift 2 ;;
    --rounds) ROUNDS="$2"; shift 2 ;;
    --build) BUILD="$2"; shift 2 ;;
    *) STEPS+=("$1"); shift ;;
  esac
done
[ ${#STEPS[@]} -gt 0 ] || STEPS=(toy_teacher toy_dm unet_teacher unet_dm toy_onestep toy_heun35)
"$PYTHON" -c "import torch" 2>/dev/null || {
  echo "the peer needs Debian's PyTorch: apt-get install python3-torch" >&2; exit 2; }

cmake -S "$ROOT" -B "$BUILD" -DMSD_BUILD_BENCH=ON > /dev/null
cmake --build "$BUILD" --target msd_peer_bench msd_peak_bench -j2 > /dev/null
PEAK=$("$BUILD/bench/msd_peak_bench" --threads "$THREADS" | awk '$1 == "peak" {print $2}')

# Iterations per timing: about 2 to 10 s of work per side on 2 cores; FLOPs counted over a few.
declare -A ITERATIONS=([toy_teacher]=400 [toy_dm]=500 [unet_teacher]=6 [unet_dm]=10 [toy_onestep]=400 [toy_heun35]=40)
declare -A WARMUP=([toy_teacher]=20 [toy_dm]=20 [unet_teacher]=2 [unet_dm]=2 [toy_onestep]=20 [toy_heun35]=4)
declare -A COUNTED=([toy_teacher]=5 [toy_dm]=5 [unet_teacher]=1 [unet_dm]=2 [toy_onestep]=2 [toy_heun35]=1)

median() { sort -g | awk '{v[NR] = $1} END {print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }

echo "peak (msd_peak_bench, $THREADS threads): $PEAK GFLOP/s"
printf "%-13s %14s %14s %14s %14s %10s\n" step "platform s/it" "peer s/it" "peer/platform" "GFLOP/s" "of peak"
for step in "${STEPS[@]}"; do
  args=(--threads "$THREADS" --iterations "${ITERATIONS[$step]}" --warmup "${WARMUP[$step]}")
  platform=() peer=()
  for ((round = 0; round < ROUNDS; round++)); do
    # Alternate which side goes first, so that neither always runs on a warmer machine.
    if (( round % 2 == 0 )); then
      platform+=("$("$BUILD/bench/msd_peer_bench" "$step" "${args[@]}" | awk '{print $2}')")
      peer+=("$(LD_PRELOAD="$TCMALLOC" "$PYTHON" "$ROOT/bench/peer/peer_steps.py" "$step" "${args[@]}" | awk '{print $2}')")
    else
      peer+=("$(LD_PRELOAD="$TCMALLOC" "$PYTHON" "$ROOT/bench/peer/peer_steps.py" "$step" "${args[@]}" | awk '{print $2}')")
      platform+=("$("$BUILD/bench/msd_peer_bench" "$step" "${args[@]}" | awk '{print $2}')")
    fi
  done
  p=$(printf "%s\n" "${platform[@]}" | median)
  q=$(printf "%s\n" "${peer[@]}" | median)
  flops=$("$BUILD/bench/msd_peer_bench" "$step" --threads "$THREADS" --warmup 0 --repeats 0 --flops "${COUNTED[$step]}" |
          awk '$2 == "flops_per_iteration" {print $3}')
  printf "%-13s %14.6g %14.6g %14.3f %14.1f %9.0f%%\n" "$step" "$p" "$q" "$(awk -v a="$q" -v b="$p" 'BEGIN {print a / b}')" \
    "$(awk -v f="$flops" -v t="$p" 'BEGIN {print f / t / 1e9}')" "$(awk -v f="$flops" -v t="$p" -v k="$PEAK" 'BEGIN {print 100 * f / t / 1e9 / k}')"
done
