"""The synthesis methods RS-Net is compared with in the paper's Table I: REPLICA (`replica`), LSDN
(`lsdn`) and the 2D CNN of Chartsias et al. (`cnn2d`), trained and used as RS-Net is
(``config.model.variant``; `fitted`)."""

from rsnet_jax.data import pipeline

VARIANTS = pipeline.BASELINES  # their model.variant names
NAMES = {'replica': 'REPLICA', 'lsdn': 'LSDN', 'cnn2d': '2D CNN'}
