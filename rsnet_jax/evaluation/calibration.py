"""Does the uncertainty point at the errors? Pure numpy measures for the MC-dropout study.

Voxel arrays are flat ``[N]`` (the voxels of a mask); probabilities are ``[N, C]``.
- Spearman rank correlation of the per-voxel variance with the squared error.
- Sparsification (Ilg et al., ECCV 2018): the mean error left after removing the fraction ``f`` of
  voxels with the highest uncertainty, against the oracle that removes the largest errors first; both
  curves divided by the mean error of all voxels, AUSE = the area between them (0 = perfect ranking).
- Reliability of the segmentation probabilities (Guo et al., ICML 2017): confidence (the top class's
  probability) against accuracy in equal-width confidence bins; ECE = the count-weighted mean gap.
"""

from __future__ import annotations

import numpy as np

FRACTIONS = np.arange(100) / 100  # removed fractions 0, 0.01, ..., 0.99


def spearman(uncertainty: np.ndarray, error: np.ndarray) -> float:
  """Spearman's rho of two ``[N]`` arrays; ``nan`` when either is constant."""
  if uncertainty.size < 2 or np.ptp(uncertainty) == 0 or np.ptp(error) == 0:
    return float('nan')
  import scipy.stats  # pylint: disable=g-import-not-at-top (1.2 s at import; only the study needs it)
  return float(scipy.stats.spearmanr(uncertainty, error).statistic)


def _remaining_mean(score: np.ndarray, error: np.ndarray, fractions: np.ndarray) -> np.ndarray:
  """Mean ``error`` of the voxels left after removing the ``fractions`` with the highest ``score``.

  Voxels of equal score are removed together in expectation (as if ties were broken at random):
  the removed error is interpolated linearly inside a group of ties.
  """
  order = np.argsort(-score, kind='stable')
  s, e = score[order], error[order].astype(np.float64)
  cumulative = np.concatenate([[0.0], np.cumsum(e)])
  bounds = np.concatenate([[0], np.flatnonzero(np.diff(s)) + 1, [s.size]])
  removed = np.floor(fractions * s.size)
  removed_error = np.interp(removed, bounds, cumulative[bounds])
  return (cumulative[-1] - removed_error) / (s.size - removed)


def sparsification(uncertainty: np.ndarray, error: np.ndarray,
                   fractions: np.ndarray = FRACTIONS) -> dict[str, np.ndarray | float]:
  """Sparsification and oracle curves (relative to the mean error) and their AUSE.

  Returns:
    ``{'fractions': [F], 'curve': [F], 'oracle': [F], 'ause': float}``; curves start at 1. An
    all-zero error gives flat zero curves and AUSE 0.
  """
  mean_error = float(np.mean(error, dtype=np.float64))
  scale = 1.0 / mean_error if mean_error > 0 else 0.0
  curve = _remaining_mean(uncertainty, error, fractions) * scale
  oracle = _remaining_mean(error, error, fractions) * scale
  return {'fractions': fractions, 'curve': curve, 'oracle': oracle,
          'ause': float(np.trapezoid(curve - oracle, fractions))}


def reliability_bins(probabilities: np.ndarray, labels: np.ndarray,
                     num_bins: int = 15) -> dict[str, np.ndarray]:
  """Per confidence bin ``[k/B, (k+1)/B)`` (the last one closed): voxel count, summed confidence
  and number correct. Sums, so that the bins of several cases add up to the pooled bins."""
  confidence = probabilities.max(-1).astype(np.float64)
  correct = (probabilities.argmax(-1) == labels).astype(np.float64)
  index = np.minimum((confidence * num_bins).astype(int), num_bins - 1)
  return {'count': np.bincount(index, minlength=num_bins).astype(np.float64),
          'confidence_sum': np.bincount(index, confidence, minlength=num_bins),
          'correct_sum': np.bincount(index, correct, minlength=num_bins)}


def expected_calibration_error(bins: dict[str, np.ndarray]) -> float:
  """ECE of `reliability_bins`: ``sum_k n_k / N |accuracy_k - confidence_k|``; ``nan`` if empty."""
  total = bins['count'].sum()
  if total == 0:
    return float('nan')
  return float(np.abs(bins['correct_sum'] - bins['confidence_sum']).sum() / total)


def region_means(values: np.ndarray, regions: dict[str, np.ndarray]) -> dict[str, float]:
  """Mean of ``values [X, Y, Z]`` inside each boolean mask; ``nan`` for an empty mask."""
  return {name: float(values[mask].mean(dtype=np.float64)) if mask.any() else float('nan')
          for name, mask in regions.items()}
