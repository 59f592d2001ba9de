"""Per-case evaluation: PSNR/SSIM (eq. 5 and windowed) of the synthesis (brain, tumour), BraTS Dice
and HD95 in mm (WT/TC/ET)."""

from __future__ import annotations

import dataclasses
import functools
from typing import Callable

import jax
import ml_collections
import numpy as np
import tqdm

from rsnet_jax.data import anyseq
from rsnet_jax.data import layouts
from rsnet_jax.data import orientation
from rsnet_jax.data import pipeline
from rsnet_jax.evaluation import metrics
from rsnet_jax.evaluation import report
from rsnet_jax.inference import forward_pass
from rsnet_jax.inference import predict
from rsnet_jax.runtime import compile_options


def score(example: dict[str, np.ndarray], out: dict[str, np.ndarray],
          spacing: tuple[float, ...] | None = None) -> dict[str, float]:
  """One case's figures: PSNR/SSIM of ``out['synthesis'] [X, Y, Z, 1]`` against
  ``example['target']`` over the brain and the tumour, Dice WT/TC/ET of the argmax of
  ``out['probabilities'] [X, Y, Z, C]`` (0 outside ``example['valid']``) and, given the voxel
  ``spacing`` (mm), HD95 and the windowed SSIMs (the costly ones, left out of training's
  validation)."""
  brain = example['brain'] > 0
  row = {}
  if 'synthesis' in out and 'target' in example:
    truth, synthesis = example['target'][..., 0], out['synthesis'][..., 0]
    tumour = brain & (example['labels'] > 0) if 'labels' in example else np.zeros_like(brain)
    if spacing is None:
      row.update({'psnr_brain': metrics.psnr(truth, synthesis, brain),
                  'ssim_brain': metrics.ssim_global(truth, synthesis, brain),
                  'psnr_tumour': metrics.psnr(truth, synthesis, tumour)})
    else:
      row.update(metrics.synthesis_metrics(truth, synthesis, brain, tumour))
  if 'probabilities' in out and 'labels' in example:
    pred = np.where(example['valid'] > 0, np.argmax(out['probabilities'], -1), 0)
    row.update({f'dice_{k}': v for k, v in metrics.brats_dice(example['labels'], pred).items()})
    if spacing is not None:
      row.update({f'hd95_{k}': v for k, v in metrics.brats_hd95(
          example['labels'], pred, spacing).items()})
  return row


def evaluate_cases(config: ml_collections.ConfigDict, params, apply_fn, task: pipeline.Task,
                   cases: list[layouts.CaseFiles], out_dir: str, name: str,
                   missing: str | None = None) -> dict:
  """Deterministic predictions of ``cases`` scored against their files; writes ``NAME.json`` and
  ``NAME.md`` into ``out_dir`` and returns the summary ``{metric: {'mean', 'std'}}``. An ``anyseq``
  model synthesizes ``missing`` for every case."""
  if (task.variant == 'anyseq') != (missing is not None):
    raise ValueError('give the missing sequence for an anyseq model, and only for it')
  fn = jax.jit(functools.partial(forward_pass.forward, apply_fn=apply_fn, num_mc_samples=0,
                                 members=forward_pass.ensemble_size(config)),
               compiler_options=compile_options.for_backend())
  window = predict.crop_window(task)
  return score_cases(lambda example: predict.predict_example(fn, params, example, window=window),
                     task, cases, out_dir, name, missing)


def score_cases(predictor: Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]],
                task: pipeline.Task, cases: list[layouts.CaseFiles], out_dir: str, name: str,
                missing: str | None = None) -> dict:
  """`evaluate_cases` for any model: ``predictor(example)`` gives one example's outputs (no batch
  axis: ``synthesis [D, H, W, 1]``, ``probabilities [D, H, W, C]``, either or both)."""
  per_case = {}
  for case in tqdm.tqdm(cases, desc=f'evaluate {name}', unit='case'):
    example, meta = anyseq.load_case(case, task, missing, whole_brain=True)
    out = predictor(example)
    if meta.resampled:  # scored on the ground truth's own grid
      example, own = anyseq.load_case(
          case, dataclasses.replace(task, spacing=None, crop_shape=None), missing)
      out = predict.onto_reference(out, meta, own, example['brain'].shape)
    per_case[case.case_id] = score(example, out, orientation.spacing(meta.affine))
  return report.write_tables(per_case, out_dir, name)
