#!/usr/bin/env bash
# A single-node Slurm cluster on loopback, for trying and testing `qtk sweep --backend slurm` on one
# machine (Debian's slurm-wlm and munge; run as root; no systemd needed). Everything but munge's key
# and socket lives under DIR:
#
#   eval "$(bash tools/slurm_local.sh start DIR)"   # starts munged, slurmctld, slurmd; prints export SLURM_CONF=...
#   sbatch / squeue / qtk sweep ... --backend slurm
#   bash tools/slurm_local.sh stop DIR               # stops each daemon it started, by its pid file
#
# One node named after `hostname -s`, all its CPUs, 1000 MB, one fake GPU (gres gpu:1 on /dev/null) and
# a partition "debug". Errors go to stderr and the exit status is 1, naming the step that failed.
set -euo pipefail

die() { echo "slurm_local: $*" >&2; exit 1; }
[ $# -eq 2 ] || die "usage: slurm_local.sh start|stop DIR"
cmd=$1
D=$(realpath -m "$2")

pid_alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

stop_pid() { # kill the daemon of a pid file and wait for it to exit (at most 20 s)
  local f=$1 p
  pid_alive "$f" || return 0
  p=$(cat "$f")
  kill "$p" 2>/dev/null || true
  for _ in $(seq 200); do kill -0 "$p" 2>/dev/null || return 0; sleep 0.1; done
  echo "slurm_local: $f: pid $p still running after 20 s; killing it" >&2
  kill -9 "$p" 2>/dev/null || true
}

case "$cmd" in
start)
  [ "$(id -u)" -eq 0 ] || die "must run as root (slurmd and munged are started as root / munge)"
  for b in munged mungekey slurmctld slurmd sinfo; do
    command -v "$b" >/dev/null 2>&1 || die "$b not found: apt-get install slurm-wlm munge"
  done
  mkdir -p "$D/state" "$D/spool" "$D/log"
  H=$(hostname -s)
  cat > "$D/slurm.conf" <<EOF
ClusterName=qtklocal
SlurmctldHost=$H(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
SlurmctldPort=6817
SlurmdPort=6818
StateSaveLocation=$D/state
SlurmdSpoolDir=$D/spool
SlurmctldPidFile=$D/slurmctld.pid
SlurmdPidFile=$D/slurmd.pid
SlurmctldLogFile=$D/log/slurmctld.log
SlurmdLogFile=$D/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
MinJobAge=300
GresTypes=gpu
NodeName=$H NodeAddr=127.0.0.1 CPUs=$(nproc) RealMemory=1000 Gres=gpu:1 State=UNKNOWN
PartitionName=debug Nodes=$H Default=YES MaxTime=INFINITE State=UP
EOF
  echo "NodeName=$H Name=gpu File=/dev/null" > "$D/gres.conf"
  # munge: its key, its run folder, the daemon (unless one runs already)
  if [ ! -f /etc/munge/munge.key ]; then
    mkdir -p /etc/munge
    mungekey -c -k /etc/munge/munge.key >/dev/null 2>&1 || die "mungekey -c failed"
    chown munge:munge /etc/munge/munge.key
    chmod 400 /etc/munge/munge.key
  fi
  mkdir -p /run/munge /var/log/munge /var/lib/munge
  chown munge:munge /run/munge /var/log/munge /var/lib/munge
  if ! pid_alive /run/munge/munged.pid; then
    runuser -u munge -- munged --pid-file=/run/munge/munged.pid || die "munged did not start"
    touch "$D/munged.ours"
  fi
  for _ in $(seq 100); do [ -S /run/munge/munge.socket.2 ] && break; sleep 0.1; done
  munge -n | unmunge >/dev/null 2>&1 || die "munge does not work (munge -n | unmunge failed)"
  export SLURM_CONF="$D/slurm.conf"
  pid_alive "$D/slurmctld.pid" || slurmctld -f "$SLURM_CONF" || die "slurmctld did not start (see $D/log/slurmctld.log)"
  pid_alive "$D/slurmd.pid" || slurmd -f "$SLURM_CONF" || die "slurmd did not start (see $D/log/slurmd.log)"
  for _ in $(seq 300); do
    st=$(sinfo -h -o %T 2>/dev/null | head -n 1 || true)
    case "$st" in idle*|mixed*|allocated*) echo "export SLURM_CONF=$SLURM_CONF"; exit 0 ;; esac
    sleep 0.1
  done
  die "the node did not become idle within 30 s (sinfo: ${st:-nothing}; logs in $D/log)"
  ;;
stop)
  stop_pid "$D/slurmd.pid"
  stop_pid "$D/slurmctld.pid"
  if [ -f "$D/munged.ours" ]; then stop_pid /run/munge/munged.pid; rm -f "$D/munged.ours"; fi
  ;;
*) die "usage: slurm_local.sh start|stop DIR" ;;
esac
