"""Sliding-window inference with Gaussian blending, for volumes larger than memory allows.

The network is fully convolutional, so it can be run on overlapping windows of a volume and the
outputs blended: each window's outputs are weighted by a Gaussian centred on the window (sigma =
``sigma_scale`` x the window's size, per axis, as in nnU-Net), which down-weights the window borders
where the convolutions saw zero padding. Instance norm then normalises per window, so the result is
close to, not equal to, one pass over the whole volume; with MC dropout the per-voxel variance,
entropy and mutual information are blended per-window estimates.
"""

from __future__ import annotations

from collections.abc import Callable
import functools
import itertools

import numpy as np


def starts(size: int, window: int, overlap: float) -> list[int]:
  """Window starts along one axis: ``0``, then steps of at most ``window * (1 - overlap)``, the
  last window ending at ``size``; ``[0]`` when the window covers the axis."""
  if window >= size:
    return [0]
  count = int(np.ceil((size - window) / (window * (1 - overlap)))) + 1
  return sorted({int(round(s)) for s in np.linspace(0, size - window, count)})


def gaussian(window: tuple[int, ...], sigma_scale: float = 0.125) -> np.ndarray:
  """``[*window] float32`` Gaussian weights, 1 at the centre, never below 1e-3 of it (so every voxel
  of the volume has weight)."""
  axes = [np.exp(-0.5 * ((np.arange(n) - (n - 1) / 2) / max(sigma_scale * n, 1e-6))**2)
          for n in window]
  weights = functools.reduce(np.multiply.outer, axes)
  return np.maximum(weights / weights.max(), 1e-3).astype(np.float32)


def predict(fn: Callable[[dict[str, np.ndarray], int], dict[str, np.ndarray]],
            inputs: dict[str, np.ndarray], window: tuple[int, int, int], overlap: float = 0.5,
            sigma_scale: float = 0.125) -> dict[str, np.ndarray]:
  """Runs ``fn`` on overlapping windows of ``inputs`` and blends its outputs.

  Args:
    fn: ``(window inputs, window index) -> outputs``; inputs ``[1, d, h, w, C]`` arrays, outputs
      ``[1, d, h, w, ...]`` arrays (the index lets MC dropout draw other masks per window).
    inputs: ``{name: [1, D, H, W, C]}`` (e.g. ``inputs`` and ``complementary``).
    window: ``(d, h, w)`` window size in voxels (clipped to the volume).
    overlap: fraction of a window shared with its neighbour along each axis, in ``[0, 1)``.

  Returns:
    ``{name: [1, D, H, W, ...] float32}``: per voxel, the Gaussian-weighted mean of the windows'
    outputs.
  """
  if not 0 <= overlap < 1:
    raise ValueError(f'overlap must be in [0, 1), got {overlap}')
  shape = next(iter(inputs.values())).shape[1:4]
  window = tuple(min(w, s) for w, s in zip(window, shape))
  weights = gaussian(window, sigma_scale)
  grids = [starts(s, w, overlap) for s, w in zip(shape, window)]
  sums, total = {}, np.zeros(shape, np.float32)
  for index, corner in enumerate(itertools.product(*grids)):
    region = tuple(slice(c, c + w) for c, w in zip(corner, window))
    out = fn({k: v[(slice(None),) + region] for k, v in inputs.items()}, index)
    for name, value in out.items():
      value = np.asarray(value, np.float32)[0]
      if name not in sums:
        sums[name] = np.zeros(shape + value.shape[3:], np.float32)
      w = weights.reshape(window + (1,) * (value.ndim - 3))
      sums[name][region] += w * value
    total[region] += weights
  return {name: (s / total.reshape(shape + (1,) * (s.ndim - 3)))[None] for name, s in sums.items()}
