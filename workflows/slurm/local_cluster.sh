#!/usr/bin/env bash
# A real one-node SLURM cluster on this machine, for trying the recipes (and for the
# tests): munged, slurmctld and slurmd, all state, spool, logs and sockets in DIR.
#
#   workflows/slurm/local_cluster.sh start DIR [CPUS]   # prints `export SLURM_CONF=...`
#   workflows/slurm/local_cluster.sh stop DIR           # cancels jobs, stops the daemons
#
# Needs root and Debian's slurm-wlm and munge (installed with apt-get when missing).
# Settings: SlurmUser=root, ProctrackType=proctrack/linuxproc, TaskPlugin=task/none,
# SelectType=select/cons_tres (CR_CPU_Memory), one node with CPUS cpus (default: all),
# free TCP ports on 127.0.0.1, munged on its own socket and key. Every daemon is stopped
# by the process id in its pid file; nothing else on the machine is touched.
set -euo pipefail
cmd="${1:-}"; dir="${2:-}"
[ -n "$cmd" ] && [ -n "$dir" ] || { sed -n '2,12p' "$0" >&2; exit 2; }

stop_pid() {  # stop_pid PIDFILE NAME: TERM, wait up to 10 s, then KILL
  local pidfile="$1" name="$2" pid
  [ -f "$pidfile" ] || return 0
  pid="$(cat "$pidfile")"
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    if kill -0 "$pid" 2>/dev/null; then kill -KILL "$pid" 2>/dev/null || true; fi
    echo "[cluster] stopped $name (pid $pid)"
  fi
  rm -f "$pidfile"
}

case "$cmd" in
start)
  if ! command -v slurmctld >/dev/null || ! command -v munged >/dev/null; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq slurm-wlm munge >/dev/null
  fi
  mkdir -p "$dir"
  dir="$(cd "$dir" && pwd)"
  cpus="${3:-$(nproc)}"
  mkdir -p "$dir"/{etc,state,spool,log,run,munge}
  chmod 0700 "$dir/munge"
  host="$(hostname -s)"
  # Memory for the node: 80 % of what the machine has, in MB.
  mem_mb=$(awk '/MemTotal/ {printf "%d", $2 / 1024 * 0.8}' /proc/meminfo)
  read -r ctld_port slurmd_port < <(python3 -c '
import socket
ports = []
socks = [socket.socket() for _ in range(2)]
for s in socks:
    s.bind(("127.0.0.1", 0)); ports.append(s.getsockname()[1])
print(*ports)')
  cat > "$dir/etc/slurm.conf" <<CONF
ClusterName=daninet-local
SlurmctldHost=${host}(127.0.0.1)
SlurmctldPort=${ctld_port}
SlurmdPort=${slurmd_port}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket=${dir}/munge/munge.socket.2
CredType=cred/munge
StateSaveLocation=${dir}/state
SlurmdSpoolDir=${dir}/spool
SlurmctldPidFile=${dir}/run/slurmctld.pid
SlurmdPidFile=${dir}/run/slurmd.pid
SlurmctldLogFile=${dir}/log/slurmctld.log
SlurmdLogFile=${dir}/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU_Memory
SchedulerType=sched/backfill
MpiDefault=none
ReturnToService=2
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/filetxt
JobCompLoc=${dir}/log/jobcomp.txt
MaxArraySize=1001
SlurmctldTimeout=30
SlurmdTimeout=30
InactiveLimit=0
KillWait=5
NodeName=${host} NodeAddr=127.0.0.1 CPUs=${cpus} RealMemory=${mem_mb} State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
CONF
  dd if=/dev/urandom of="$dir/munge/munge.key" bs=1024 count=1 status=none
  chmod 0600 "$dir/munge/munge.key"
  munged --force --socket="$dir/munge/munge.socket.2" --key-file="$dir/munge/munge.key" \
    --pid-file="$dir/run/munged.pid" --log-file="$dir/log/munged.log" \
    --seed-file="$dir/munge/munged.seed"
  export SLURM_CONF="$dir/etc/slurm.conf"
  slurmctld -f "$SLURM_CONF"
  slurmd -f "$SLURM_CONF" -N "$host"
  # Ready when the node is idle.
  for _ in $(seq 150); do
    state="$(sinfo -h -N -o %T 2>/dev/null | head -1 || true)"
    [ "$state" = idle ] && break
    sleep 0.2
  done
  if [ "${state:-}" != idle ]; then
    echo "[cluster] the node did not become idle (state '${state:-none}'); logs in $dir/log" >&2
    tail -5 "$dir/log/slurmctld.log" "$dir/log/slurmd.log" >&2 || true
    exit 1
  fi
  echo "[cluster] one-node cluster up: node $host, $cpus CPUs, ${mem_mb} MB, ports $ctld_port/$slurmd_port" >&2
  echo "export SLURM_CONF=$SLURM_CONF"
  ;;
stop)
  [ -d "$dir" ] || exit 0
  dir="$(cd "$dir" && pwd)"
  export SLURM_CONF="$dir/etc/slurm.conf"
  if [ -f "$dir/run/slurmctld.pid" ] && [ -f "$SLURM_CONF" ]; then
    scancel --full --quiet --user="$(id -un)" 2>/dev/null || true
    for _ in $(seq 50); do
      [ -z "$(squeue -h -o %i 2>/dev/null)" ] && break
      sleep 0.2
    done
  fi
  stop_pid "$dir/run/slurmd.pid" slurmd
  stop_pid "$dir/run/slurmctld.pid" slurmctld
  stop_pid "$dir/run/munged.pid" munged
  ;;
*)
  echo "usage: $0 start|stop DIR [CPUS]" >&2; exit 2 ;;
esac
