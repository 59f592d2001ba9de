"""MetaImage (``.mha`` / ``.mhd``, as BraTS 2015 ships its volumes) through SimpleITK, an optional
extra: ``pip install 'rsnet_jax[mha]'``.

ITK stores positions in LPS millimetres (``origin + direction @ (spacing * index)``, index ``(x, y,
z)``); NIfTI affines are RAS. `read` returns the NIfTI-style affine of the same grid, so a ``.mha``
volume and its NIfTI conversion give the same ``(data [X, Y, Z], affine [4, 4])``.
"""

from __future__ import annotations

import numpy as np

from rsnet_jax.errors import UserError

SUFFIXES = ('.mha', '.mhd')
INSTALL = "pip install 'rsnet_jax[mha]'"
_LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])


def available() -> bool:
  try:
    import SimpleITK  # pylint: disable=g-import-not-at-top
  except ImportError:
    return False
  return bool(SimpleITK)


def _sitk(path: str):
  try:
    import SimpleITK as sitk  # pylint: disable=g-import-not-at-top
  except ImportError:
    raise UserError(f'{path}: reading .mha/.mhd files needs SimpleITK: {INSTALL}') from None
  return sitk


def read(path: str) -> tuple[np.ndarray, np.ndarray]:
  """``path`` -> ``(data [X, Y, Z(, T)] float32, affine [4, 4] RAS mm)``.

  Raises:
    UserError: naming ``path`` when SimpleITK is missing or the file is unreadable or not scalar.
  """
  sitk = _sitk(path)
  try:
    image = sitk.ReadImage(path)
  except RuntimeError as e:
    reason = ' '.join(str(e).split())[-200:]
    raise UserError(f'{path}: unreadable image ({reason})') from None
  if image.GetNumberOfComponentsPerPixel() != 1:
    raise UserError(f'{path}: expected one value per voxel, got '
                    f'{image.GetNumberOfComponentsPerPixel()}')
  data = sitk.GetArrayFromImage(image)  # [(T,) Z, Y, X]
  data = np.transpose(data, tuple(reversed(range(data.ndim)))).astype(np.float32)
  dim = image.GetDimension()
  n = min(dim, 3)
  direction = np.asarray(image.GetDirection(), np.float64).reshape(dim, dim)[:n, :n]
  lps = np.eye(4)
  lps[:n, :n] = direction * np.asarray(image.GetSpacing()[:n])
  lps[:n, 3] = image.GetOrigin()[:n]
  return data, _LPS_TO_RAS @ lps


def write(path: str, data: np.ndarray, affine: np.ndarray) -> None:
  """Writes ``data [X, Y, Z]`` on the grid of the RAS ``affine`` (axes without shear)."""
  sitk = _sitk(path)
  lps = _LPS_TO_RAS @ np.asarray(affine, np.float64)
  spacing = np.linalg.norm(lps[:3, :3], axis=0)
  image = sitk.GetImageFromArray(np.transpose(np.asarray(data), (2, 1, 0)))
  image.SetSpacing(spacing.tolist())
  image.SetOrigin(lps[:3, 3].tolist())
  image.SetDirection((lps[:3, :3] / spacing).ravel().tolist())
  sitk.WriteImage(image, path, True)
