"""Voxel spacing: the grid a model was trained on, and resampling a case onto it and back.

A case is read in the canonical orientation (`orientation`); its spacing there (mm per voxel along
each canonical axis) is `orientation.spacing`. When it differs from the model's spacing by more
than `TOLERANCE` (relative) on some axis, the case is resampled to the shape that covers the same
field of view at the model's spacing, ``round(shape * spacing / target)``, and every output is
resampled back onto the case's exact shape: voxel edges are mapped onto voxel edges
(``scipy.ndimage.zoom(..., grid_mode=True)``), so both grids cover the same millimetres and the
affine of the case stays its own.

Images use a spline of ``order`` (``data.resample_order``, default 3 as nnU-Net's), labels the
nearest voxel, class probabilities and uncertainty maps linear interpolation (probabilities stay a
distribution: linear weights sum to 1).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

TOLERANCE = 0.05  # relative difference of a spacing below which a case is read as it is


def differs(spacing: tuple[float, ...], target: tuple[float, ...] | None) -> bool:
  """Whether a case at ``spacing`` (mm) must be resampled to ``target`` (None: never)."""
  if not target:
    return False
  spacing, target = np.asarray(spacing, float), np.asarray(target, float)
  return bool(np.any(np.abs(spacing - target) > TOLERANCE * target))


def shape_at(shape: tuple[int, ...], spacing: tuple[float, ...],
             target: tuple[float, ...]) -> tuple[int, int, int]:
  """The grid that covers ``shape`` voxels of ``spacing`` mm at ``target`` mm (at least 1 each)."""
  return tuple(max(1, int(round(n * s / t))) for n, s, t in zip(shape[:3], spacing, target))


def resample(volume: np.ndarray, shape: tuple[int, ...], order: int) -> np.ndarray:
  """``volume [X, Y, Z, ...]`` onto a grid of ``shape [3]`` over the same field of view.

  ``order``: 0 nearest (labels), 1 linear (probabilities, uncertainty), 3 cubic (images). Float
  volumes stay float32 (no float64 copy), integer ones keep their dtype (order 0 only). Trailing
  axes (e.g. classes) are resampled one by one.
  """
  shape = tuple(int(n) for n in shape[:3])
  if tuple(volume.shape[:3]) == shape:
    return volume
  if volume.ndim > 3:
    flat = volume.reshape(volume.shape[:3] + (-1,))
    out = np.empty(shape + (flat.shape[-1],), volume.dtype if order == 0 else np.float32)
    for c in range(flat.shape[-1]):
      out[..., c] = resample(flat[..., c], shape, order)
    return out.reshape(shape + volume.shape[3:])
  if order and not np.issubdtype(volume.dtype, np.floating):
    raise ValueError(f'order {order} resampling of a {volume.dtype} volume: use order 0')
  dtype = volume.dtype if order == 0 else np.float32
  volume = volume.astype(dtype, copy=False)
  if order > 1:  # the spline coefficients in float32: zoom's own prefilter makes a float64 copy
    volume = ndimage.spline_filter(volume, order, output=np.float32, mode='nearest')
  zoom = [n / m for n, m in zip(shape, volume.shape)]
  out = np.empty(shape, dtype)
  ndimage.zoom(volume, zoom, output=out, order=order, mode='nearest', grid_mode=True,
               prefilter=False)
  return out


def median_spacing(spacings: list[tuple[float, ...]]) -> tuple[float, float, float]:
  """The per-axis median of the training cases' spacings (mm), nnU-Net's choice of target."""
  if not spacings:
    raise ValueError('no spacings to take the median of')
  return tuple(round(float(s), 6) for s in np.median(np.asarray(spacings, float), axis=0))
