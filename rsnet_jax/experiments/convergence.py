"""``convergence`` (ours, not a table of the paper): an RS-Net, an R-Net and an S-Net
(``experiment.variants``) for ``data.target``, trained on the same split with validation every
``train.eval_every_epochs``; their curves (train loss, validation losses, Dice WT/TC/ET,
PSNR/SSIM) read back from each model's TensorBoard events into ``learning_curves.png``, and their
held-out figures into ``convergence.md`` / ``convergence.json``, with the paper's two claims side
by side (the RS-Net head's Dice against the S-Net's; the RS-Net synthesis in the tumour against
the R-Net's).
"""

from __future__ import annotations

import os
import time

import ml_collections

from rsnet_jax.data import orientation
from rsnet_jax.data import pipeline
from rsnet_jax.errors import UserError
from rsnet_jax.evaluation import evaluate
from rsnet_jax.evaluation import report
from rsnet_jax.experiments import common
from rsnet_jax.runtime import files
from rsnet_jax.training import summary_writer

CURVES = (('train_loss', 'train loss (eq. 4, as weighted in training)'),
          ('val_wcce', 'validation CCE (unweighted)'), ('val_wmse', 'validation MSE (unweighted)'),
          ('val_dice_WT', 'validation Dice WT'), ('val_dice_TC', 'validation Dice TC'),
          ('val_dice_ET', 'validation Dice ET'), ('val_psnr_brain', 'validation PSNR, brain (dB)'),
          ('val_psnr_tumour', 'validation PSNR, tumour (dB)'),
          ('val_ssim_brain', 'validation SSIM (eq. 5), brain'))
FINAL_COLUMNS = (('dice_WT', 'Dice WT'), ('dice_TC', 'Dice TC'), ('dice_ET', 'Dice ET'),
                 ('psnr_brain', 'PSNR brain (dB)'), ('psnr_tumour', 'PSNR tumour (dB)'),
                 ('ssim_brain', 'SSIM brain'))


def _claim(summary: dict, a: str, b: str, metric: str, text: str) -> str:
  """One line comparing ``summary[a][metric]`` with ``summary[b][metric]`` (means +- std)."""
  if a not in summary or b not in summary:
    return f'- {text}: needs {common.VARIANT_NAMES[a]} and {common.VARIANT_NAMES[b]}.'
  (ma, sa), (mb, sb) = ((summary[m][metric]['mean'], summary[m][metric]['std']) for m in (a, b))
  return (f'- {text}: {common.VARIANT_NAMES[a]} {ma:.3f} +- {sa:.3f}, '
          f'{common.VARIANT_NAMES[b]} {mb:.3f} +- '
          f'{sb:.3f} (difference {ma - mb:+.3f}).')


def run(config: ml_collections.ConfigDict, workdir: str) -> dict:
  """The convergence study; returns ``{variant: {metric: {'mean', 'std'}}}`` on the held-out
  split."""
  target, variants = config.data.target, tuple(config.experiment.variants)
  unknown = set(variants) - set(common.VARIANT_NAMES)
  if unknown:
    raise UserError(f'experiment.variants: unknown {sorted(unknown)}; use '
                    f'{sorted(common.VARIANT_NAMES)}')
  first = common.model_config(config, variants[0], target)
  splits = pipeline.dataset_splits(first, workdir, pipeline.Task.from_config(first))
  split_name, cases = common.held_out(splits)
  summary, curves, seconds = {}, {}, {}
  for variant in variants:
    model_dir = os.path.join(workdir, variant)
    start = time.perf_counter()
    model = common.Model(common.model_config(config, variant, target), model_dir, splits)
    seconds[variant] = time.perf_counter() - start
    per_case = {}
    for case in cases:
      example, meta = model.load(case)
      per_case[case.case_id] = evaluate.score(example, model(example),
                                              orientation.spacing(meta.affine))
    summary[variant] = report.write_tables(per_case, os.path.join(model_dir, 'evaluation'),
                                           split_name)
    curves[common.VARIANT_NAMES[variant]] = summary_writer.read_scalars(model_dir)
  n = len(cases)
  report.learning_curves(curves, list(CURVES), os.path.join(workdir, 'learning_curves.png'),
                         f'{common.NAMES[target]}: validation on {len(splits["val"])} cases, '
                         f'{len(splits["train"])} training cases')
  lines = [f'Held-out {split_name} split ({n} cases), best checkpoint by validation loss, mean +- '
           f'std; target {common.NAMES[target]}.', '',
           '| model | ' + ' | '.join(label for _, label in FINAL_COLUMNS) + ' | train + eval (s) |',
           '|---' * (len(FINAL_COLUMNS) + 2) + '|']
  for variant, s in summary.items():
    cells = [f'{s[k]["mean"]:.3f} +- {s[k]["std"]:.3f}' if k in s else '-'
             for k, _ in FINAL_COLUMNS]
    lines.append(f'| {common.VARIANT_NAMES[variant]} | ' + ' | '.join(cells) +
                 f' | {seconds[variant]:.0f} |')
  lines += ['', 'The paper\'s claims on these cases:',
            _claim(summary, 'rsnet', 'snet', 'dice_WT',
                   "the RS-Net's segmentation head reaches the S-Net's Dice (WT)"),
            _claim(summary, 'rsnet', 'snet', 'dice_TC', '... (TC)'),
            _claim(summary, 'rsnet', 'snet', 'dice_ET', '... (ET)'),
            _claim(summary, 'rsnet', 'rnet', 'psnr_tumour',
                   'joint training improves the synthesis in the tumour (PSNR, dB)'),
            _claim(summary, 'rsnet', 'rnet', 'psnr_brain', '... and over the brain (PSNR, dB)')]
  files.write_text(os.path.join(workdir, 'convergence.md'), '\n'.join(lines) + '\n')
  files.write_json(os.path.join(workdir, 'convergence.json'), {
      'split': split_name, 'cases': n, 'summary': summary, 'seconds': seconds, 'curves': curves})
  return summary
