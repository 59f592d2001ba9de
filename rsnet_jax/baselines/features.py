"""Voxel features of the voxel-wise baselines (REPLICA, LSDN) and the voxels they learn from.

Every function reads one example of `pipeline.load_case` (``inputs [D, H, W, M]`` normalised,
``brain [D, H, W]``, and for training ``target [D, H, W, 1]``) and works on the brain's voxels only,
so a full-resolution BraTS case costs ``brain voxels x features`` floats, not the volume's.
"""

from __future__ import annotations

import itertools
from typing import Callable

import numpy as np
from scipy import ndimage

# REPLICA's context: the smoothed inputs at these Gaussian sigmas (voxels), read at the voxel and
# at +-2 sigma along each axis (6 neighbours), a coarse-to-fine description of the surroundings.
CONTEXT_SIGMAS = (1.0, 2.0, 4.0)
CHUNK = 200_000  # voxels predicted together: bounds the feature matrix of a full-size case


def brain_voxels(example: dict[str, np.ndarray]) -> np.ndarray:
  """``[N, 3] int`` indices of the brain's voxels, in C order."""
  return np.argwhere(example['brain'] > 0)


def sample_voxels(example: dict[str, np.ndarray], count: int, rng: np.random.Generator
                  ) -> np.ndarray:
  """``[min(count, N), 3]``: brain voxels drawn without replacement (all of them when fewer)."""
  voxels = brain_voxels(example)
  if len(voxels) <= count:
    return voxels
  return voxels[np.sort(rng.choice(len(voxels), count, replace=False))]


def _gather(volume: np.ndarray, voxels: np.ndarray, offset: tuple[int, int, int]) -> np.ndarray:
  """``volume[voxel + offset]`` for each voxel, edge-clamped: ``[N]``."""
  idx = [np.clip(voxels[:, a] + offset[a], 0, volume.shape[a] - 1) for a in range(3)]
  return volume[idx[0], idx[1], idx[2]]


def patch_offsets(patch: int) -> list[tuple[int, int, int]]:
  """The ``patch^3`` offsets of a cube centred on the voxel (``patch`` odd)."""
  if patch < 1 or patch % 2 == 0:
    raise ValueError(f'patch must be a positive odd number, got {patch}')
  r = patch // 2
  return list(itertools.product(range(-r, r + 1), repeat=3))


def patches(example: dict[str, np.ndarray], voxels: np.ndarray, patch: int) -> np.ndarray:
  """``[N, M * patch^3] float32``: each input's cube of ``patch^3`` voxels around each voxel."""
  inputs = example['inputs']
  return np.stack([_gather(inputs[..., m], voxels, o) for m in range(inputs.shape[-1])
                   for o in patch_offsets(patch)], 1).astype(np.float32)


def context(example: dict[str, np.ndarray], voxels: np.ndarray,
            sigmas: tuple[float, ...] = CONTEXT_SIGMAS) -> np.ndarray:
  """``[N, M * len(sigmas) * 7] float32``: REPLICA's multi-resolution context, each input smoothed
  by each sigma (inside the brain: normalised convolution, so the background does not darken the
  brain's edge) and read at the voxel and at +-2 sigma along each axis."""
  inputs, brain = example['inputs'], (example['brain'] > 0).astype(np.float32)
  columns = []
  for sigma in sigmas:
    weight = np.maximum(ndimage.gaussian_filter(brain, sigma), 1e-6)
    step = max(1, int(round(2 * sigma)))
    offsets = [(0, 0, 0)] + [tuple(s * step * (a == b) for b in range(3))
                             for a in range(3) for s in (-1, 1)]
    for m in range(inputs.shape[-1]):
      smooth = ndimage.gaussian_filter(inputs[..., m] * brain, sigma) / weight
      columns += [_gather(smooth, voxels, o) for o in offsets]
  return np.stack(columns, 1).astype(np.float32)


def positions(example: dict[str, np.ndarray], voxels: np.ndarray) -> np.ndarray:
  """``[N, 3] float32``: each voxel's position in the brain's bounding box, -1 to 1 per axis
  (LSDN's location input; the canonical orientation makes the axes the same for every case)."""
  brain = np.argwhere(example['brain'] > 0)
  low, high = brain.min(0), brain.max(0)
  return (2 * (voxels - low) / np.maximum(high - low, 1) - 1).astype(np.float32)


def targets(example: dict[str, np.ndarray], voxels: np.ndarray) -> np.ndarray:
  """``[N] float32``: the target sequence at each voxel."""
  return _gather(example['target'][..., 0], voxels, (0, 0, 0)).astype(np.float32)


def scatter(example: dict[str, np.ndarray], voxels: np.ndarray, values: np.ndarray) -> np.ndarray:
  """``[D, H, W, 1] float32``: ``values`` at ``voxels``, 0 elsewhere (outside the brain)."""
  out = np.zeros(example['brain'].shape, np.float32)
  out[voxels[:, 0], voxels[:, 1], voxels[:, 2]] = values
  return out[..., None]


def predict_brain(example: dict[str, np.ndarray],
                  values_of: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
  """``[D, H, W, 1] float32``: ``values_of(voxels [n, 3]) -> [n]`` at every brain voxel, in chunks
  of `CHUNK` voxels, 0 outside the brain."""
  voxels = brain_voxels(example)
  values = [np.asarray(values_of(voxels[i:i + CHUNK])) for i in range(0, len(voxels), CHUNK)]
  return scatter(example, voxels, np.concatenate(values or [np.zeros(0)]))
