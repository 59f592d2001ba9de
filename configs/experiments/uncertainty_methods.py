"""Uncertainty methods side by side (ours, issue 31): MC dropout (the paper's N = 20), a deep
ensemble of 5, test-time augmentation (8 mirrored views) and the ensemble with MC dropout, on the
demo's held-out cases: Dice, QU-BraTS scores, ECE, Brier, the synthesis' PSNR, Spearman, AUSE and
coverage, and the cost of each. Writes uncertainty_methods.md / .json and three figures;
docs/uncertainty.md shows the run.

Run: python -m rsnet_jax.main --config configs/experiments/uncertainty_methods.py \
       --workdir runs/uncertainty_methods

The demo's data, network and recipe (one network and one ensemble, 720 steps each), so that it
runs on 2 CPU cores in about 15 minutes; on a GPU, raise the demo's sizes as its docstring says.
"""

import ml_collections

from configs import demo


def get_config() -> ml_collections.ConfigDict:
  config = demo.get_config()
  config.train.predict_test_cases = False
  config.experiment = ml_collections.ConfigDict()
  config.experiment.name = 'uncertainty_methods'
  config.experiment.ensemble_size = 5  # Lakshminarayanan et al.'s and Ovadia et al.'s K
  config.experiment.mc_samples = 20  # the paper's N, per network (and per member)
  config.experiment.tta = 'flips'  # predict.tta of the TTA method
  return config
