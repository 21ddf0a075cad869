#!/usr/bin/env bash
# The Fashion-MNIST study on one GPU machine (see docs/RESULTS.md and docs/GPU.md):
#
#   scripts/gpu_study.sh step DEST [SECONDS]  one device call of a session: start or watch the study,
#                                            then pack it into DEST (the way to use it with the device tool)
#   scripts/gpu_study.sh run  [DIR]          build, then the Fashion-MNIST sweeps into DIR
#   scripts/gpu_study.sh pack [DIR] DEST     a consistent copy of DIR's database, the sample grids and the
#                                            logs -> DEST/study.tgz; the cached teacher and feature
#                                            classifier (not the teacher pairs) -> DEST/study-cache.tgz
#
# `step` keeps the build and the live study outside the checkout, in $MSD_GPU_LIVE (default
# /var/tmp/msd-gpu), because each device call replaces the checkout's carried folders with this
# machine's copies: a study living in the checkout's study/ loses its database under running
# processes. On a machine where $MSD_GPU_LIVE/study does not exist yet, `step` seeds it from the
# carried study/ (the last session's pack) and starts `run` in its own process session; on a machine
# where it exists, it only watches. Either way it waits until the pipeline ends or SECONDS (default
# 540) pass, prints where the runs stand, and packs, so every call brings the results back. The wait
# also ends MSD_GPU_MARGIN seconds (default 180) before MSD_GPU_BUDGET seconds (default 1800, the
# session's device time) have passed since the first call, so a call never outlasts the session.
#
# DIR defaults to `study` (git-ignored). `run` can be stopped at any time and started again: finished
# runs are skipped, interrupted ones resume from their checkpoints. Steps of `run`:
#   1. scripts/gpu_build.sh $MSD_BUILD_DIR (default build-gpu; PyTorch 2.x CUDA wheel, see docs/GPU.md);
#   2. the teacher run of fmnist_msd.toml alone: it trains (or finds in DIR/cache) the feature
#      classifier and the teacher every run shares, on an otherwise idle GPU;
#   3. fp32 against bf16 on an otherwise idle GPU (DIR/bench.db): msd_k4 with a 200-step teacher and
#      300 distillation iterations, once per precision, for the times in docs/BENCHMARKS.md (skipped
#      when DIR/bench.db exists);
#   4. the sweeps of MSD_SWEEPS, all at the same time, as FILE:WORKERS[:STUDENT_JOBS] words (default
#      "fmnist_msd:2:4 fmnist_ablations:2": fmnist_msd's runs two at a time, each with one process per
#      student, so that msd_k4_per_student trains its four students at once while the teacher-curve
#      runs evaluate beside it): one process alone leaves the GPU mostly idle, and about 7 make the
#      most of it. Not everything fits one 30-minute session; docs/GPU.md says how to split the
#      sweeps, and that DIR/results.db from the last session must come along.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
MODE="${1:?usage: scripts/gpu_study.sh step DEST [SECONDS] | run [DIR] | pack [DIR] DEST}"
DIR="${2:-study}"
BUILD_DIR="${MSD_BUILD_DIR:-$ROOT/build-gpu}"
MSD="$BUILD_DIR/host/core/msd"
LIVE="${MSD_GPU_LIVE:-/var/tmp/msd-gpu}"
DONE_PATTERN='\] (done|failed \(exit [0-9]+\))$'

# Where the runs stand: the pipeline's last lines, the last progress line of each sweep, sweep worker
# and student process, and the GPU's load.
report() {
  local dir="$1" log="$2" f
  echo "== $log"; tail -n 12 "$log"
  for f in "$dir"/*.log "$dir"/logs/sweep-*/worker-*.log "$dir"/runs/run-*/student-*.log; do
    [[ -f "$f" && "$f" != "$log" ]] || continue
    echo "$f: $(tail -c 800 "$f" | tr '\r' '\n' | grep -v '^[[:space:]]*$' | tail -n 1)"
  done
  nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv,noheader 2>/dev/null || true
}

