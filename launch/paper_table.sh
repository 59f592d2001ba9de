#!/usr/bin/env bash
# The paper's tables at full size on real data, one command each:
#   bash launch/paper_table.sh table1 /data/BRATS2015_Training/LGG runs/table1   # Table I
#   bash launch/paper_table.sh table2 /data/BraTS2017_Training runs/table2       # Tables II-IV
#   bash launch/paper_table.sh table5 /data/ms runs/table5                         # Table V, Figs. 4-5
# Extra arguments go to rsnet_jax.main (e.g. --config.train.num_epochs=100). On SLURM:
#   sbatch --gres=gpu:1 --time=3-00:00:00 launch/paper_table.sh table2 DATA WORKDIR
# Rerunning the same command resumes: trained models are reused, unfinished ones resume from their
# latest checkpoint, and the tables are written again.
set -euo pipefail
if [[ $# -lt 3 ]]; then
  echo "usage: $0 table1|table2|table5 DATA_DIR WORKDIR [--config.X=Y ...]" >&2
  exit 2
fi
table=$1 data=$2 workdir=$3
shift 3
config="$(cd "$(dirname "$0")/.." && pwd)/configs/experiments/${table}.py"
if [[ ! -f "$config" ]]; then
  echo "$0: no $config (tables: table1, table2, table5)" >&2
  exit 2
fi
exec python -m rsnet_jax.main --config "$config" --workdir "$workdir" \
  --config.data.data_dir="$data" "$@"
