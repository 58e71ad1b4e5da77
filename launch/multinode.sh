#!/usr/bin/env bash
# Runs NP rgemma ranks over the machines of an Open MPI hostfile (one line per host: `node1 slots=8`,
# slots = ranks on that host, e.g. its GPU count):
#
#   launch/multinode.sh HOSTFILE NP rgemma-args...
#   e.g. launch/multinode.sh hosts.txt 16 pretrain --config configs/model/recurrentgemma-2b.ini \
#          --config configs/train/recurrentgemma-2b-pretrain.ini
#
# Every host must see the same checkout, binary and data at the same paths (a shared file system).
# RG_THREADS (default: this host's cores / slots of the first hostfile line), PATH, LD_LIBRARY_PATH and
# OMP_NUM_THREADS are exported to every rank. The binary is $RG_BUILD_DIR/bin/rgemma (default build).
# The exact command is printed first, so the script's output is the record of the run.
set -euo pipefail
if [ $# -lt 3 ] || [ ! -f "$1" ] || ! [[ $2 =~ ^[1-9][0-9]*$ ]]; then
  echo "usage: $0 HOSTFILE NP rgemma-args...   (HOSTFILE must exist)" >&2
  exit 2
fi
hostfile=$1 np=$2
shift 2
root=$(cd "$(dirname "$0")/.." && pwd)
build=${RG_BUILD_DIR:-build}
[[ $build = /* ]] || build=$root/$build
rgemma=$build/bin/rgemma
[ -x "$rgemma" ] || { echo "$0: no binary at $rgemma (build first, or set RG_BUILD_DIR)" >&2; exit 2; }
if [ -z "${RG_THREADS:-}" ]; then
  slots=$(awk '!/^[[:space:]]*(#|$)/ { for (i = 2; i <= NF; i++) if ($i ~ /^slots=/) { sub("slots=", "", $i); print $i; exit } }' "$hostfile")
  RG_THREADS=$(( $(nproc) / ${slots:-1} ))
  [ "$RG_THREADS" -ge 1 ] || RG_THREADS=1
fi
export RG_THREADS OMP_NUM_THREADS=${OMP_NUM_THREADS:-$RG_THREADS} LD_LIBRARY_PATH=${LD_LIBRARY_PATH:-}
cmd=(mpirun -np "$np" --hostfile "$hostfile" --bind-to none)
[ "$(id -u)" -eq 0 ] && cmd+=(--allow-run-as-root)
cmd+=(-x RG_THREADS -x PATH -x LD_LIBRARY_PATH -x OMP_NUM_THREADS "$rgemma" "$@")
echo "+ RG_THREADS=$RG_THREADS OMP_NUM_THREADS=$OMP_NUM_THREADS ${cmd[*]}"
exec "${cmd[@]}"