if [[ "$MODE" == "step" ]]; then
  DEST="${2:?usage: scripts/gpu_study.sh step DEST [SECONDS]}"
  WAIT="${3:-540}"
  BUDGET="${MSD_GPU_BUDGET:-1800}"
  MARGIN="${MSD_GPU_MARGIN:-180}"
  DATA=/usr/share/datasets/fashion-mnist
  pipeline_ended() { tail -n 1 "$LIVE/pipeline.log" | grep -qE "$DONE_PATTERN"; }
  if [[ ! -d "$LIVE/study" ]]; then
    echo "step: fresh machine: seeding $LIVE/study from the carried study/ and starting the pipeline"
    mkdir -p "$LIVE/study" "$DATA"
    date +%s >"$LIVE/started"
    [[ -d study ]] && cp -a study/. "$LIVE/study/"
    [[ -f "$DATA/train-images-idx3-ubyte.gz" || ! -d .fmnist ]] || cp .fmnist/*.gz "$DATA/"
    # The build links the dependency prefix by RPATH: a copy outside the checkout, like the build.
    [[ -d .gpu-deps/prefix/usr ]] && cp -a .gpu-deps/prefix "$LIVE/deps" && export MSD_DEPS="$LIVE/deps/usr"
    (MSD_BUILD_DIR="$LIVE/build" setsid nohup "$ROOT/scripts/gpu_study.sh" run "$LIVE/study" \
        >"$LIVE/pipeline.log" 2>&1 </dev/null &)
    sleep 2
  elif pipeline_ended; then
    echo "step: the pipeline has already ended"
  else
    echo "step: the pipeline is running (machine's first call at $(date -d @"$(cat "$LIVE/started")" +%H:%M:%S))"
  fi
  # Never past the machine's time: the session's device time counts from before this machine's first
  # call (its start) and the pack and transfer come after the wait, hence the margin.
  end=$(( $(date +%s) + WAIT ))
  last=$(( $(cat "$LIVE/started") + BUDGET - MARGIN ))
  if (( last < end )); then
    end=$last
    echo "step: waiting until $(date -d @"$end" +%H:%M:%S) only: MSD_GPU_BUDGET=$BUDGET s from the first call, less MSD_GPU_MARGIN=$MARGIN s"
  fi
  while (( $(date +%s) < end )) && ! pipeline_ended; do sleep 5; done
  report "$LIVE/study" "$LIVE/pipeline.log"
  cp "$LIVE/pipeline.log" "$LIVE/study/pipeline.log"
  exec "$ROOT/scripts/gpu_study.sh" pack "$LIVE/study" "$DEST"
fi
mkdir -p "$DIR"

if [[ "$MODE" == "pack" ]]; then
  DEST="${3:?usage: scripts/gpu_study.sh pack DIR DEST}"
  STAGE="$(mktemp -d)"
  trap 'rm -rf "$STAGE"' EXIT
  mkdir -p "$STAGE/study"
  # SQLite's online backup: a consistent copy even while workers are writing.
  for db in results.db bench.db; do
    [[ -f "$DIR/$db" ]] && "${PYTHON:-python3}" -c \
      "import sqlite3,sys; s=sqlite3.connect(sys.argv[1]); d=sqlite3.connect(sys.argv[2]); s.backup(d); d.close()" \
      "$DIR/$db" "$STAGE/study/$db"
  done
  # Two archives, because the device tool brings back no file over 16 MiB: the results (database,
  # grids, logs) and the cache (teacher and classifier; the teacher pairs stay behind: about 63 MB for
  # 10 000 images, and quick to make again).
  (cd "$DIR" && find . \( -name '*.png' -o -name '*.log' -o -name '*.txt' -o -name '*.html' \) \
      -type f ! -path './cache/*' -print0 | tar --null -cf - -T - 2>/dev/null) | tar -xf - -C "$STAGE/study"
  tar -czf "$DEST/study.tgz" -C "$STAGE" study
  tar -czf "$DEST/study-cache.tgz" --exclude='*.lock' --exclude='*.partial-*' --exclude='cache/teacher_pairs' -C "$(dirname "$DIR")" \
      --transform "s|^$(basename "$DIR")/|study/|" "$(basename "$DIR")/cache"
  ls -l "$DEST/study.tgz" "$DEST/study-cache.tgz"
  for f in "$DEST/study.tgz" "$DEST/study-cache.tgz"; do
    (( $(stat -c %s "$f") <= 16 * 1024 * 1024 )) || echo "pack: $f is over 16 MiB, which the device tool does not bring back" >&2
  done
  exit 0
fi
[[ "$MODE" == "run" ]] || { echo "gpu_study.sh: unknown mode '$MODE' (step, run or pack)" >&2; exit 2; }

say() { echo "[$(date +%H:%M:%S)] $*"; }
# The last line says how it ended ("done" or "failed"), so that whoever polls the log can stop waiting.
trap 'status=$?; [[ $status -eq 0 ]] && say "done" || say "failed (exit $status)"' EXIT
DATA=/usr/share/datasets/fashion-mnist
if [[ ! -f "$DATA/train-images-idx3-ubyte.gz" ]]; then
  echo "gpu_study.sh: $DATA is missing. A GPU machine without Debian's dataset-fashion-mnist needs the four" >&2
  echo "gzip IDX files copied there (carry them from a Debian machine, see docs/GPU.md)" >&2
  exit 1
fi
# Extra overrides for every run, e.g. MSD_SET="--set teacher.steps=3000" to fit a shorter session.
read -r -a EXTRA <<<"${MSD_SET:-}"
say "build"
JOBS="${JOBS:-$(nproc)}" scripts/gpu_build.sh "$BUILD_DIR" >"$DIR/build.log" 2>&1 || { grep -B2 -A6 "error" "$DIR/build.log" | head -60; exit 1; }
(nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true) | tee "$DIR/gpu.txt"

DB="$DIR/results.db"
COMMON=(--db "$DB" --device cuda "${EXTRA[@]}")
say "teacher (classifier, teacher training, NFE 35 evaluation)"
"$MSD" sweep experiments/fmnist_msd.toml --index 0 "${COMMON[@]}"

say "fp32 and bf16 benchmark"
BENCH=(--set teacher.steps=200 --set stage.0.steps=200 --set stage.1.steps=100 --set distill.pairs=512
       --set evaluate.samples=1000 --set evaluate.metric.0.samples=1000 --set evaluate.metric.0.kid_subset_size=200
       --set evaluate.metric.0.kid_subsets=10 --set evaluate.metric.1.repeats=1)
for precision in fp32 bf16; do
  [[ -f "$DIR/bench.db" && "$precision" == fp32 ]] && { say "benchmark skipped: $DIR/bench.db exists"; break; }
  "$MSD" run experiments/fmnist_msd.toml --only msd_k4 --db "$DIR/bench.db" --cache "$DIR/cache" --device cuda \
    "${EXTRA[@]}" "${BENCH[@]}" --set "experiment.precision=\"$precision\"" >"$DIR/bench-$precision.log" 2>&1 \
    || say "$precision benchmark failed (see $DIR/bench-$precision.log)"
done

read -r -a SWEEPS <<<"${MSD_SWEEPS:-fmnist_msd:2:4 fmnist_ablations:2}"
say "sweeps: ${SWEEPS[*]}"
pids=()
for sweep in "${SWEEPS[@]}"; do
  IFS=: read -r file workers student_jobs <<<"$sweep"
  "$MSD" sweep "experiments/$file.toml" --jobs "${workers:-1}" --student-jobs "${student_jobs:-1}" "${COMMON[@]}" \
    >"$DIR/$file.log" 2>&1 &
  pids+=("$!:$file")
done
failed=0
for entry in "${pids[@]}"; do
  wait "${entry%%:*}" && say "${entry#*:} finished" || { say "${entry#*:} failed (see $DIR/${entry#*:}.log)"; failed=1; }
done
"$MSD" results --db "$DB" list | tee "$DIR/list.txt"
for sweep in "${SWEEPS[@]}"; do sweep="${sweep%%:*}"; "$MSD" report "$sweep" --db "$DB" --out "$DIR/report-$sweep.html" || true; done
exit "$failed"
