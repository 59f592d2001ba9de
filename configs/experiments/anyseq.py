"""One RS-Net for whichever sequence is missing against one RS-Net per target (issue 16, BraSyn).

Trains, on the same split and for the same number of steps each: an ``anyseq`` model (the missing
sequence drawn per example and step), an RS-Net per target of ``experiment.targets``, and an S-Net on
all four real sequences for the swap protocol. Scores per target on the held-out cases: PSNR/SSIM
of each synthesis over the brain and in the tumour, the S-Net's Dice with the target swapped for
the synthesis, and each model's own segmentation Dice. Writes anyseq.md (the table, then where the
one model is worse than the four), anyseq.json (per case), anyseq.png, and the six models in
WORKDIR/{anyseq,rsnet_<target>,snet}.

CPU-sized (the demo's recipe with leaky ReLU: 24 synthetic cases of 40x40x36, 32^3 crops, 720 steps
per model; ~20 minutes on 2 cores):
  python -m rsnet_jax.main --config configs/experiments/anyseq.py --workdir runs/anyseq
Full size (the paper's settings: 184x200x152 crops, 240 epochs, its learning rate; a GPU):
  python -m rsnet_jax.main --config configs/experiments/anyseq.py:full --workdir runs/anyseq_full \
    --config.data.data_dir=/data/BraTS2023_GLI_Training
"""

import ml_collections

from configs import paper
from configs import demo


def get_config(size: str = 'cpu') -> ml_collections.ConfigDict:
  if size not in ('cpu', 'full'):
    raise ValueError(f"configs/experiments/anyseq.py: size must be 'cpu' or 'full', got {size!r}")
  if size == 'full':
    config = paper.get_config()
  else:
    config = demo.get_config()
    config.data.synthetic_cases = 24  # 18 train / 3 validation / 3 test
    config.train.num_epochs = 40  # 720 steps per model, as the demo's
    config.train.eval_every_epochs = 10
    config.train.log_every_steps = 90
    config.train.predict_test_cases = False
    # With the paper's ReLU, this recipe killed the anyseq model's segmentation head (a constant
    # output, Dice 0 for every target) and the T1 RS-Net's TC/ET units in a first run; leaky ReLU
    # (same parameters) cannot die, and every model here gets it.
    config.model.activation = 'leaky_relu'
  config.experiment = ml_collections.ConfigDict()
  config.experiment.name = 'anyseq'
  config.experiment.targets = ('t1', 't1ce', 't2', 'flair')
  return config
