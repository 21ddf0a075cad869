#!/usr/bin/env bash
# The README's two commands on a bare Debian 12, as a new user would run them, whatever this machine
# came with: a debootstrap chroot (minbase, plus build-essential, cmake and git and nothing else), a
# fresh clone of this checkout's HEAD inside it, then scripts/quickstart.sh and scripts/test.sh.
# Needs root and the Debian registry. Each command's time and exit status go to CHROOT/root/*.log.
#
#   scripts/bare_debian.sh [CHROOT]     (default /var/tmp/msd-bare; made on the first call, reused after)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CHROOT="${1:-/var/tmp/msd-bare}"
MIRROR="${MSD_DEBIAN_MIRROR:-http://deb.debian.org/debian}"

# The chroot's Slurm (the test command starts one) needs this machine's Slurm ports.
if pgrep -x slurmctld > /dev/null || pgrep -x slurmd > /dev/null; then
  echo "bare_debian: a Slurm is running on this machine and holds the ports the chroot's Slurm needs;" \
       "stop it first (scripts/slurm_local.sh stop)" >&2
  exit 2
fi
command -v debootstrap >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap
[ -x "$CHROOT/usr/bin/apt-get" ] || debootstrap --variant=minbase bookworm "$CHROOT" "$MIRROR"

# Recursive binds: the Slurm test's slurmd needs the cgroup file system mounted under /sys.
for fs in proc sys dev; do
  mountpoint -q "$CHROOT/$fs" || { mount --rbind "/$fs" "$CHROOT/$fs" && mount --make-rslave "$CHROOT/$fs"; }
done
# On the way out, the chroot's Slurm (started by the test command) stops: it shares this machine's ports.
trap 'chroot "$CHROOT" bash /root/msd-lab/scripts/slurm_local.sh stop > /dev/null 2>&1 || true
      for fs in dev sys proc; do umount -R -l "$CHROOT/$fs" 2>/dev/null || true; done' EXIT
cp /etc/resolv.conf "$CHROOT/etc/resolv.conf"

in_chroot() { chroot "$CHROOT" /usr/bin/env -i HOME=/root PATH=/usr/sbin:/usr/bin:/sbin:/bin TERM=dumb bash -c "$1"; }
in_chroot "apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq build-essential cmake git"
rm -rf "$CHROOT/root/msd-lab"
git clone -q "$ROOT" "$CHROOT/root/msd-lab"
for command in quickstart test; do
  echo "bare Debian 12: scripts/$command.sh (log: $CHROOT/root/$command.log)"
  in_chroot "cd /root/msd-lab && { time bash scripts/$command.sh; } > /root/$command.log 2>&1; echo \"exit status \$?\" >> /root/$command.log"
  tail -n 5 "$CHROOT/root/$command.log"
  grep -q '^exit status 0$' "$CHROOT/root/$command.log"
done
