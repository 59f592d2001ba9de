"""Convergence study (ours, issue 14): an RS-Net, an R-Net and an S-Net for FLAIR trained on the
same 18 synthetic cases, validated every epoch on 3, scored on 3 held-out cases. Writes
learning_curves.png (train and validation losses, validation Dice WT/TC/ET, PSNR and SSIM over
steps, a line per model), convergence.md / convergence.json (held-out figures and the paper's two
claims side by side), each model in WORKDIR/<variant>/.

Run: python -m rsnet_jax.main --config configs/experiments/convergence.py --workdir runs/convergence

The demo's recipe (configs/demo.py: 32^3 crops of 40x40x36 cases, the loss over the brain, a
warm-up and a cosine decay, 10x the paper's learning rate) with more cases and steps, so that it
fits a 2-core CPU; on a GPU, raise data.synthetic_shape / data.crop_shape towards the paper's.
"""

import ml_collections

from configs import demo


def get_config() -> ml_collections.ConfigDict:
  config = demo.get_config()
  config.data.synthetic_cases = 24  # 18 train / 3 validation / 3 test
  config.train.num_epochs = 60  # 1,080 steps per model
  config.train.eval_every_epochs = 1
  config.train.log_every_steps = 18  # one train-loss point per epoch
  config.train.predict_test_cases = False
  config.experiment = ml_collections.ConfigDict()
  config.experiment.name = 'convergence'
  config.experiment.variants = ('rsnet', 'rnet', 'snet')
  return config
