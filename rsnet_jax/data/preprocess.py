"""Intensity normalisation and the crop/pad window between a case's grid and the network's grid.

``brats2017``: z-score inside the brain, then rescale the brain to [0, 1] (background 0), as the
BraTS 2017 experiments of the paper. ``brats2015``: divide by the mean brain intensity (the paper's
BraTS 2015 protocol, following Chartsias et al.). ``zscore`` (ours): the z-score inside the brain
alone (mean 0, std 1; background 0), as nnU-Net normalises MRI: no voxel's value depends on the
case's extreme voxels, which ``brats2017``'s rescaling puts into every voxel (a per-case offset no
model can read from the other sequences). ``none``: as stored.

The network needs sizes divisible by ``2**num_levels``: `window` chooses, per axis, a window of the
input grid (optionally cropped to ``crop_shape`` around the brain, then grown to a multiple), `extract`
cuts it out with zero padding where it leaves the grid, and `restore` puts a network output back onto
the exact input grid.
"""

from __future__ import annotations

from absl import logging
import numpy as np

NORMALIZATIONS = ('brats2017', 'brats2015', 'zscore', 'none')


def normalize(image: np.ndarray, brain: np.ndarray, method: str) -> np.ndarray:
  """image ``[X, Y, Z]``, brain ``[X, Y, Z] bool`` -> normalised ``float32``, 0 outside the brain."""
  image = image.astype(np.float32)
  values = image[brain]
  if method == 'none' or values.size == 0:
    out = image
  elif method in ('brats2017', 'zscore'):
    out = (image - values.mean()) / max(float(values.std()), 1e-6)
    if method == 'brats2017':  # then the brain rescaled to [0, 1] by its extreme voxels
      zb = out[brain]
      out = (out - zb.min()) / max(float(zb.max() - zb.min()), 1e-6)
  elif method == 'brats2015':
    out = image / max(float(values.mean()), 1e-6)
  else:
    raise ValueError(f'data.normalization must be one of {NORMALIZATIONS}, got {method!r}')
  return np.where(brain, out, 0.0).astype(np.float32)


def window(shape: tuple[int, ...], brain: np.ndarray, crop_shape: tuple[int, ...] | None,
           multiple: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
  """The network window ``(starts, sizes)`` in input voxel coordinates (starts may be negative,
  windows may extend past the grid: that part is zero padding).

  Sizes are ``crop_shape`` (or the input shape) rounded up to ``multiple``. A cropped window is
  centred on the brain's bounding box and kept inside the grid where it fits.
  """
  starts, sizes = [], []
  coords = np.nonzero(brain)
  for axis, n in enumerate(shape):
    size = n if crop_shape is None else min(int(crop_shape[axis]), n)
    size = -(-size // multiple) * multiple
    if crop_shape is None or coords[axis].size == 0:
      start = (n - size) // 2
    else:
      center = (int(coords[axis].min()) + int(coords[axis].max()) + 1) / 2
      start = int(round(center - size / 2))
      start = min(max(start, 0), n - size) if size <= n else (n - size) // 2
    starts.append(start)
    sizes.append(size)
    if coords[axis].size and (coords[axis].min() < start or coords[axis].max() >= start + size):
      logging.warning('the %d-voxel window of axis %d cuts the brain (extent %d..%d): voxels '
                      'outside it get 0 in the outputs', size, axis, coords[axis].min(),
                      coords[axis].max())
  return tuple(starts), tuple(sizes)


def brain_extent(brain: np.ndarray) -> tuple[int, ...]:
  """The brain's bounding box in voxels per axis, ``()`` when ``brain`` is empty."""
  coords = np.nonzero(brain)
  if not coords[0].size:
    return ()
  return tuple(int(c.max() - c.min() + 1) for c in coords)


def fits(brain: np.ndarray, crop_shape: tuple[int, ...], multiple: int) -> bool:
  """Whether the brain's bounding box fits in the window `window` cuts for ``crop_shape``."""
  extent = brain_extent(brain)
  return all(e <= -(-min(int(c), n) // multiple) * multiple
             for e, c, n in zip(extent, crop_shape, brain.shape))


def extract(volume: np.ndarray, starts: tuple[int, ...], sizes: tuple[int, ...]) -> np.ndarray:
  """Cuts the window out of ``volume [X, Y, Z, ...]``, zero-padding outside the grid."""
  out = np.zeros(tuple(sizes) + volume.shape[3:], volume.dtype)
  src, dst = _overlap(volume.shape[:3], starts, sizes)
  out[dst] = volume[src]
  return out


def restore(windowed: np.ndarray, starts: tuple[int, ...], shape: tuple[int, ...],
            fill: float = 0) -> np.ndarray:
  """Inverse of `extract`: puts ``windowed [sx, sy, sz, ...]`` back on a grid of ``shape``;
  voxels outside the window get ``fill``."""
  out = np.full(tuple(shape[:3]) + windowed.shape[3:], fill, windowed.dtype)
  src, dst = _overlap(shape[:3], starts, windowed.shape[:3])
  out[src] = windowed[dst]
  return out


def _overlap(shape, starts, sizes):
  """Slices of the grid (``src``) and of the window (``dst``) that overlap."""
  src, dst = [], []
  for n, s, size in zip(shape, starts, sizes):
    lo, hi = max(s, 0), min(s + size, n)
    src.append(slice(lo, hi))
    dst.append(slice(lo - s, hi - s))
  return tuple(src), tuple(dst)
