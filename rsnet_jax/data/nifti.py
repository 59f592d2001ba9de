"""Volume reading (NIfTI with nibabel, MetaImage through `itk`) and atomic NIfTI writing.

Volumes are returned as ``[X, Y, Z] float32`` in the file's voxel order (scl_slope / scl_inter applied
by nibabel, any stored dtype), with the file's RAS affine ``[4, 4]`` (mm). Outputs written with an
input's header keep its spatial fields (qform/sform and their codes, pixdim, units).
"""

from __future__ import annotations

import os
import zlib

import nibabel as nib
import numpy as np

from rsnet_jax.data import itk
from rsnet_jax.errors import UserError
from rsnet_jax.runtime import files

SUFFIXES = ('.nii.gz', '.nii')


def load(path: str, dtype=np.float32) -> tuple[np.ndarray, np.ndarray]:
  """Reads a 3D volume (a trailing singleton 4th dimension is dropped).

  Returns:
    ``(data [X, Y, Z], affine [4, 4])``.

  Raises:
    UserError: naming ``path`` when the file is missing, unreadable, truncated or not 3D.
  """
  if not os.path.isfile(path):
    raise UserError(f'{path}: file not found')
  if path.endswith(itk.SUFFIXES):
    data, affine = itk.read(path)
  else:
    try:
      img = nib.load(path)
      data = np.asarray(img.get_fdata(dtype=np.float32 if dtype == np.float32 else np.float64))
    except (OSError, EOFError, ValueError, zlib.error, nib.filebasedimages.ImageFileError) as e:
      reason = ' '.join(str(e).split())  # one line, whatever the library's message holds
      raise UserError(f'{path}: unreadable NIfTI ({type(e).__name__}: {reason})') from None
    affine = img.affine
  while data.ndim > 3 and data.shape[-1] == 1:
    data = data[..., 0]
  if data.ndim != 3:
    raise UserError(not_3d(path, data.shape))
  return data.astype(dtype, copy=False), np.asarray(affine, np.float64)


def not_3d(path: str, shape: tuple[int, ...]) -> str:
  """The one line that refuses a file of ``shape`` that is not one 3D volume."""
  if len(shape) == 4:
    return (f'{path}: a 4D series of {shape[3]} volumes of {tuple(shape[:3])} (diffusion, fMRI or '
            'perfusion?): the model reads one 3D volume per sequence')
  return f'{path}: expected a 3D volume, got shape {tuple(shape)}'


def peek(path: str) -> tuple[tuple[int, ...], int, np.ndarray] | None:
  """``(shape, bytes per stored voxel, affine)`` from a NIfTI header alone (no voxel is read), or
  None for other formats and unreadable files (`load` names their problem)."""
  if path.endswith(itk.SUFFIXES) or not os.path.isfile(path):
    return None
  try:
    img = nib.load(path)
  except (OSError, EOFError, ValueError, zlib.error, nib.filebasedimages.ImageFileError):
    return None
  shape = tuple(int(n) for n in img.shape)
  while len(shape) > 3 and shape[-1] == 1:
    shape = shape[:-1]
  return shape, int(img.get_data_dtype().itemsize), np.asarray(img.affine, np.float64)


def header(path: str) -> nib.Nifti1Header | None:
  """The NIfTI header of ``path`` (only the header is read), or None for other formats."""
  if path.endswith(itk.SUFFIXES):
    return None
  return nib.load(path).header


def save(path: str, data: np.ndarray, affine: np.ndarray, description: str = '',
         like: nib.Nifti1Header | None = None) -> None:
  """Writes ``data`` with ``affine`` atomically: a temporary file in the same folder is renamed onto
  ``path``, so an interrupted write never leaves a half-written file under the final name.

  With ``like`` (the header of the input ``data`` lies on, whose affine is ``affine``), the output
  keeps its spatial fields exactly: qform and sform with their codes, pixdim, xyzt units, and NIfTI-2
  stays NIfTI-2; intensity fields (dtype, scaling, cal_min/max, intent) are those of ``data``.
  """
  data = np.asarray(data)
  if like is not None:
    cls = nib.Nifti2Image if isinstance(like, nib.Nifti2Header) else nib.Nifti1Image
    img = cls(data, None, header=like.copy())
    img.header.set_data_dtype(data.dtype)
    img.header.set_slope_inter(None, None)
    img.header.set_intent('none')
    img.header['cal_min'] = img.header['cal_max'] = 0
    img.header['aux_file'] = b''
    if not np.allclose(img.header.get_best_affine(), affine, atol=1e-4):
      raise ValueError(f'{path}: the header given does not hold the affine given')
  else:
    img = nib.Nifti1Image(data, np.asarray(affine, np.float64))
    img.header.set_qform(affine, code=1)
    img.header.set_sform(affine, code=1)
  img.header['descrip'] = description.encode()[:79]
  with files.atomic_path(path) as tmp:
    nib.save(img, tmp)
