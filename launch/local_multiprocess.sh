#!/usr/bin/env bash
# N processes of RS-Net training on this machine, joined by jax.distributed over loopback (CPU
# collectives: gloo): the multi-host code path without a cluster, e.g. to check a config before
# sending it to SLURM or a TPU slice.
#
#   bash launch/local_multiprocess.sh N CONFIG WORKDIR [--config.X=Y ...]
#   bash launch/local_multiprocess.sh 2 configs/demo.py runs/demo_2proc
#
# Each process has one CPU device (train.batch_size per process, global batch N x that) and its
# log goes to WORKDIR/process_<i>.log; process 0 also writes checkpoints' metadata, logs and outputs.
# Status: the first non-zero status of a process, else 0.
set -uo pipefail
if [[ $# -lt 3 ]]; then
  echo "usage: bash $0 N CONFIG WORKDIR [--config.X=Y ...]" >&2
  exit 2
fi
n=$1 config=$2 workdir=$3
shift 3
port=$(python -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
mkdir -p "$workdir"
pids=()
for ((i = 0; i < n; i++)); do
  JAX_PLATFORMS=cpu XLA_FLAGS=--xla_force_host_platform_device_count=1 \
    python -m rsnet_jax.main --config "$config" --workdir "$workdir" \
    --coordinator_address="127.0.0.1:$port" --num_processes="$n" --process_id="$i" "$@" \
    > "$workdir/process_$i.log" 2>&1 &
  pids+=($!)
done
trap 'kill -TERM "${pids[@]}" 2>/dev/null' TERM INT
status=0
for ((i = 0; i < n; i++)); do
  wait "${pids[$i]}"
  code=$?
  if [[ $code -ne 0 && $status -eq 0 ]]; then status=$code; fi
  echo "process $i: exit status $code (log: $workdir/process_$i.log)"
done
exit "$status"
