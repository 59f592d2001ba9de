"""REPLICA (Jog et al., Medical Image Analysis 35, 2017): a regression forest from each voxel's
input patch and multi-resolution context to the target's intensity.

Features (`features.patches`, `features.context`): each input's ``patch^3`` cube and, at Gaussian
sigmas 1, 2 and 4 voxels, the smoothed input at the voxel and +-2 sigma along each axis. Trees:
scikit-learn's ``RandomForestRegressor`` (bagged trees; ``max_features`` 1.0 is REPLICA's plain
bagging), fitted on ``samples_per_case`` brain voxels drawn from each training case.
"""

from __future__ import annotations

import ml_collections
import numpy as np

from rsnet_jax.baselines import features


def voxel_features(example: dict[str, np.ndarray], voxels: np.ndarray,
                   config: ml_collections.ConfigDict) -> np.ndarray:
  """``[N, F] float32``: patch and context features of ``voxels``."""
  return np.concatenate([features.patches(example, voxels, config.patch),
                         features.context(example, voxels)], 1)


def fit(config: ml_collections.ConfigDict, examples: list[dict[str, np.ndarray]], seed: int):
  """The forest fitted on ``config.samples_per_case`` voxels of each training example.

  Args:
    config: ``config.baseline.replica`` (patch, samples_per_case, trees, min_samples_leaf,
      max_features, n_jobs).
    examples: training examples of `pipeline.load_case` (with ``target``).
    seed: draws the voxels and the trees' bootstraps.
  """
  from sklearn import ensemble  # pylint: disable=g-import-not-at-top  (the baselines' own extra)
  rng = np.random.default_rng(seed)
  x, y = [], []
  for example in examples:
    voxels = features.sample_voxels(example, config.samples_per_case, rng)
    x.append(voxel_features(example, voxels, config))
    y.append(features.targets(example, voxels))
  forest = ensemble.RandomForestRegressor(
      n_estimators=config.trees, min_samples_leaf=config.min_samples_leaf,
      max_features=config.max_features, n_jobs=config.n_jobs, random_state=seed)
  return forest.fit(np.concatenate(x), np.concatenate(y))


def predict(forest, config: ml_collections.ConfigDict,
            example: dict[str, np.ndarray]) -> np.ndarray:
  """``[D, H, W, 1] float32``: the forest's synthesis inside the brain, 0 outside."""
  return features.predict_brain(
      example, lambda voxels: forest.predict(voxel_features(example, voxels, config)))
