#!/usr/bin/env bash
# cluster.sh start DIR [OWNER_PID] | stop DIR: a throw-away single-node SLURM
# cluster on localhost (Debian's slurm-wlm + munge), everything under DIR.
#
# start: writes DIR/munge.key, DIR/slurm.conf, starts munged, slurmctld and
# slurmd as the current user, waits until the node is idle and prints
# "SLURM_CONF=DIR/slurm.conf". Exit 77 when the daemons cannot be started
# here (not root, binaries missing, a daemon dies): the caller skips, and
# the reason is on stderr. Any other non-zero exit is a real failure.
# With OWNER_PID, a watchdog stops the cluster when that process ends, so a
# test that crashes or times out never leaves daemons behind.
# stop: cancels the jobs, kills the daemons recorded in DIR/*.pid (only
# those) and waits.
set -u
cmd=${1:-}; dir=${2:-}; owner=${3:-}
[ -n "$cmd" ] && [ -n "$dir" ] || { echo "usage: cluster.sh start|stop DIR" >&2; exit 2; }
dir=$(cd "$dir" 2>/dev/null && pwd) || { echo "cluster.sh: $2: no such folder" >&2; exit 2; }

skip() { echo "cluster.sh: cannot start SLURM here: $*" >&2; stop_all; exit 77; }

# Running and not a zombie (daemons whose parent never reaps them stay zombies).
alive() { [ -r "/proc/$1/stat" ] && ! awk '{ exit ($3 == "Z") ? 0 : 1 }' "/proc/$1/stat" 2>/dev/null; }

stop_all() {
  # Cancel what is left first, so slurmd reaps its job steps itself.
  if [ -s "$dir/slurmctld.pid" ] && [ -f "$dir/slurm.conf" ]; then
    SLURM_CONF="$dir/slurm.conf" scancel --quiet --user="$(id -un)" 2>/dev/null
    for _ in $(seq 50); do
      [ -z "$(SLURM_CONF="$dir/slurm.conf" squeue -h 2>/dev/null)" ] && break; sleep 0.1
    done
  fi
  # Leftover slurmstepd of this cluster only (its environment names our
  # slurm.conf); never this shell or its caller, whatever their environment.
  for p in /proc/[0-9]*; do
    [ "$(cat "$p/comm" 2>/dev/null)" = slurmstepd ] || continue
    if tr '\0' '\n' <"$p/environ" 2>/dev/null | grep -qx "SLURM_CONF=$dir/slurm.conf"; then
      kill -9 "${p#/proc/}" 2>/dev/null
    fi
  done
  for p in watchdog slurmd slurmctld munged; do
    f="$dir/$p.pid"
    [ -s "$f" ] || continue
    pid=$(cat "$f")
    if kill "$pid" 2>/dev/null; then
      for _ in $(seq 50); do alive "$pid" || break; sleep 0.1; done
      kill -9 "$pid" 2>/dev/null
    fi
    rm -f "$f"
  done
  return 0
}

if [ "$cmd" = stop ]; then stop_all; exit 0; fi
[ "$cmd" = start ] || { echo "cluster.sh: unknown command $cmd" >&2; exit 2; }

for b in munged slurmctld slurmd sbatch squeue scontrol; do
  command -v "$b" >/dev/null 2>&1 || [ -x "/usr/sbin/$b" ] || skip "$b is not installed"
done
[ "$(id -u)" = 0 ] || skip "not root (slurmd must run as root to start jobs)"
export PATH="$PATH:/usr/sbin"

mkdir -p "$dir/munge" "$dir/state" "$dir/spool" "$dir/log"
chmod 700 "$dir/munge"
# A fresh 1024-byte key, readable only by us (munged refuses looser modes).
head -c 1024 /dev/urandom >"$dir/munge/munge.key" && chmod 400 "$dir/munge/munge.key"

munged --force --socket="$dir/munge/munge.sock" --key-file="$dir/munge/munge.key" \
  --pid-file="$dir/munged.pid" --log-file="$dir/log/munged.log" \
  --seed-file="$dir/munge/munged.seed" >"$dir/log/munged.out" 2>&1 ||
  skip "munged failed: $(tail -n 1 "$dir/log/munged.out" "$dir/log/munged.log" 2>/dev/null | tr '\n' ' ')"
for _ in $(seq 50); do [ -S "$dir/munge/munge.sock" ] && break; sleep 0.1; done
[ -S "$dir/munge/munge.sock" ] || skip "munged did not create its socket"

# Ports from our pid so two clusters on one machine do not collide.
base=$((20000 + ($$ % 20000) * 2))
mem_mb=$(( $(awk '/MemTotal/ {print int($2/1024)}' /proc/meminfo) / 2 ))
cat >"$dir/slurm.conf" <<CONF
ClusterName=saecaptest
SlurmctldHost=localhost
SlurmctldPort=$base
SlurmdPort=$((base + 1))
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$dir/munge/munge.sock
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool/%n
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SchedulerType=sched/backfill
SchedulerParameters=sched_interval=1
MpiDefault=none
SwitchType=switch/none
ReturnToService=2
MinJobAge=600
SlurmctldTimeout=30
SlurmdTimeout=30
InactiveLimit=0
KillWait=5
NodeName=localhost NodeAddr=127.0.0.1 CPUs=2 RealMemory=$mem_mb State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
CONF
export SLURM_CONF="$dir/slurm.conf"

slurmctld -i >"$dir/log/slurmctld.out" 2>&1 || skip "slurmctld failed: $(tail -n 2 "$dir/log/slurmctld.log" 2>/dev/null | tr '\n' ' ')"
slurmd -N localhost >"$dir/log/slurmd.out" 2>&1 || skip "slurmd failed: $(tail -n 2 "$dir/log/slurmd.log" 2>/dev/null | tr '\n' ' ')"

# Wait for the node to register idle (a few seconds normally).
for _ in $(seq 300); do
  st=$(sinfo -h -n localhost -o %t 2>/dev/null)
  case "$st" in idle*)
    if [ -n "$owner" ]; then
      self=$(readlink -f "$0")
      nohup setsid bash -c 'while kill -0 "$1" 2>/dev/null; do sleep 1; done; rm -f "$2/watchdog.pid"; "$3" stop "$2"' \
        watchdog "$owner" "$dir" "$self" >/dev/null 2>&1 &
      echo $! >"$dir/watchdog.pid"
    fi
    echo "SLURM_CONF=$SLURM_CONF"; exit 0 ;;
  esac
  sleep 0.1
done
skip "the node did not become idle (state '$st'): $(tail -n 2 "$dir/log/slurmd.log" 2>/dev/null | tr '\n' ' ')"
