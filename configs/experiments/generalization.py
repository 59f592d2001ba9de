"""Out-of-distribution check (ours, issue 32): an RS-Net for FLAIR trained with the recipe we
recommend (configs/default.py) without and with its augmentation, each scored on held-out cases of
our generator and on cases of an independent one (rsnet_jax/data/synthetic_relaxometry.py: other
anatomy, other contrasts). Writes generalization.md / .json and montages; docs/evaluation.md shows
the run.

Run: python -m rsnet_jax.main --config configs/experiments/generalization.py --workdir runs/gen

The demo's grid (40x40x36 cases, the BraTS field of view at 6 x 6 x 4.3 mm; 32^3 crops), 48 cases
of our generator's 'physics' cohort (contrasts from MR signal equations over per-case tissue
parameters, docs/data.md; 36 train / 6 validation / 6 test), 120 epochs (4,320 steps) per model:
1,019-1,718 s a model on our 2-core machine while one or two others trained beside it. On a GPU,
raise data.synthetic_shape, data.crop_shape and train.num_epochs. Your own out-of-family cases: --config.experiment.ood_data_dir=/data/other;
one run per seed and the table over seeds: --config.experiment.seeds="(1,2,3)".
"""

import ml_collections

from configs import default


def get_config() -> ml_collections.ConfigDict:
  config = default.get_config()
  config.data.synthetic_cases = 48
  config.data.synthetic_shape = (40, 40, 36)
  config.data.synthetic_variability = 'physics'
  config.data.crop_shape = (32, 32, 32)
  config.data.val_fraction = 0.125
  config.data.test_fraction = 0.125
  config.train.num_epochs = 120  # 4,320 steps
  config.train.log_every_steps = 60
  config.train.eval_every_epochs = 40
  config.train.predict_test_cases = False
  config.experiment = ml_collections.ConfigDict()
  config.experiment.name = 'generalization'
  config.experiment.ood_cases = 8  # cases of the independent family, generated into WORKDIR
  config.experiment.ood_data_dir = ''  # or a folder of cases from elsewhere
  config.experiment.models = ('no_augmentation', 'augmentation')  # which of the two to train
  # () = config.seed alone, in WORKDIR; e.g. (1, 2, 3): one run per seed (its own cases,
  # initialisation, data order and family) in WORKDIR/seed_<seed>, and a table over the seeds.
  config.experiment.seeds = ()
  return config
