"""Tables II, III and IV (one run): the S-Net swap protocol on BraTS 2017. Trains an S-Net on all
four real sequences and, per target, an RS-Net and an R-Net from the other three; then scores the
S-Net's Dice with real inputs, with each sequence swapped for its RS-Net / R-Net synthesis, and the
RS-Net segmentation head's own Dice, on the held-out split.

Run: python -m rsnet_jax.main --config configs/experiments/table2.py --workdir runs/table2 \
       --config.data.data_dir=/data/BraTS2017_Training
Writes runs/table2/{table2,table3,table4}.md, swap.json, swap_dice.png and the nine models in
runs/table2/{snet,rsnet_<target>,rnet_<target>}. The paper tests on the BraTS 2017 validation set
through the challenge server; here the held-out split is our own (data.test_fraction, else the
validation split: 57 of 285 cases with the default fractions).
"""

import ml_collections

from configs import paper


def get_config() -> ml_collections.ConfigDict:
  config = paper.get_config()
  config.experiment = ml_collections.ConfigDict()
  config.experiment.name = 'swap'
  config.experiment.targets = ('t1', 't2', 'flair', 't1ce')
  return config
