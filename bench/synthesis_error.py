"""Where a trained generalization model's synthesis error lies: a per-case offset, or the image.

For each held-out case of a finished `configs/experiments/generalization.py` run (both families),
the brain PSNR of the synthesis above the baseline that predicts the brain's mean target intensity
(as the run scores it), and the same after the prediction is corrected by oracles that know the
case's truth:

- ``+ offset``: the prediction plus the constant that fits the truth best (knows the case's mean);
- ``+ affine``: the best gain and offset (knows its mean and scale).

A large gain from ``+ offset`` says the error is mostly one number per case, which no model can read
from the inputs if the normalisation puts it there (``brats2017`` rescales each volume by its own
extreme voxels); ``zscore`` fixes the brain's mean at 0.

  python -m rsnet_jax.main --config configs/experiments/generalization.py --workdir runs/gen
  python bench/synthesis_error.py --workdir runs/gen                 # its augmented model
  python bench/synthesis_error.py --workdir runs/gen/seed_2 --model no_augmentation
"""

import argparse
import json
import os
import sys

import numpy as np


def offset_and_affine(truth: np.ndarray, prediction: np.ndarray) -> tuple[float, float, float]:
  """Brain voxels ``[N]`` -> (mean of truth - prediction, MSE after the best offset, MSE after the
  best gain and offset)."""
  residual = truth - prediction
  design = np.stack([prediction, np.ones_like(prediction)], 1)
  fitted = design @ np.linalg.lstsq(design, truth, rcond=None)[0]
  return float(residual.mean()), float(residual.var()), float(np.mean((truth - fitted)**2))


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
  parser.add_argument('--workdir', required=True, help='a finished generalization run (one seed)')
  parser.add_argument('--model', default='augmentation',
                      choices=('augmentation', 'no_augmentation'))
  parser.add_argument('--ood-dir', default='', help="the run's experiment.ood_data_dir, if set")
  args = parser.parse_args()
  sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
  import ml_collections  # pylint: disable=g-import-not-at-top
  from rsnet_jax.data import layouts  # pylint: disable=g-import-not-at-top
  from rsnet_jax.data import pipeline  # pylint: disable=g-import-not-at-top
  from rsnet_jax.experiments import common  # pylint: disable=g-import-not-at-top

  with open(os.path.join(args.workdir, args.model, 'config.json')) as f:
    config = ml_collections.ConfigDict(json.load(f))
  task = pipeline.Task.from_config(config)
  splits = pipeline.dataset_splits(config, args.workdir, task)
  model = common.Model(config, os.path.join(args.workdir, args.model), splits)
  split_name, home = common.held_out(splits)
  ood = layouts.discover(args.ood_dir or os.path.join(args.workdir, 'relaxometry'),
                         layouts.from_config(config.data))
  print(f'{args.workdir}/{args.model} ({config.data.normalization}): brain PSNR - mean (dB)\n')
  print('| cases | case | PSNR - mean | + offset | + affine | offset (truth - prediction) |')
  print('|---|---|---|---|---|---|')
  for family, cases in ((f'same family ({split_name})', home), ('independent family', ood)):
    rows = []
    for case in cases:
      example, _ = model.load(case)
      out = model(example)
      brain = example['brain'] > 0
      truth, prediction = example['target'][..., 0][brain], out['synthesis'][..., 0][brain]
      variance = truth.var()  # the MSE of predicting the brain's mean
      offset, mse_offset, mse_affine = offset_and_affine(truth, prediction)
      mse = np.mean((truth - prediction)**2)
      rows.append([10 * np.log10(variance / m) for m in (mse, mse_offset, mse_affine)] + [offset])
      print(f'| {family} | {case.case_id} | ' + ' | '.join(f'{v:+.2f}' for v in rows[-1]) + ' |')
    mean = np.mean(rows, 0)
    print(f'| {family} | **mean** | ' + ' | '.join(f'**{v:+.2f}**' for v in mean[:3])
          + f' | {np.mean(np.abs(np.array(rows)[:, 3])):.3f} (mean abs) |')


if __name__ == '__main__':
  main()
