#!/usr/bin/env bash
# Runs N rgemma ranks on this machine under mpirun (data parallel over the CPU cores, or one rank per GPU):
#
#   launch/local.sh N rgemma-args...        e.g.  launch/local.sh 2 pretrain --config configs/model/tiny.ini ...
#
# Each rank gets RG_THREADS = cores / N intra-op threads so co-located ranks do not oversubscribe the cores.
# The binary is $RG_BUILD_DIR/bin/rgemma (RG_BUILD_DIR defaults to build). The exact command is printed
# first, so the script's output is the record of the run.
set -euo pipefail
if [ $# -lt 2 ] || ! [[ $1 =~ ^[1-9][0-9]*$ ]]; then
  echo "usage: $0 N rgemma-args...   (N ranks on this machine)" >&2
  exit 2
fi
np=$1
shift
root=$(cd "$(dirname "$0")/.." && pwd)
build=${RG_BUILD_DIR:-build}
[[ $build = /* ]] || build=$root/$build
rgemma=$build/bin/rgemma
[ -x "$rgemma" ] || { echo "$0: no binary at $rgemma (build first, or set RG_BUILD_DIR)" >&2; exit 2; }
cores=$(nproc)
threads=$(( cores / np ))
[ "$threads" -ge 1 ] || threads=1
export RG_THREADS=$threads
cmd=(mpirun -np "$np" --oversubscribe --bind-to none)
[ "$(id -u)" -eq 0 ] && cmd+=(--allow-run-as-root)
cmd+=(-x RG_THREADS "$rgemma" "$@")
echo "+ RG_THREADS=$RG_THREADS ${cmd[*]}"
exec "${cmd[@]}"
