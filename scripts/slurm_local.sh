#!/usr/bin/env bash
# A single-node Slurm on this machine, for the job-array launcher's integration test and for trying
# `msd sweep --launcher slurm` without a cluster. Needs root and the Debian packages slurm-wlm and
# munge; needs no systemd (the daemons are started directly, as containers and CI machines require).
#
#   scripts/slurm_local.sh start    # configure (once) and start munged, slurmctld, slurmd; wait for the node
#   scripts/slurm_local.sh stop     # stop the three daemons
#   scripts/slurm_local.sh status   # what is running, and sinfo
#
# Idempotent: `start` on a running cluster only checks that the node is usable. The configuration is
# written to /etc/slurm/slurm.conf unless a slurm.conf not written by this script is already there.
set -euo pipefail
# The daemons live in /usr/sbin, which sudo and su may leave out of PATH.
PATH="$PATH:/usr/sbin:/sbin"

SLURM_CONF=/etc/slurm/slurm.conf
CONF_MARKER="# Written by msd-lab scripts/slurm_local.sh"
MUNGE_KEY=/etc/munge/munge.key
MUNGE_RUN=/run/munge
MUNGE_PID="$MUNGE_RUN/munged.pid"
CTLD_PID=/run/slurmctld.pid
SLURMD_PID=/run/slurmd.pid
STATE_DIR=/var/spool/slurmctld
SLURMD_SPOOL=/var/spool/slurmd
LOG_DIR=/var/log/slurm
# Seconds to wait for a daemon to answer or for the node to become usable.
WAIT_SECONDS="${MSD_SLURM_WAIT_SECONDS:-60}"

say() { echo "slurm_local: $*"; }
die() { echo "slurm_local: error: $*" >&2; exit 1; }

