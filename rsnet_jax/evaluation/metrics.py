"""Evaluation metrics as pure numpy functions.

Synthesis: PSNR (eq. 6), SSIM two ways (the paper's global eq. 5, and the standard windowed SSIM of
scikit-image with a Gaussian window, sigma 1.5, in 3D). Segmentation: BraTS Dice (WT/TC/ET, both label
conventions, 1 when a region is empty in truth and prediction), 95th-percentile Hausdorff distance in
mm. MS lesions (Sec. III-C): lesion-level detection with 18-connected components, TPR/FDR per size
bin, ROC over probability thresholds, TPR at a given FDR.

Volumes are ``[X, Y, Z]`` arrays on the same grid; masks are boolean ``[X, Y, Z]``.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from rsnet_jax.data import layouts

REGIONS = layouts.REGIONS


def _from_zero(truth: np.ndarray, prediction: np.ndarray,
               mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """Both volumes as intensities from 0, as SSIM's luminance term assumes: shifted by the truth's
  minimum in ``mask`` where that is negative (``zscore``, mean 0: there the term would divide by
  means near 0), as they are otherwise (``brats2017``'s brain starts at 0)."""
  low = float(truth[mask].min())
  return (truth - low, prediction - low) if low < 0 else (truth, prediction)


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
  region), with ``c1 = (0.01 L)**2``, ``c2 = (0.03 L)**2``, ``L`` = the truth's range in ``mask``;
  negative intensities first shifted as `_from_zero`."""
  if not mask.any():
    return float('nan')
  truth, prediction = _from_zero(truth, prediction, mask)
  x, y = truth[mask].astype(np.float64), prediction[mask].astype(np.float64)
  if data_range is None:
    data_range = float(x.max() - x.min()) or 1.0
  c1, c2 = (0.01 * data_range)**2, (0.03 * data_range)**2
  mx, my = x.mean(), y.mean()
  vx, vy = x.var(), y.var()
  cov = np.mean((x - mx) * (y - my))
  return float((2 * mx * my + c1) * (2 * cov + c2) / ((mx**2 + my**2 + c1) * (vx + vy + c2)))


def ssim_map(truth: np.ndarray, prediction: np.ndarray, data_range: float, sigma: float = 1.5,
             truncate: float = 3.5) -> np.ndarray:
  """Windowed SSIM per voxel (Wang et al. 2004), as scikit-image's ``structural_similarity`` with
  ``gaussian_weights=True, use_sample_covariance=False`` computes it, in any dimension: local means,
  variances and covariance under a Gaussian window (``sigma`` voxels, cut at ``truncate`` sigma,
  reflecting borders), ``c1 = (0.01 L)**2``, ``c2 = (0.03 L)**2``."""
  x, y = truth.astype(np.float64), prediction.astype(np.float64)
  blur = lambda a: ndimage.gaussian_filter(a, sigma, truncate=truncate, mode='reflect')
  ux, uy = blur(x), blur(y)
  vx, vy, vxy = blur(x * x) - ux * ux, blur(y * y) - uy * uy, blur(x * y) - ux * uy
  c1, c2 = (0.01 * data_range)**2, (0.03 * data_range)**2
  return (2 * ux * uy + c1) * (2 * vxy + c2) / ((ux**2 + uy**2 + c1) * (vx + vy + c2))


def ssim_windowed(truth: np.ndarray, prediction: np.ndarray, mask: np.ndarray | None = None,
                  data_range: float | None = None, sigma: float = 1.5) -> float:
  """Mean of `ssim_map` over ``mask`` (the whole volume computed, so windows see the context), or
  without a mask over the volume less a border of half a window, as scikit-image averages it.
  ``L`` defaults to the truth's range in ``mask``; negative intensities first shifted as
  `_from_zero`; ``nan`` for an empty mask."""
  region = np.ones(truth.shape, bool) if mask is None else mask.astype(bool)
  if not region.any():
    return float('nan')
  truth, prediction = _from_zero(truth, prediction, region)
  if data_range is None:
    values = truth[region]
    data_range = float(values.max() - values.min()) or 1.0
  s = ssim_map(truth, prediction, data_range, sigma)
  if mask is None:
    pad = int(3.5 * sigma + 0.5)
    return float(s[tuple(slice(pad, n - pad) for n in s.shape)].mean())
  return float(s[region].mean())


def dice(truth: np.ndarray, prediction: np.ndarray) -> float:
  """Dice of two boolean masks; 1.0 when both are empty (the BraTS rule)."""
  t, p = truth.astype(bool), prediction.astype(bool)
  denom = t.sum() + p.sum()
  return 1.0 if denom == 0 else float(2 * np.logical_and(t, p).sum() / denom)


def brats_dice(truth_index: np.ndarray, prediction_index: np.ndarray) -> dict[str, float]:
  """Dice of the whole tumour, tumour core and enhancing tumour from class-index volumes."""
  return {name: dice(np.isin(truth_index, idx), np.isin(prediction_index, idx))
          for name, idx in REGIONS.items()}


# Label values of each BraTS region per label convention (BraTS 2017-2021: enhancing = 4; 2023+: 3).
LABEL_REGIONS = {
    'brats2021': {'WT': (1, 2, 4), 'TC': (1, 4), 'ET': (4,)},
    'brats2023': {'WT': (1, 2, 3), 'TC': (1, 3), 'ET': (3,)},
}
HD95_EMPTY_MM = 373.13  # BraTS's value when exactly one of truth and prediction is empty


def brats_dice_labels(truth: np.ndarray, prediction: np.ndarray,
                      convention: str = 'brats2021') -> dict[str, float]:
  """Dice of WT, TC and ET from label-value volumes in ``convention`` (`LABEL_REGIONS`)."""
  return {name: dice(np.isin(truth, v), np.isin(prediction, v))
          for name, v in LABEL_REGIONS[convention].items()}


def _surface(mask: np.ndarray) -> np.ndarray:
  return mask & ~ndimage.binary_erosion(mask, ndimage.generate_binary_structure(mask.ndim, 1))


def hd95(truth: np.ndarray, prediction: np.ndarray, spacing: tuple[float, ...]) -> float:
  """95th percentile of the symmetric surface distances in mm (as MedPy's ``hd95``: the distances of
  each surface voxel of one mask to the other mask's surface, both directions pooled). 0 when both
  masks are empty, `HD95_EMPTY_MM` when one is."""
  t, p = truth.astype(bool), prediction.astype(bool)
  if not t.any() and not p.any():
    return 0.0
  if not t.any() or not p.any():
    return HD95_EMPTY_MM
  st, sp = _surface(t), _surface(p)
  to_p = ndimage.distance_transform_edt(~sp, sampling=spacing)
  to_t = ndimage.distance_transform_edt(~st, sampling=spacing)
  return float(np.percentile(np.concatenate([to_p[st], to_t[sp]]), 95))


def brats_hd95(truth_index: np.ndarray, prediction_index: np.ndarray,
               spacing: tuple[float, ...]) -> dict[str, float]:
  """`hd95` of the whole tumour, tumour core and enhancing tumour from class-index volumes."""
  return {name: hd95(np.isin(truth_index, idx), np.isin(prediction_index, idx), spacing)
          for name, idx in REGIONS.items()}


# MS lesions (Sec. III-C): 18-connected components; sizes in voxels.
CONNECTIVITY_18 = ndimage.generate_binary_structure(3, 2)
LESION_BINS = {'all': (3, None), 'small': (3, 10), 'medium': (11, 50), 'large': (51, None)}
MIN_CANDIDATE = 3


def lesion_detection(truth: np.ndarray, prediction: np.ndarray) -> dict[str, dict[str, int]]:
  """Lesion-level counts ``{bin: {'tp', 'fn', 'fp'}}`` for the `LESION_BINS` (truth lesions of 1-2
  voxels are not counted).

  A truth lesion is detected (TP, else FN) when the prediction grown by its 18-neighbourhood covers
  at least 3, or more than 50 %, of its voxels; it falls in the bin of its own size. A predicted
  lesion of at least 3 voxels that, grown by its 18-neighbourhood, touches no truth voxel is a FP, in
  the bin of its size. Counts add over cases; `rates` turns them into TPR and FDR.
  """
  t, p = truth.astype(bool), prediction.astype(bool)
  t_label, _ = ndimage.label(t, CONNECTIVITY_18)
  p_label, _ = ndimage.label(p, CONNECTIVITY_18)
  t_size = np.bincount(t_label.ravel())[1:]
  covered = np.bincount(t_label[ndimage.binary_dilation(p, CONNECTIVITY_18)],
                        minlength=t_size.size + 1)[1:]
  detected = (covered >= 3) | (covered > 0.5 * t_size)
  p_size = np.bincount(p_label.ravel())[1:]
  touches = np.bincount(p_label[ndimage.binary_dilation(t, CONNECTIVITY_18)],
                        minlength=p_size.size + 1)[1:] > 0
  false = (p_size >= MIN_CANDIDATE) & ~touches
  counts = {}
  for name, (lo, hi) in LESION_BINS.items():
    in_bin = lambda size: (size >= lo) & (size <= (hi if hi is not None else np.inf))
    counts[name] = {'tp': int((detected & in_bin(t_size)).sum()),
                    'fn': int((~detected & in_bin(t_size)).sum()),
                    'fp': int((false & in_bin(p_size)).sum())}
  return counts


def rates(counts: dict[str, int]) -> tuple[float, float]:
  """``(TPR, FDR) = (TP / (TP + FN), FP / (FP + TP))``; 0 where a denominator is 0."""
  tp, fn, fp = counts['tp'], counts['fn'], counts['fp']
  return (tp / (tp + fn) if tp + fn else 0.0, fp / (fp + tp) if fp + tp else 0.0)


def lesion_roc(truths: list[np.ndarray], probabilities: list[np.ndarray],
               thresholds: np.ndarray) -> dict[str, np.ndarray]:
  """ROC as TPR vs FDR over ``thresholds`` (prediction = probability >= threshold), counts pooled
  over the cases. Returns ``{bin: [T, 2]}`` rows ``(TPR, FDR)`` per threshold."""
  curves = {name: np.zeros((len(thresholds), 2)) for name in LESION_BINS}
  for i, threshold in enumerate(thresholds):
    total = {name: {'tp': 0, 'fn': 0, 'fp': 0} for name in LESION_BINS}
    for truth, prob in zip(truths, probabilities):
      for name, c in lesion_detection(truth, prob >= threshold).items():
        for k, v in c.items():
          total[name][k] += v
    for name in LESION_BINS:
      curves[name][i] = rates(total[name])
  return curves


def tpr_at_fdr(curve: np.ndarray, fdr: float = 0.2) -> float:
  """TPR at ``fdr`` on a ``[T, 2]`` (TPR, FDR) curve, linearly interpolated between its points
  sorted by FDR (the TPR of the nearest end outside the curve's FDR range)."""
  order = np.lexsort((curve[:, 0], curve[:, 1]))
  return float(np.interp(fdr, curve[order, 1], curve[order, 0]))


def synthesis_metrics(truth: np.ndarray, prediction: np.ndarray, brain: np.ndarray,
                      tumour: np.ndarray) -> dict[str, float]:
  """PSNR, global SSIM (eq. 5) and windowed SSIM over the brain and inside the tumour."""
  return {'psnr_brain': psnr(truth, prediction, brain),
          'ssim_brain': ssim_global(truth, prediction, brain),
          'ssim_windowed_brain': ssim_windowed(truth, prediction, brain),
          'psnr_tumour': psnr(truth, prediction, tumour),
          'ssim_tumour': ssim_global(truth, prediction, tumour),
          'ssim_windowed_tumour': ssim_windowed(truth, prediction, tumour)}


# QU-BraTS (BraTS 2019-2020 uncertainty task; Mehta et al., MELBA 2022): per region an uncertainty
# map in [0, 100]; at each of these thresholds (100, 97.5, ..., 0) the voxels more uncertain than
# it are filtered out; Dice is computed on the rest and the ratios of true positives and true
# negatives (in the brain) that were filtered; the areas under the three curves (over the
# thresholds, divided by 100) make the score (AUC_Dice + (1 - AUC_FTP) + (1 - AUC_FTN)) / 3.
# As the challenge's code: Dice of two empty masks is 1, a ratio with nothing to filter is 0.
QU_BRATS_POINTS = 40


def qu_brats_thresholds(num_points: int = QU_BRATS_POINTS) -> np.ndarray:
  """``[num_points + 1]`` uncertainty thresholds from 100 down to 0."""
  return np.linspace(100.0, 0.0, num_points + 1)


def qu_brats_curves(truth: np.ndarray, prediction: np.ndarray, uncertainty: np.ndarray,
                    brain: np.ndarray, thresholds: np.ndarray) -> dict[str, np.ndarray]:
  """Dice, filtered-TP ratio and filtered-TN ratio at each threshold (``[K]`` each) of one region:
  boolean ``truth``, ``prediction`` and ``brain`` masks, ``uncertainty`` in [0, 100]."""
  t, p, b = truth.astype(bool), prediction.astype(bool), brain.astype(bool)
  tp, tn = t & p & b, ~t & ~p & b
  tp_count, tn_count = tp.sum(), tn.sum()
  out = {'dice': [], 'ftp_ratio': [], 'ftn_ratio': []}
  for threshold in thresholds:
    certain = uncertainty <= threshold
    out['dice'].append(dice(t & certain, p & certain))
    out['ftp_ratio'].append(float((tp & ~certain).sum() / tp_count) if tp_count else 0.0)
    out['ftn_ratio'].append(float((tn & ~certain).sum() / tn_count) if tn_count else 0.0)
  return {k: np.asarray(v) for k, v in out.items()}


def qu_brats_region(truth: np.ndarray, prediction: np.ndarray, uncertainty: np.ndarray,
                    brain: np.ndarray, num_points: int = QU_BRATS_POINTS) -> dict[str, float]:
  """One region's ``auc_dice``, ``auc_ftp``, ``auc_ftn`` (trapezoids over the thresholds / 100)
  and ``score``."""
  thresholds = qu_brats_thresholds(num_points)
  return qu_brats_areas(qu_brats_curves(truth, prediction, uncertainty, brain, thresholds),
                        thresholds)


def qu_brats_areas(curves: dict[str, np.ndarray], thresholds: np.ndarray) -> dict[str, float]:
  """`qu_brats_curves`' curves -> ``auc_dice``, ``auc_ftp``, ``auc_ftn`` (trapezoids over the
  thresholds / 100) and ``score``."""
  x = thresholds[::-1]
  areas = {f'auc_{k.split("_")[0]}': float(np.trapezoid(v[::-1], x) / 100.0)
           for k, v in curves.items()}
  areas['score'] = (areas['auc_dice'] + (1 - areas['auc_ftp']) + (1 - areas['auc_ftn'])) / 3
  return areas


def qu_brats(truth_index: np.ndarray, prediction_index: np.ndarray,
             uncertainties: dict[str, np.ndarray], brain: np.ndarray,
             num_points: int = QU_BRATS_POINTS) -> dict[str, float]:
  """The QU-BraTS figures of WT, TC and ET from class-index volumes and one uncertainty map per
  region (`uncertainty.region_uncertainty`, or any other in [0, 100]):
  ``{'qu_WT_score': ..., 'qu_WT_auc_dice': ..., ...}``."""
  out = {}
  for name, idx in REGIONS.items():
    region = qu_brats_region(np.isin(truth_index, idx), np.isin(prediction_index, idx),
                             uncertainties[name], brain, num_points)
    out.update({f'qu_{name}_{k}': v for k, v in region.items()})
  return out
