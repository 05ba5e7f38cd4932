#!/usr/bin/env bash
# A one-machine Slurm cluster in a scratch folder, for tests and trying `tools/mmsr.py submit`.
#
#   tools/slurm_local.sh start DIR    install slurm-wlm + munge if missing (apt-get, as root), write
#                                     DIR/slurm.conf and DIR/munge.key, start munged, slurmctld and
#                                     slurmd, wait until the node is idle; prints `export SLURM_CONF=...`
#   tools/slurm_local.sh stop DIR     stop the three daemons by the pids in DIR (nothing else)
#
# Everything lives in DIR (config, key, sockets, state, logs), on free ports, so it touches neither
# /etc/slurm nor /etc/munge nor a cluster already running here. Clients need SLURM_CONF=DIR/slurm.conf.
# Written for Debian 12's slurm-wlm 22.05 and munge 0.5.
set -euo pipefail

. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
case ${1:-} in -h|--help) usage; exit 0 ;; esac
[ $# -eq 2 ] || die "usage: tools/slurm_local.sh start|stop DIR (see --help)"
cmd=$1; dir=$(mkdir -p "$2" && cd "$2" && pwd)

stop_pid() {   # stop_pid FILE: TERM the pid in FILE, wait for it to go
  local f=$1 pid
  [ -s "$f" ] || return 0
  pid=$(cat "$f")
  if kill -0 "$pid" 2>/dev/null; then
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$pid" 2>/dev/null && kill -9 "$pid" 2>/dev/null || true
  fi
  rm -f "$f"
}

if [ "$cmd" = stop ]; then
  # slurmd first (it would otherwise keep re-registering), then the controller, then munge
  stop_pid "$dir/slurmd.pid"; stop_pid "$dir/slurmctld.pid"; stop_pid "$dir/munged.pid"
  echo "slurm_local: stopped ($dir)"
  exit 0
fi
[ "$cmd" = start ] || die "unknown command '$cmd' (start or stop)"

if ! command -v slurmctld >/dev/null || ! command -v slurmd >/dev/null || ! command -v sbatch >/dev/null \
   || ! command -v munged >/dev/null; then
  [ "$(id -u)" = 0 ] || die "Slurm or munge is missing; install them as root: apt-get install slurm-wlm munge"
  command -v apt-get >/dev/null || die "Slurm or munge is missing and there is no apt-get here: install slurm-wlm and munge"
  echo "slurm_local: installing slurm-wlm and munge (apt-get)" >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q slurm-wlm munge >"$dir/apt.log" 2>&1 \
    || { apt-get update -q >>"$dir/apt.log" 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
         slurm-wlm munge >>"$dir/apt.log" 2>&1; } || die "apt-get install slurm-wlm munge failed; see $dir/apt.log"
fi
[ "$(id -u)" = 0 ] || die "slurmd must run as root (it starts the jobs); run this as root"
[ -s "$dir/slurmctld.pid" ] && kill -0 "$(cat "$dir/slurmctld.pid")" 2>/dev/null \
  && die "a cluster already runs from $dir (tools/slurm_local.sh stop $dir first)"

host=$(hostname -s)
cpus=$(nproc)
mem=$(awk '/MemTotal/ {print int($2 / 1024 * 0.8)}' /proc/meminfo)
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("", 0)); print(s.getsockname()[1])'; }
ctld_port=$(free_port); d_port=$(free_port)
mkdir -p "$dir/state" "$dir/spool"
chmod 700 "$dir"

# munge: its own key, socket and files; munged refuses group/world-writable folders, and runs as root
# only with --force (this scratch cluster has no munge user of its own to care about)
[ -s "$dir/munge.key" ] || head -c 1024 /dev/urandom >"$dir/munge.key"
chmod 400 "$dir/munge.key"
munged --force --key-file="$dir/munge.key" --socket="$dir/munge.socket" --pid-file="$dir/munged.pid" \
  --log-file="$dir/munged.log" --seed-file="$dir/munged.seed" 2>>"$dir/munged.log" \
  || die "munged did not start; see $dir/munged.log"

cat >"$dir/slurm.conf" <<EOF
# written by tools/slurm_local.sh: a one-machine cluster
ClusterName=local
SlurmctldHost=$host
SlurmctldPort=$ctld_port
SlurmdPort=$d_port
AuthType=auth/munge
AuthInfo=socket=$dir/munge.socket
CredType=cred/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SlurmUser=root
SlurmdUser=root
ReturnToService=2
MpiDefault=none
KillWait=10
MinJobAge=3600
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/slurmctld.log
SlurmdLogFile=$dir/slurmd.log
NodeName=$host CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=main Nodes=$host Default=YES MaxTime=INFINITE State=UP
EOF
export SLURM_CONF=$dir/slurm.conf
slurmctld -i || die "slurmctld did not start; see $dir/slurmctld.log"
slurmd || die "slurmd did not start; see $dir/slurmd.log"
for _ in $(seq 60); do
  state=$(sinfo -h -n "$host" -o %t 2>/dev/null || true)
  case $state in idle|mix|alloc) echo "slurm_local: node $host $state (ports $ctld_port/$d_port, $dir)" >&2
    echo "export SLURM_CONF=$dir/slurm.conf"; exit 0 ;; esac
  sleep 0.5
done
die "the node did not become idle within 30 s (state '${state:-?}'); see $dir/slurmctld.log and $dir/slurmd.log"