# Whether the pid in file $1 names a live process.
alive() { [ -s "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

# The node's name as Slurm sees it: slurmd registers under the short host name.
node_name() { hostname -s; }

require_root_and_packages() {
  [ "$(id -u)" -eq 0 ] || die "run as root (sudo $0 ${1:-start}): the daemons need to switch users"
  local tool
  for tool in munged mungekey slurmctld slurmd sinfo scontrol; do
    command -v "$tool" > /dev/null || die "$tool not found: install the Debian packages slurm-wlm and munge"
  done
}

start_munge() {
  if alive "$MUNGE_PID"; then
    say "munged already running (pid $(cat "$MUNGE_PID"))"
    return
  fi
  install -d -o munge -g munge -m 0700 /etc/munge /var/log/munge
  install -d -o munge -g munge -m 0711 /var/lib/munge
  # 0755: clients (sbatch run by any user) connect to the socket in this folder.
  install -d -o munge -g munge -m 0755 "$MUNGE_RUN"
  if [ ! -s "$MUNGE_KEY" ]; then
    say "creating the munge key $MUNGE_KEY"
    mungekey --create --keyfile="$MUNGE_KEY"
  fi
  # munged refuses a key that others can read or that it does not own.
  chown munge:munge "$MUNGE_KEY"
  chmod 0600 "$MUNGE_KEY"
  # As the munge user, as Debian's service does: munged will not run as root without --force.
  runuser -u munge -- munged --pid-file="$MUNGE_PID"
  local waited=0
  until munge -n < /dev/null > /dev/null 2>&1; do
    [ "$waited" -lt "$WAIT_SECONDS" ] || die "munged does not answer (log: /var/log/munge/munged.log)"
    sleep 1
    waited=$((waited + 1))
  done
  say "munged started (pid $(cat "$MUNGE_PID"))"
}

# The node's hardware as slurmd detects it ("CPUs=2 Boards=1 ... RealMemory=24105"). Declaring more
# than slurmd finds drains the node, so the configuration takes slurmd's own numbers.
node_hardware() {
  slurmd -C | head -n 1 | tr ' ' '\n' | grep -E '^(CPUs|Boards|SocketsPerBoard|CoresPerSocket|ThreadsPerCore|RealMemory)=' | tr '\n' ' '
}

write_config() {
  if [ -e "$SLURM_CONF" ] && ! grep -qF "$CONF_MARKER" "$SLURM_CONF"; then
    say "using the existing $SLURM_CONF (not written by this script)"
    return
  fi
  local node hardware
  node="$(node_name)"
  hardware="$(node_hardware)"
  [ -n "$hardware" ] || die "slurmd -C did not describe this machine"
  mkdir -p "$(dirname "$SLURM_CONF")"
  # Addresses are 127.0.0.1 so that nothing depends on the host name resolving (containers often
  # have a host name that /etc/hosts does not list). Process tracking without cgroups and no task
  # plugin: containers rarely grant a writable cgroup tree, and this cluster only needs to run jobs.
  cat > "$SLURM_CONF.new" <<EOF
$CONF_MARKER: a single-node cluster on localhost.
ClusterName=msdlocal
SlurmctldHost=$node(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
ReturnToService=2
MaxArraySize=10001
StateSaveLocation=$STATE_DIR
SlurmdSpoolDir=$SLURMD_SPOOL
SlurmctldPidFile=$CTLD_PID
SlurmdPidFile=$SLURMD_PID
SlurmctldLogFile=$LOG_DIR/slurmctld.log
SlurmdLogFile=$LOG_DIR/slurmd.log
SlurmctldTimeout=30
SlurmdTimeout=60
InactiveLimit=0
MinJobAge=60
KillWait=10
Waittime=0
NodeName=$node NodeAddr=127.0.0.1 ${hardware}State=UNKNOWN
PartitionName=debug Nodes=$node Default=YES MaxTime=INFINITE State=UP
EOF
  if [ -e "$SLURM_CONF" ] && cmp -s "$SLURM_CONF" "$SLURM_CONF.new"; then
    rm -f "$SLURM_CONF.new"
  else
    mv "$SLURM_CONF.new" "$SLURM_CONF"
    say "wrote $SLURM_CONF"
    # A running controller reads the file only at start.
    if alive "$CTLD_PID"; then
      say "configuration changed: restarting the daemons"
      stop_slurm
    fi
  fi
}

start_slurm() {
  install -d -m 0755 "$STATE_DIR" "$SLURMD_SPOOL" "$LOG_DIR"
  if alive "$CTLD_PID"; then
    say "slurmctld already running (pid $(cat "$CTLD_PID"))"
  else
    slurmctld
    say "slurmctld started"
  fi
  local waited=0
  until scontrol ping 2>/dev/null | grep -q 'is UP'; do
    [ "$waited" -lt "$WAIT_SECONDS" ] || die "slurmctld does not answer (log: $LOG_DIR/slurmctld.log)"
    sleep 1
    waited=$((waited + 1))
  done
  if alive "$SLURMD_PID"; then
    say "slurmd already running (pid $(cat "$SLURMD_PID"))"
  else
    slurmd
    say "slurmd started"
  fi
}

# Waits until the node takes jobs. A node left down or drained by an earlier run is resumed once.
wait_for_node() {
  local node state waited=0 resumed=0
  node="$(node_name)"
  for (( ; ; )); do
    state="$(sinfo -h -N -n "$node" -o '%t' 2>/dev/null | head -n 1)"
    case "$state" in
      idle | mix | alloc | comp) say "node $node is $state: ready"; return ;;
      # Without '*': slurmd answers, but the node was set down or drained (an earlier run, a crash).
      # With '*' slurmd has not registered yet, which only takes waiting.
      down | drain | drng | fail)
        if [ "$resumed" -eq 0 ]; then
          scontrol update NodeName="$node" State=RESUME 2>/dev/null || true
          resumed=1
        fi ;;
    esac
    if [ "$waited" -ge "$WAIT_SECONDS" ]; then
      sinfo -N -l >&2 || true
      scontrol show node "$node" >&2 || true
      die "node $node is '${state:-unknown}' after ${WAIT_SECONDS}s (logs: $LOG_DIR/slurmctld.log, $LOG_DIR/slurmd.log)"
    fi
    sleep 1
    waited=$((waited + 1))
  done
}

# Ends a daemon by its pid file and waits for it to go.
stop_daemon() {
  local name="$1" pid_file="$2" pid waited=0
  alive "$pid_file" || return 0
  pid="$(cat "$pid_file")"
  kill "$pid"
  while kill -0 "$pid" 2>/dev/null; do
    [ "$waited" -lt "$WAIT_SECONDS" ] || die "$name (pid $pid) did not stop"
    sleep 1
    waited=$((waited + 1))
  done
  say "$name stopped"
}

stop_slurm() {
  stop_daemon slurmd "$SLURMD_PID"
  stop_daemon slurmctld "$CTLD_PID"
}

status() {
  local name pid_file
  for name in munged:"$MUNGE_PID" slurmctld:"$CTLD_PID" slurmd:"$SLURMD_PID"; do
    pid_file="${name#*:}"
    if alive "$pid_file"; then
      say "${name%%:*} running (pid $(cat "$pid_file"))"
    else
      say "${name%%:*} not running"
    fi
  done
  sinfo 2>/dev/null || true
}

case "${1:-}" in
  start)
    require_root_and_packages start
    start_munge
    write_config
    start_slurm
    wait_for_node ;;
  stop)
    require_root_and_packages stop
    stop_slurm
    stop_daemon munged "$MUNGE_PID" ;;
  status)
    status ;;
  *)
    echo "usage: $0 start|stop|status" >&2
    exit 2 ;;
esac
