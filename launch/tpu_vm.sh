#!/usr/bin/env bash
# RS-Net training on a Cloud TPU VM slice: the same command on every worker, data parallel over all
# TPU chips of the slice (rsnet_jax.runtime.parallel). Run it from your machine:
#
#   bash launch/tpu_vm.sh TPU_NAME ZONE CONFIG WORKDIR DATA_DIR [--config.X=Y ...]
#   bash launch/tpu_vm.sh rsnet-v4-32 us-central2-b configs/default.py gs-fuse/runs/rsnet_flair \
#       /mnt/BraTS2017_Training --config.data.target=flair --config.optim.lr_scaling=sqrt
#
# Each worker must already have the repository at ~/rsnet_jax with `pip install -e '.[tpu]'` done,
# and see DATA_DIR and WORKDIR at the same paths (a shared or gcsfuse-mounted file system: Orbax
# writes checkpoints collectively). --distributed=on makes every worker call
# jax.distributed.initialize(), which reads the slice's coordinator and worker index from the TPU
# metadata. Exit status 75 (preempted) means: rerun the same command to resume.
set -euo pipefail
if [[ $# -lt 5 ]]; then
  echo "usage: bash $0 TPU_NAME ZONE CONFIG WORKDIR DATA_DIR [--config.X=Y ...]" >&2
  exit 2
fi
tpu=$1 zone=$2 config=$3 workdir=$4 data_dir=$5
shift 5
extra=''
if (($#)); then printf -v extra ' %q' "$@"; fi
gcloud compute tpus tpu-vm ssh "$tpu" --zone "$zone" --worker=all --command \
  "cd ~/rsnet_jax && python -m rsnet_jax.main --distributed=on --config $(printf %q "$config") \
   --workdir $(printf %q "$workdir") --config.data.data_dir=$(printf %q "$data_dir")$extra"
