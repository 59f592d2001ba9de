"""Out-of-distribution check (ours, issue 32): an RS-Net for FLAIR trained on our generator's cases
without and with augmentation, each scored on held-out cases of the same generator and on cases of
an independent one (rsnet_jax/data/synthetic_relaxometry.py: other anatomy, physics-based
contrasts). Writes generalization.md / .json and montages; docs/evaluation.md shows the run.

Run: python -m rsnet_jax.main --config configs/experiments/generalization.py --workdir runs/gen

The demo's recipe and grid (40x40x36 cases, 32^3 crops) with twice its steps (1,440 per model:
augmented training needs them; at 720 it costs accuracy on the home family), so that both models
train in about 15 minutes on 2 CPU cores; on a GPU, raise data.synthetic_shape, data.crop_shape
and train.num_epochs. Your own out-of-family cases: --config.experiment.ood_data_dir=/data/other.
"""

import ml_collections

from configs import default
from configs import demo


def get_config() -> ml_collections.ConfigDict:
  config = demo.get_config()
  config.train.predict_test_cases = False
  config.train.num_epochs = 120  # 1,440 steps
  config.train.eval_every_epochs = 40
  default.augment(config)  # the augmentation under test: the one configs/default.py recommends
  config.experiment = ml_collections.ConfigDict()
  config.experiment.name = 'generalization'
  config.experiment.ood_cases = 8  # cases of the independent family, generated into WORKDIR
  config.experiment.ood_data_dir = ''  # or a folder of cases from elsewhere
  config.experiment.models = ('no_augmentation', 'augmentation')  # which of the two to train
  # () = config.seed alone, in WORKDIR; e.g. (1, 2, 3): one run per seed (its own cases,
  # initialisation, data order and family) in WORKDIR/seed_<seed>, and a table over the seeds.
  config.experiment.seeds = ()
  return config
