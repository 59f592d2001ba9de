"""The model's grid: the voxel spacing a run trains on, recorded beside its checkpoints.

``WORKDIR/grid.json`` holds ``spacing_mm`` (canonical axes), how it was chosen, the spline order of
the images' resampling and the intensity normalisation. Training writes it once (``data.target_spacing``,
or by default the per-axis median of the training cases' spacings, nnU-Net's choice) and every
case is then read on that grid (`pipeline.load_case` resamples what differs by more than
`resample.TOLERANCE`); evaluation and prediction read it back, so a case at any spacing is seen at
the scale the model learnt. Workdirs trained before the record existed hold none: their cases are
read at their own spacing, as then.
"""

from __future__ import annotations

import dataclasses
import json
import os

from absl import logging
import ml_collections

from rsnet_jax.data import layouts
from rsnet_jax.data import nifti
from rsnet_jax.data import orientation
from rsnet_jax.data import pipeline
from rsnet_jax.data import resample
from rsnet_jax.errors import UserError
from rsnet_jax.runtime import files
from rsnet_jax.runtime import parallel

GRID_FILE = 'grid.json'
RESAMPLE_MODES = ('auto', 'never')


def case_spacing(path: str) -> tuple[float, float, float]:
  """A file's voxel spacing (mm) along the canonical axes, from its header where it has one."""
  peeked = nifti.peek(path)
  affine = peeked[2] if peeked is not None else nifti.load(path)[1]
  return orientation.spacing(affine)


def read(workdir: str) -> dict | None:
  """``WORKDIR/grid.json`` as written by `record`, or None when the run has none."""
  path = os.path.join(workdir, GRID_FILE)
  if not os.path.exists(path):
    return None
  with open(path) as f:
    return json.load(f)


def record(config: ml_collections.ConfigDict, workdir: str, task: pipeline.Task,
           train_cases: list[layouts.CaseFiles]) -> pipeline.Task:
  """``task`` on the training grid, written to ``WORKDIR/grid.json`` on the first run (a resumed
  run reads it back: its cases stay on the grid its checkpoints learnt)."""
  saved = read(workdir)
  if saved is None:
    spacings = [case_spacing(case.path(task.inputs[0])) for case in train_cases]
    if task.spacing:
      spacing, source = tuple(float(s) for s in task.spacing), 'data.target_spacing'
    else:
      spacing = resample.median_spacing(spacings)
      source = f'median of the {len(train_cases)} training cases'
    differ = sum(resample.differs(s, spacing) for s in spacings)
    if differ:
      logging.info('%d of %d training cases are resampled to %s mm (%s)', differ, len(spacings),
                   spacing, source)
    saved = {'spacing_mm': list(spacing), 'source': source, 'resample_order': task.resample_order,
             'normalization': task.normalization}
    if parallel.is_primary():
      files.write_json(os.path.join(workdir, GRID_FILE), saved)
  return dataclasses.replace(task, spacing=tuple(saved['spacing_mm']),
                             resample_order=int(saved['resample_order']))


def on_model_grid(config: ml_collections.ConfigDict, workdir: str,
                  task: pipeline.Task) -> pipeline.Task:
  """``task`` reading cases on the grid the model in ``workdir`` learnt (evaluate, predict):
  ``predict.resample='never'``, or a workdir without `GRID_FILE`, reads each case at its own
  spacing (the latter said once in the log)."""
  mode = config.predict.get('resample', 'auto')
  if mode not in RESAMPLE_MODES:
    raise UserError(f'predict.resample must be one of {RESAMPLE_MODES}, got {mode!r}')
  saved = read(workdir)
  if mode == 'never':
    return dataclasses.replace(task, spacing=None)
  if saved is None:
    logging.warning('%s has no %s (trained before rsnet_jax recorded the training grid): each case '
                    'is read at its own voxel spacing', workdir, GRID_FILE)
    return dataclasses.replace(task, spacing=None)
  if saved.get('normalization', task.normalization) != task.normalization:
    raise UserError(f'{os.path.join(workdir, GRID_FILE)}: the model was trained with '
                    f'data.normalization={saved["normalization"]!r}, the config says '
                    f'{task.normalization!r}')
  return dataclasses.replace(task, spacing=tuple(saved['spacing_mm']),
                             resample_order=int(config.data.get('resample_order',
                                                                saved['resample_order'])))


def output_bytes_per_voxel(task: pipeline.Task, num_classes: int) -> int:
  """Bytes per voxel of the case's own grid that `predict` may hold writing its outputs there: the
  class probabilities (float32) and as much again while they are resampled, their argmax (int64)
  and labels, the synthesis variance, and the volume being written with its compressed copy's
  buffer. A 384^3 case with 4 classes and MC dropout measured 48 (2026-12-03; this says 56)."""
  segmentation = 8 * num_classes + 12 if task.variant != 'rnet' else 0
  synthesis = 4 if task.variant != 'snet' else 0
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
  what = (f'{len(peeks)} volumes of {tuple(shape)}: {sum(voxels(s) * b for s, b, _ in peeks) / gib:.2f}'
          f' GiB as stored, {len(peeks) * voxels(shape) * 4 / gib:.2f} GiB as float32')
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
  (`memory.budget`), before any voxel is read."""
  fit, problems = [], []
  have, source = budget
  for case in cases:
    need = case_memory(case, keys, spacing, output_bytes)
    if need is not None and need[0] > have:
      problems.append(f'{case.path(keys[0])}: this case needs ~{need[0] / 2**30:.1f} GiB '
                      f'({need[1]}), more than the {have / 2**30:.1f} GiB budget ({source}); '
                      'set memory_budget_gib if the machine has more')
    else:
      fit.append(case)
  return fit, problems
