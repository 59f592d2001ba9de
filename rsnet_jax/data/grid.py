"""The model's grid: the voxel spacing a run trains on, recorded beside its checkpoints.

``WORKDIR/grid.json`` holds ``spacing_mm`` (canonical axes), how it was chosen, the spline order of
the images' resampling and the intensity normalisation. Training writes it once
(``data.target_spacing``, or by default the per-axis median of the training cases' spacings,
nnU-Net's choice) and every case is then read on that grid (`pipeline.load_case` resamples what
differs by more than `resample.TOLERANCE`); evaluation and prediction read it back, so a case at
any spacing is seen at the scale the model learnt. Workdirs trained before the record existed hold
none: their cases are read at their own spacing, as then.
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
  if mode == 'never':
    return dataclasses.replace(task, spacing=None)
  saved = read(workdir)
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
