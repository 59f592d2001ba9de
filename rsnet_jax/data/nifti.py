"""NIfTI reading and atomic writing with nibabel.

Volumes are returned as ``[X, Y, Z] float32`` in the file's voxel order (scl_slope / scl_inter applied
by nibabel), with the file's affine ``[4, 4]`` (mm).
"""

from __future__ import annotations

import os
import tempfile
import zlib

import nibabel as nib
import numpy as np

from rsnet_jax.errors import UserError

SUFFIXES = ('.nii.gz', '.nii')


def load(path: str, dtype=np.float32) -> tuple[np.ndarray, np.ndarray]:
  """Reads a 3D volume (a trailing singleton 4th dimension is dropped).

  Returns:
    ``(data [X, Y, Z], affine [4, 4])``.

  Raises:
    UserError: naming ``path`` when the file is missing, unreadable, truncated or not 3D.
  """
  try:
    img = nib.load(path)
    data = np.asarray(img.get_fdata(dtype=np.float32 if dtype == np.float32 else np.float64))
  except FileNotFoundError:
    raise UserError(f'{path}: file not found') from None
  except (OSError, EOFError, ValueError, zlib.error, nib.filebasedimages.ImageFileError) as e:
    raise UserError(f'{path}: unreadable NIfTI ({type(e).__name__}: {e})') from None
  while data.ndim > 3 and data.shape[-1] == 1:
    data = data[..., 0]
  if data.ndim != 3:
    raise UserError(f'{path}: expected a 3D volume, got shape {data.shape}')
  return data.astype(dtype, copy=False), np.asarray(img.affine, np.float64)


def save(path: str, data: np.ndarray, affine: np.ndarray, description: str = '') -> None:
  """Writes ``data`` with ``affine`` atomically: a temporary file in the same folder is renamed onto
  ``path``, so an interrupted write never leaves a half-written file under the final name."""
  img = nib.Nifti1Image(np.asarray(data), np.asarray(affine, np.float64))
  img.header.set_qform(affine, code=1)
  img.header.set_sform(affine, code=1)
  if description:
    img.header['descrip'] = description.encode()[:79]
  folder = os.path.dirname(os.path.abspath(path))
  os.makedirs(folder, exist_ok=True)
  suffix = '.nii.gz' if path.endswith('.nii.gz') else '.nii'
  fd, tmp = tempfile.mkstemp(prefix='.tmp-', suffix=suffix, dir=folder)
  os.close(fd)
  try:
    nib.save(img, tmp)
    os.replace(tmp, path)
  except BaseException:
    if os.path.exists(tmp):
      os.remove(tmp)
    raise
