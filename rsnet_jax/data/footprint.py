"""What reading and predicting a case will hold in memory, from its NIfTI headers alone: a case
too large for the budget (`memory.host_budget`) is refused before a voxel of it is read.

The figures follow what `pipeline.load_case` holds (one file at a time as stored, as float32 and as
spline coefficients; the brain mask; every file on the network grid, float32, normalised and
windowed) and what `predict` holds writing outputs on the case's own grid.
"""

from __future__ import annotations

from rsnet_jax.data import layouts
from rsnet_jax.data import nifti
from rsnet_jax.data import orientation
from rsnet_jax.data import resample


def output_bytes_per_voxel(segments: bool, synthesizes: bool, num_classes: int) -> int:
  """Bytes per voxel of the case's own grid that `predict` may hold writing its outputs there: the
  class probabilities (float32) and as much again while they are resampled, their argmax (int64)
  and labels, the synthesis variance, and the volume being written with its compressed copy's
  buffer. A 384^3 case with 4 classes and MC dropout measured 48 (2026-12-03; this says 56)."""
  segmentation = 8 * num_classes + 12 if segments else 0
  synthesis = 4 if synthesizes else 0
  return segmentation + synthesis + 8


def case_memory(case: layouts.CaseFiles, keys: tuple[str, ...], spacing: tuple[float, ...] | None,
                output_bytes: int = 0) -> tuple[int, str] | None:
  """``(bytes, what)``: the peak `pipeline.load_case` holds reading ``keys`` of ``case`` onto
  ``spacing``, plus ``output_bytes`` per voxel of the case's grid for its outputs
  (`output_bytes_per_voxel`), from the headers alone (None when a file has no NIfTI header): one
  file at a time as stored, as float32 and as spline coefficients; the brain mask; every file on
  the network grid, float32, normalised and windowed."""
  peeks = [nifti.peek(case.path(k)) for k in keys if k in case.files]
  if not peeks or any(p is None for p in peeks) or any(len(p[0]) != 3 for p in peeks):
    return None
  shape, _, affine = peeks[0]
  voxels = lambda s: int(s[0]) * int(s[1]) * int(s[2])
  own = orientation.spacing(affine)
  grid = resample.shape_at(shape, own, spacing) if resample.differs(own, spacing) else shape
  one_file = max(voxels(s) * (itemsize + 8) for s, itemsize, _ in peeks)
  reading = one_file + voxels(shape) + len(peeks) * voxels(grid) * 12
  gib = 2.0**30
  stored = sum(voxels(s) * itemsize for s, itemsize, _ in peeks)
  what = (f'{len(peeks)} volumes of {tuple(shape)}: {stored / gib:.2f} GiB as stored, '
          f'{len(peeks) * voxels(shape) * 4 / gib:.2f} GiB as float32')
  if grid != shape:
    what += f', {tuple(grid)} on the model\'s grid'
  if output_bytes:
    what += f', {voxels(shape) * output_bytes / gib:.2f} GiB of outputs on the case\'s grid'
  writing = voxels(shape) * (output_bytes + 1) if output_bytes else 0  # + the brain mask
  return max(reading, writing), what


def check_memory(cases: list[layouts.CaseFiles], keys: tuple[str, ...],
                 spacing: tuple[float, ...] | None, budget: tuple[int, str],
                 output_bytes: int = 0) -> tuple[list[layouts.CaseFiles], list[str]]:
  """``(cases that fit, one line per case that does not)``: `case_memory` against ``budget``
  (`memory.host_budget`), before any voxel is read."""
  fit, problems = [], []
  have, source = budget
  for case in cases:
    need = case_memory(case, keys, spacing, output_bytes)
    if need is not None and need[0] > have:
      problems.append(f'{case.path(keys[0])}: this case needs ~{need[0] / 2**30:.1f} GiB '
                      f'({need[1]}), more than the {have / 2**30:.1f} GiB budget ({source})')
    else:
      fit.append(case)
  return fit, problems
