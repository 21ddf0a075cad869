#!/usr/bin/env bash
# Runs the two CPU-size studies (experiments/fmnist_msd_cpu.toml, then fmnist_o2mkd_cpu.toml) one seed
# at a time, so that a sitting that ends early leaves whole seeds behind, and keeps their database in
# git (docs/cpu_study.db), so that the next sitting, on whatever machine, goes on from it. MSD's
# three seeds come first, so that its verdict does not wait for O2MKD's.
#
#   scripts/cpu_study.sh run  [--dir D] [--seeds "0 1 2"] [--experiments "fmnist_msd_cpu fmnist_o2mkd_cpu"]
#   scripts/cpu_study.sh save [--dir D]     # copies D/results.db to docs/cpu_study.db (safe while it runs),
#                                           # training curves thinned to 33 points, and the sample grid
#                                           # of each finished seed-0 run here to docs/cpu_study/
#   scripts/cpu_study.sh report             # each study's HTML report, from the committed database and grids
#   --committed PATH: the copy kept in git, in place of docs/cpu_study.db (for tests)
#   --grids DIR: the grids and reports kept in git, in place of docs/cpu_study (for tests)
#
# run installs the current build into D/install (so rebuilding the checkout does not touch the running
# study), starts D/results.db from docs/cpu_study.db when D has none, and, for each study, each seed:
# runs the seed's first unfinished run alone on every core, which trains the seed's teacher when the
# cache lacks it (a sweep's workers get one core each), then sweeps the rest with two workers.
# `msd sweep` skips what the database has finished (by config hash) and resumes from D's checkpoints;
# checkpoints and the teacher cache (D/cache) stay out of git, so a seed left unfinished on another
# machine trains its teacher again.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
COMMITTED_DB="$ROOT/docs/cpu_study.db" GRIDS="$ROOT/docs/cpu_study"
DIR="$ROOT/../study-cpu" SEEDS="0 1 2" EXPERIMENTS="fmnist_msd_cpu fmnist_o2mkd_cpu"
ACTION="${1:-}"
shift || true
while [ $# -gt 0 ]; do
  case "$1" in
    --dir) DIR="$2"; shift 2 ;;
    --seeds) SEEDS="$2"; shift 2 ;;
    --experiments) EXPERIMENTS="$2"; shift 2 ;;
    --committed) COMMITTED_DB="$2"; shift 2 ;;
    --grids) GRIDS="$2"; shift 2 ;;
    *) echo "$0: unknown argument $1 (see the header of this script)" >&2; exit 2 ;;
  esac
done
mkdir -p "$DIR"
DIR="$(cd "$DIR" && pwd)"
MSD="$DIR/install/bin/msd"

save() {
  [ -f "$DIR/results.db" ] || { echo "$0: no study database at $DIR/results.db" >&2; exit 2; }
  sqlite3 "$DIR/results.db" ".backup '$COMMITTED_DB'"
  # In the copy, runs still going here are interrupted: their process and checkpoints stay on this
  # machine, and a sweep elsewhere would otherwise wait a day for their heartbeat to go stale.
  sqlite3 "$COMMITTED_DB" "UPDATE runs SET status = 'interrupted', ended_at = strftime('%Y-%m-%dT%H:%M:%SZ', 'now'),
    error = 'running on ' || host || ' when its database was saved to git; its checkpoints stayed there'
    WHERE status = 'running'"
  thin_training_curves "$COMMITTED_DB"
  echo "saved $DIR/results.db to $COMMITTED_DB ($(du -h "$COMMITTED_DB" | cut -f1))"
  save_grids
}

# The study's finished seed-0 runs' grids, a line each: experiment, variant, the grid's recorded path
# (relative to the database's folder unless absolute), separated by tabs.
seed0_grids() {
  sqlite3 -separator $'\t' "$1" "SELECT e.name, substr(r.name, 1, instr(r.name || '[', '[') - 1), a.path
    FROM runs r JOIN experiments e ON e.id = r.experiment_id
    JOIN artifacts a ON a.run_id = r.id AND a.kind = 'image_grid'
    WHERE r.status = 'finished' AND r.seed = 0 ORDER BY r.id"
}

