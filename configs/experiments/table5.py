"""Table V and Figs. 4-5: the MS-lesion protocol (Sec. III-C). RS-Nets and R-Nets synthesize FLAIR
(from T1, T2, PD) and T2 (from T1, FLAIR, PD); an S-Net trained on all four real sequences detects
T2 lesions with real inputs and with FLAIR or T2 swapped for a synthesis; lesion-level ROC (TPR vs
FDR) per size bin and TPR at FDR 0.2. Split 65 / 17.5 / 17.5 % as the paper.

Run: python -m rsnet_jax.main --config configs/experiments/table5.py --workdir runs/table5 \
       --config.data.data_dir=/data/ms   # <case>/<case>_{t1,t2,flair,pd,seg}.nii.gz, lesions = 1
(without data_dir: synthetic MS cases, 1 x 1 x 3 mm). Writes table5.md, lesions.json,
fig4_flair.png, fig5_t2.png.
"""

import ml_collections

from configs import paper


def get_config() -> ml_collections.ConfigDict:
  config = paper.get_config()
  config.data.modalities = ('t1', 't2', 'flair', 'pd')
  config.data.synthetic_pathology = 'ms'
  config.data.synthetic_shape = (180, 216, 60)  # 1 x 1 x 3 mm
  config.data.synthetic_cases = 40
  config.data.crop_shape = ()  # the whole MNI-like box
  config.data.val_fraction = 0.175
  config.data.test_fraction = 0.175
  config.model.num_classes = 2  # background, lesion
  config.experiment = ml_collections.ConfigDict()
  config.experiment.name = 'lesions'
  config.experiment.targets = ('flair', 't2')
  config.experiment.num_thresholds = 19
  config.experiment.fdr = 0.2
  return config
