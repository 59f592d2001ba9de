"""Voxel-axis orientation: every case is read in one canonical orientation, outputs go back.

The network sees volumes whose voxel axes run towards Left, Posterior, Superior (``LPS``: how the
BraTS releases store their volumes, so their files need no change); a file stored otherwise (e.g. RAS
from a scanner pipeline, or with permuted axes) is flipped/transposed to it, and outputs are mapped
back onto the file's own voxel grid, so they share its shape and affine exactly. Only axis flips and
permutations are used (no resampling): the round trip is voxel-exact.
"""

from __future__ import annotations

import nibabel as nib
import numpy as np

CANONICAL = ('L', 'P', 'S')


def to_canonical(affine: np.ndarray) -> np.ndarray:
  """The ``[3, 2]`` nibabel orientation transform from a file's voxel axes to `CANONICAL`."""
  return nib.orientations.ornt_transform(nib.orientations.io_orientation(affine),
                                         nib.orientations.axcodes2ornt(CANONICAL))


def from_canonical(affine: np.ndarray) -> np.ndarray:
  """The inverse of `to_canonical`: from `CANONICAL` back to the file's voxel axes."""
  return nib.orientations.ornt_transform(nib.orientations.axcodes2ornt(CANONICAL),
                                         nib.orientations.io_orientation(affine))


def apply(volume: np.ndarray, transform: np.ndarray) -> np.ndarray:
  """Flips/transposes the first three axes of ``volume [X, Y, Z, ...]`` by ``transform``."""
  return np.ascontiguousarray(nib.orientations.apply_orientation(volume, transform))


def canonical_affine(affine: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
  """The affine of the volume after `apply(volume, to_canonical(affine))` (same world points)."""
  transform = to_canonical(affine)
  return affine @ nib.orientations.inv_ornt_aff(transform, shape[:3])


def spacing(affine: np.ndarray) -> tuple[float, float, float]:
  """Voxel size in mm along the canonical axes of a volume stored with ``affine``."""
  sizes = np.linalg.norm(np.asarray(affine)[:3, :3], axis=0)
  out = [0.0] * 3
  for axis, (canonical_axis, _) in enumerate(to_canonical(affine)):
    out[int(canonical_axis)] = float(sizes[axis])
  return tuple(out)
