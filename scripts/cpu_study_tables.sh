#!/usr/bin/env bash
# The tables of the two CPU-size studies (docs/RESULTS.md: MSD's experiments/fmnist_msd_cpu.toml and
# O2MKD's experiments/fmnist_o2mkd_cpu.toml), each printed by the platform's own `msd results compare`
# from the studies' database as a markdown table (mean ± sample std (n) over the seeds of a variant),
# under a heading that says what it holds and the command that made it. A study with no finished run
# yet says so and the script goes on.
#
#   scripts/cpu_study_tables.sh [--db PATH] [--msd BIN] > tables.md
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DB="$ROOT/docs/cpu_study.db" MSD="$ROOT/build/host/core/msd"
while [ $# -gt 0 ]; do
  case "$1" in
    --db) DB="$2"; shift 2 ;;
    --msd) MSD="$2"; shift 2 ;;
    *) echo "usage: $0 [--db PATH] [--msd BIN]" >&2; exit 2 ;;
  esac
done
[ -f "$DB" ] || { echo "$0: no database at $DB (--db PATH)" >&2; exit 2; }
[ -x "$MSD" ] || { echo "$0: no msd at $MSD: build it, or name it with --msd" >&2; exit 2; }

# table TITLE EXPERIMENT ARGS...: one compare of EXPERIMENT by variant.
table() {
  local title="$1" experiment="$2"
  shift 2
  # shellcheck disable=SC2016  # the backquotes are markdown's
  printf '### %s\n\n`msd results compare %s --by variant %s --format markdown`\n\n' "$title" "$experiment" "$*"
  "$MSD" results --db "$DB" compare "$experiment" --by variant "$@" --format markdown 2>&1 || true
  printf '\n'
}

# runs TITLE FILTER ARGS...: the finished runs FILTER selects, one row each.
runs() {
  local title="$1" filter="$2"
  shift 2
  # shellcheck disable=SC2016  # the backquotes are markdown's
  printf '### %s\n\n`msd results query "%s" %s --format markdown`\n\n' "$title" "$filter" "$*"
  "$MSD" results --db "$DB" query "$filter" "$@" --format markdown 2>&1 || true
  printf '\n'
}

# teachers EXPERIMENT: the teachers its finished runs had, per seed (docs/RESULTS.md: a seed whose runs
# spanned two machines may have two), with the commits that ran them.
teachers() {
  local sql="SELECT r.seed, COALESCE(t.value, '(not recorded)') AS teacher_digest, COUNT(*) AS runs,
    GROUP_CONCAT(DISTINCT r.git_commit) AS commits FROM runs r JOIN experiments e ON e.id = r.experiment_id
    LEFT JOIN tags t ON t.run_id = r.id AND t.key = 'teacher.digest'
    WHERE e.name = '$1' AND r.status = 'finished' GROUP BY r.seed, t.value ORDER BY r.seed, runs DESC"
  # shellcheck disable=SC2016  # the backquotes are markdown's
  printf '### The teachers of each seed\n\n`msd results sql "%s"`\n\n' "$(echo "$sql" | tr -s ' \n' ' ')"
  printf '```text\n'
  "$MSD" results --db "$DB" sql "$sql" 2>&1 || true
  printf '```\n\n'
}

QUALITY=(--metric fd --metric precision --metric recall --metric cond_accuracy)

echo "## MSD (fmnist_msd_cpu)"
echo
table "Every cell: quality" fmnist_msd_cpu "${QUALITY[@]}"
# The verdicts: every variant minus one student of the same seed (the same teacher) at each length.
# Equal compute is kK_sS against k1_sS; the paper's per-student setting kK_s(K x S) against k1_sS.
for steps in 300 600 1200 2400; do
  table "Paired by seed against one student at $steps iterations (k1_s$steps)" fmnist_msd_cpu \
    "${QUALITY[@]}" --against "k1_s$steps"
done
table "Every cell: what training cost" fmnist_msd_cpu --metric train.iterations --metric train.samples \
  --metric train.seconds --metric teacher_pairs.seconds --metric run.seconds
runs "The teachers (one per seed: the runs that trained them)" \
  "experiment = fmnist_msd_cpu and status = finished and metrics.teacher.train_seconds > 0" \
  --metric teacher.train_seconds --metric teacher.flops_per_second --metric feature_net.test_accuracy --metric floor.fd
teachers fmnist_msd_cpu
runs "ADM: the discriminator at the end of training (student 0)" \
  "experiment = fmnist_msd_cpu and status = finished and params.stage.2.steps > 0" \
  --metric train.adm.disc_accuracy@student:0 --metric train.adm.disc_accuracy_low_noise@student:0 \
  --metric train.adm.disc_loss@student:0 --metric fd

echo "## O2MKD (fmnist_o2mkd_cpu)"
echo
table "At the students' sampler, NFE 35" fmnist_o2mkd_cpu "${QUALITY[@]}" --metric latency_ms_per_sample \
  --metric acceleration --metric params --metric params_total
table "Paired by seed against one-to-one KD (kd_n1: one student, the same total iterations), NFE 35" \
  fmnist_o2mkd_cpu "${QUALITY[@]}" --against kd_n1
for nfe in 15 7; do
  table "At NFE $nfe" fmnist_o2mkd_cpu --scope "nfe:$nfe" --metric nfe --metric fd --metric cond_accuracy \
    --metric latency_ms_per_sample --metric acceleration
done
teachers fmnist_o2mkd_cpu
table "What training cost" fmnist_o2mkd_cpu --metric train.iterations --metric train.seconds --metric run.seconds