# save_grids: the sample grid of every finished seed-0 run whose file is on this machine, as
# GRIDS/EXPERIMENT/VARIANT-seed0.png. The run folders stay out of git, and the study may end on
# another machine than the one that ran a run; these copies are what its report shows.
save_grids() {
  local experiment variant path copied=0
  while IFS=$'\t' read -r experiment variant path; do
    [[ "$path" = /* ]] || path="$DIR/$path"
    [ -f "$path" ] || continue
    mkdir -p "$GRIDS/$experiment"
    cp "$path" "$GRIDS/$experiment/$variant-seed0.png"
    copied=$((copied + 1))
  done < <(seed0_grids "$DIR/results.db")
  echo "copied $copied seed-0 sample grids to $GRIDS"
}

# report: GRIDS/EXPERIMENT/report.html for each study, made by `msd report` from a copy of the
# committed database with the saved grids put back where their runs recorded them.
report() {
  [ -x "$ROOT/build/host/core/msd" ] || { echo "$0: build msd first (scripts/setup.sh)" >&2; exit 2; }
  local experiment variant path grid
  # Global, not local: the EXIT trap runs after report has returned.
  scratch="$(mktemp -d)"
  trap 'rm -rf "$scratch"' EXIT
  cp "$COMMITTED_DB" "$scratch/results.db"
  while IFS=$'\t' read -r experiment variant path; do
    grid="$GRIDS/$experiment/$variant-seed0.png"
    [[ "$path" != /* && -f "$grid" ]] || continue
    mkdir -p "$(dirname "$scratch/$path")"
    cp "$grid" "$scratch/$path"
  done < <(seed0_grids "$scratch/results.db")
  for experiment in $EXPERIMENTS; do
    mkdir -p "$GRIDS/$experiment"
    "$ROOT/build/host/core/msd" report "$experiment" --db "$scratch/results.db" --out "$GRIDS/$experiment/report.html" \
      --metric fd --metric precision --metric recall --metric cond_accuracy
  done
}

# thin_training_curves DB: keeps CURVE_POINTS points and the last of each training curve (train.*
# metrics, about a hundred points a run), so that the committed copy stays a few MB with both studies
# in it. Evaluations are kept whole. The points kept are the first of each of the curve's equal slices
# of steps, so thinning a thinned copy keeps it as it is.
CURVE_POINTS=32
thin_training_curves() {
  sqlite3 "$1" "
    WITH curves AS (SELECT run_id, scope, name, max(step) AS last FROM metrics WHERE name LIKE 'train.%'
                    GROUP BY run_id, scope, name HAVING count(*) > $CURVE_POINTS),
    sliced AS (SELECT m.id, m.run_id, m.scope, m.name, m.step,
                      (m.step * ($CURVE_POINTS - 1) + c.last - 1) / c.last AS slice
               FROM metrics m JOIN curves c USING (run_id, scope, name)),
    kept AS (SELECT run_id, scope, name, min(step) AS step FROM sliced GROUP BY run_id, scope, name, slice
             UNION SELECT run_id, scope, name, last FROM curves)
    DELETE FROM metrics WHERE id IN
      (SELECT s.id FROM sliced s LEFT JOIN kept k USING (run_id, scope, name, step) WHERE k.step IS NULL);
    VACUUM;"
}

# seed_file EXPERIMENT SEED: the experiment's file with only this seed, written into DIR. Its runs
# have the names and config hashes of the full file's (the sweep table is not part of a run's config).
seed_file() {
  local file="$DIR/$1.seed$2.toml"
  sed "s/^seeds = \[.*\]/seeds = [$2]/" "$ROOT/experiments/$1.toml" > "$file"
  grep -q "^seeds = \[$2\]" "$file" || { echo "$0: no 'seeds = [...]' line in experiments/$1.toml" >&2; exit 2; }
  echo "$file"
}

run() {
  [ -x "$ROOT/build/host/core/msd" ] || { echo "$0: build msd first (scripts/setup.sh)" >&2; exit 2; }
  cmake --install "$ROOT/build" --prefix "$DIR/install" > /dev/null
  if [ ! -f "$DIR/results.db" ] && [ -f "$COMMITTED_DB" ]; then
    cp "$COMMITTED_DB" "$DIR/results.db"
    echo "started from $COMMITTED_DB"
  fi
  local common=(--db "$DIR/results.db" --cache "$DIR/cache")
  for experiment in $EXPERIMENTS; do
    for seed in $SEEDS; do
      local file first
      file="$(seed_file "$experiment" "$seed")"
      # The first run left to do, alone: it trains the seed's teacher when the cache lacks it (on a new
      # machine, even when the teacher's own run is finished), with both cores instead of a worker's one.
      # awk reads to the end: exiting at the first match could kill msd with SIGPIPE, and pipefail
      # would end the study there.
      first="$("$MSD" sweep "$file" --dry-run "${common[@]}" | awk '$NF == "todo" && !seen {print $1; seen = 1}')"
      [ -z "$first" ] || "$MSD" sweep "$file" --index "$first" "${common[@]}"
      "$MSD" sweep "$file" --jobs 2 "${common[@]}"
    done
  done
}

# One compound command ending in exit: bash has read all of it before the study starts, so editing this
# file while a study runs does not change what that study does.
{
  case "$ACTION" in
    run) run ;;
    save) save ;;
    report) report ;;
    *) echo "usage: $0 run|save|report [--dir D] [--seeds LIST] [--experiments LIST] [--committed PATH] [--grids DIR]" >&2
       exit 2 ;;
  esac
  exit
}
