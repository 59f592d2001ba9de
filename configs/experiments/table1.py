"""Table I: T1->T2 and T1->FLAIR synthesis by REPLICA, LSDN, the 2D CNN and RS-Net, 5-fold
cross-validation on the 54 BraTS 2015 LGG cases (per fold 42 train / 6 validation / 6 test),
intensities divided by the brain mean; PSNR and SSIM.

Run: python -m rsnet_jax.main --config configs/experiments/table1.py --workdir runs/table1 \
       --config.data.data_dir=/data/BRATS2015_Training/LGG
(without data_dir: 54 synthetic cases in the BraTS 2015 .mha layout; .mha needs
 pip install 'rsnet_jax[mha]'). Writes runs/table1/table1.md, crossval.json, crossval.png,
table1_montage.png. REPLICA needs pip install 'rsnet_jax[baselines]' (scikit-learn).
"""

import ml_collections

from configs import paper


def get_config() -> ml_collections.ConfigDict:
  config = paper.get_config()
  config.data.normalization = 'brats2015'
  config.data.inputs = ('t1',)
  config.data.complementary = 't1'  # the only input
  config.data.synthetic_layout = 'brats2015'
  config.data.synthetic_cases = 54
  config.experiment = ml_collections.ConfigDict()
  config.experiment.name = 'crossval'
  config.experiment.targets = ('t2', 'flair')
  # Table I's columns: the three published methods (rsnet_jax/baselines/) and RS-Net
  config.experiment.methods = ('replica', 'lsdn', 'cnn2d', 'rsnet')
  config.experiment.folds = 5
  config.experiment.test_cases = 6
  config.experiment.val_cases = 6
  return config
