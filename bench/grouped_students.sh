#!/bin/sh
# Wall-clock of K = 1, 2, 4, 8 one-step students of the 2-D task at equal iterations per student
# (bench/grouped_students.toml), trained three ways, alternately, ROUNDS times each (median):
#   one by one       one process, one student after another (students_per_network = 1)
#   grouped          one process, the K students as one grouped network (students_per_network = 0)
#   grouped x 2      two student processes of one thread each (--student-jobs 2), each training half
#                    the students as one grouped network (students_per_network = K / 2)
# Prints the seconds and the seconds per student iteration relative to K = 1 one by one.
#
#   bench/grouped_students.sh [--rounds R] [--threads T]
set -eu
cd "$(dirname "$0")/.."
MSD=${MSD:-build/host/core/msd}
rounds=3
threads=2
while [ $# -gt 0 ]; do
  case "$1" in
    --rounds) rounds=$2; shift 2 ;;
    --threads) threads=$2; shift 2 ;;
    *) echo "usage: $0 [--rounds R] [--threads T]" >&2; exit 2 ;;
  esac
done
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
iterations=500

# Seconds of training of one run (train.wall_seconds: the students' training, start to end).
# Arguments: K, students per network, a name for its database, then extra msd options.
train_seconds() {
  k=$1 per_network=$2 db="$work/run-$3/results.db"
  shift 3
  "$MSD" run bench/grouped_students.toml --db "$db" --cache "$work/cache" --set "partition.k=$k" \
    --set "experiment.students_per_network=$per_network" "$@" >"$work/log" 2>&1 ||
    { cat "$work/log" >&2; exit 1; }
  "$MSD" results sql --db "$db" --format csv \
    "select value from metrics where name = 'train.wall_seconds' and scope = ''" | tail -n 1
}

median() { sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

train_seconds 1 1 warmup >/dev/null  # trains the teacher into the cache
echo "K  one-by-one s  grouped s  grouped-x2 s  per student iteration (x K=1 one by one): one-by-one  grouped  grouped-x2"
base=""
for k in 1 2 4 8; do
  : >"$work/alone" && : >"$work/grouped" && : >"$work/halves"
  half=$(( (k + 1) / 2 ))
  r=0
  while [ $r -lt "$rounds" ]; do
    train_seconds $k 1 "$k-alone-$r" --set "experiment.threads=$threads" >>"$work/alone"
    train_seconds $k 0 "$k-grouped-$r" --set "experiment.threads=$threads" >>"$work/grouped"
    train_seconds $k $half "$k-halves-$r" --student-jobs 2 >>"$work/halves"
    r=$((r + 1))
  done
  alone=$(median <"$work/alone")
  grouped=$(median <"$work/grouped")
  halves=$(median <"$work/halves")
  [ -n "$base" ] || base=$alone
  awk -v k=$k -v a="$alone" -v g="$grouped" -v h="$halves" -v b="$base" \
    'BEGIN { printf "%d  %.2f  %.2f  %.2f  %.2f  %.2f  %.2f\n", k, a, g, h, a / k / b, g / k / b, h / k / b }'
done
echo "($iterations iterations per student, $threads threads in one process, 1 in each of two; median of $rounds)"
