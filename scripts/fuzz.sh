#!/usr/bin/env bash
# Builds the libFuzzer targets of tests/fuzz with clang (into build-fuzz/, MSD_FUZZ_BUILD to change)
# and runs each in turn, starting from its seed corpus in tests/fuzz/corpus/<target>:
#
#   scripts/fuzz.sh                        every target for 15 s (what CI runs)
#   scripts/fuzz.sh --seconds 600 filter   one target for ten minutes
#   scripts/fuzz.sh --runs 1000000         every target for a million executions
#
# Prints one line per target: executions, seconds, executions per second. A crash, a sanitizer
# report, a leak, an input that takes more than 10 s or 2 GB stops the script with a non-zero status
# and leaves the input in build-fuzz/artifacts/; replay it with build-fuzz/fuzz_<target> FILE.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"
BUILD="${MSD_FUZZ_BUILD:-$MSD_ROOT/build-fuzz}"
LIMIT=(-max_total_time=15)
TARGETS=()
while [ $# -gt 0 ]; do
  case "$1" in
    --seconds) LIMIT=(-max_total_time="$2"); shift 2 ;;
    --runs) LIMIT=(-runs="$2"); shift 2 ;;
    *) TARGETS+=("$1"); shift ;;
  esac
done
[ ${#TARGETS[@]} -gt 0 ] || TARGETS=(experiment_file set_override sweep filter)

msd_install_packages "${MSD_FUZZ_PACKAGES[@]}"
CXX=clang++ cmake -S "$MSD_ROOT/tests/fuzz" -B "$BUILD" -DCMAKE_BUILD_TYPE=RelWithDebInfo > /dev/null
cmake --build "$BUILD" -j "${MSD_JOBS:-2}"

mkdir -p "$BUILD/artifacts"
for target in "${TARGETS[@]}"; do
  corpus="$BUILD/corpus/$target"  # grows as the fuzzer finds new paths; the seeds stay in tests/
  mkdir -p "$corpus"
  log="$BUILD/fuzz_$target.log"
  if ! "$BUILD/fuzz_$target" "${LIMIT[@]}" -max_len=16384 -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
      -artifact_prefix="$BUILD/artifacts/$target-" "$corpus" "$MSD_ROOT/tests/fuzz/corpus/$target" > "$log" 2>&1; then
    tail -n 40 "$log"
    echo "fuzz $target: FAILED (log: $log; input: $BUILD/artifacts/$target-*)" >&2
    exit 1
  fi
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log")
  seconds=$(sed -n 's/^Done [0-9]* runs in \([0-9]*\) second.*/\1/p' "$log")
  echo "fuzz $target: $runs executions in $seconds s ($rate/s), no crash"
done
