"""Evaluation metrics as pure numpy functions: PSNR (eq. 6), global SSIM (eq. 5), BraTS Dice.

Volumes are ``[X, Y, Z]`` arrays on the same grid; masks are boolean ``[X, Y, Z]``.
"""

from __future__ import annotations

import numpy as np

# BraTS regions as sets of class indices (0 bg, 1 necrotic/non-enhancing core, 2 edema,
# 3 enhancing), the same for the 0/1/2/4 and 0/1/2/3 label conventions after index mapping.
REGIONS = {'WT': (1, 2, 3), 'TC': (1, 3), 'ET': (3,)}


def psnr(truth: np.ndarray, prediction: np.ndarray, mask: np.ndarray) -> float:
  """Eq. 6: ``10 log10(MAX**2 / MSE)``, MAX = the ground truth's maximum inside ``mask``, MSE over
  ``mask``. In dB; ``inf`` for a perfect prediction, ``nan`` for an empty mask."""
  if not mask.any():
    return float('nan')
  t, p = truth[mask].astype(np.float64), prediction[mask].astype(np.float64)
  mse = np.mean((t - p)**2)
  return float('inf') if mse == 0 else float(10 * np.log10(t.max()**2 / mse))


def ssim_global(truth: np.ndarray, prediction: np.ndarray, mask: np.ndarray,
                data_range: float | None = None) -> float:
  """Eq. 5 over the voxels of ``mask`` as one window (means, variances and covariance of the whole
  region), with ``c1 = (0.01 L)**2``, ``c2 = (0.03 L)**2``, ``L`` = the truth's range in ``mask``."""
  if not mask.any():
    return float('nan')
  x, y = truth[mask].astype(np.float64), prediction[mask].astype(np.float64)
  if data_range is None:
    data_range = float(x.max() - x.min()) or 1.0
  c1, c2 = (0.01 * data_range)**2, (0.03 * data_range)**2
  mx, my = x.mean(), y.mean()
  vx, vy = x.var(), y.var()
  cov = np.mean((x - mx) * (y - my))
  return float((2 * mx * my + c1) * (2 * cov + c2) / ((mx**2 + my**2 + c1) * (vx + vy + c2)))


def dice(truth: np.ndarray, prediction: np.ndarray) -> float:
  """Dice of two boolean masks; 1.0 when both are empty (the BraTS rule)."""
  t, p = truth.astype(bool), prediction.astype(bool)
  denom = t.sum() + p.sum()
  return 1.0 if denom == 0 else float(2 * np.logical_and(t, p).sum() / denom)


def brats_dice(truth_index: np.ndarray, prediction_index: np.ndarray) -> dict[str, float]:
  """Dice of the whole tumour, tumour core and enhancing tumour from class-index volumes."""
  return {name: dice(np.isin(truth_index, idx), np.isin(prediction_index, idx))
          for name, idx in REGIONS.items()}


def synthesis_metrics(truth: np.ndarray, prediction: np.ndarray, brain: np.ndarray,
                      tumour: np.ndarray) -> dict[str, float]:
  """PSNR and global SSIM over the brain and inside the tumour."""
  return {'psnr_brain': psnr(truth, prediction, brain),
          'ssim_brain': ssim_global(truth, prediction, brain),
          'psnr_tumour': psnr(truth, prediction, tumour),
          'ssim_tumour': ssim_global(truth, prediction, tumour)}
