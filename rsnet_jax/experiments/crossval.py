"""``crossval`` (Table I, the BraTS 2015 protocol): ``experiment.folds`` folds, each with
``experiment.test_cases`` test and ``experiment.val_cases`` validation cases (the paper: 5 folds of
6 / 6 / 42 of the 54 LGG cases); per fold and target an RS-Net from ``data.inputs`` (T1); PSNR
(eq. 6) and SSIM (eq. 5, and windowed) over the brain of each fold's test cases. Writes
``table1.md``, ``crossval.json``, ``crossval.png``.
"""

from __future__ import annotations

import os

import ml_collections
import numpy as np

from rsnet_jax.data import pipeline
from rsnet_jax.errors import UserError
from rsnet_jax.evaluation import metrics
from rsnet_jax.evaluation import report
from rsnet_jax.experiments import common
from rsnet_jax.runtime import files

def folds(cases: list, num_folds: int, test_cases: int, val_cases: int,
          seed: int) -> list[dict[str, list]]:
  """Cross-validation folds of a seeded permutation: fold ``f`` tests cases ``f * test_cases`` on,
  validates on the next ``val_cases`` (wrapping around) and trains on the rest."""
  n = len(cases)
  if num_folds * test_cases > n or n - test_cases - val_cases < 1:
    raise UserError(f'{n} cases cannot give {num_folds} folds of {test_cases} test and {val_cases} '
                    'validation cases with >= 1 training case')
  perm = np.random.default_rng(seed).permutation(n)
  out = []
  for f in range(num_folds):
    test = [int(i) for i in perm[f * test_cases:(f + 1) * test_cases]]
    val = [int(perm[((f + 1) * test_cases + j) % n]) for j in range(val_cases)]
    pick = lambda idx: sorted((cases[i] for i in idx), key=lambda c: c.case_id)
    out.append({'test': pick(test), 'val': pick(val),
                'train': pick(i for i in range(n) if i not in set(test) | set(val))})
  return out


def run(config: ml_collections.ConfigDict, workdir: str) -> dict:
  """Table I; returns ``{target: {metric: {'mean', 'std'}}}`` over all folds' test cases."""
  e = config.experiment
  first = common.model_config(config, config.model.variant, e.targets[0], config.data.inputs)
  cases = pipeline.dataset_cases(first, workdir, pipeline.Task.from_config(first))
  per_case = {t: {} for t in e.targets}
  for f, split in enumerate(folds(cases, e.folds, e.test_cases, e.val_cases,
                                  config.data.split_seed)):
    for t in e.targets:
      model = common.Model(common.model_config(config, config.model.variant, t, config.data.inputs),
                           os.path.join(workdir, f'fold{f}_{t}'), split)
      for case in split['test']:
        example, _ = model.load(case)
        brain = example['brain'] > 0
        real, synth = example['target'][..., 0], model(example)['synthesis'][..., 0]
        per_case[t][case.case_id] = {
            'fold': f, 'psnr_brain': metrics.psnr(real, synth, brain),
            'ssim_brain': metrics.ssim_global(real, synth, brain),
            'ssim_windowed_brain': metrics.ssim_windowed(real, synth, brain)}
  summary = {t: {k: dict(zip(('mean', 'std'), report.mean_std([r[k] for r in rows.values()])))
                 for k in ('psnr_brain', 'ssim_brain', 'ssim_windowed_brain')}
             for t, rows in per_case.items()}
  files.write_json(os.path.join(workdir, 'crossval.json'),
                   {'summary': summary, 'per_case': per_case})
  inputs = ','.join(common.NAMES[m] for m in pipeline.Task.from_config(first).inputs)
  lines = [f'{config.model.variant} synthesis from {inputs}, {e.folds}-fold cross-validation '
           f'({e.test_cases} test / {e.val_cases} validation cases per fold), over the brain, mean '
           '+- std over all test cases.', '',
           '| target | SSIM (eq. 5) | SSIM (windowed) | PSNR (dB) |', '|---|---|---|---|']
  for t, s in summary.items():
    lines.append(f'| {common.NAMES[t]} | '
                 f'{s["ssim_brain"]["mean"]:.3f} +- {s["ssim_brain"]["std"]:.3f} | '
                 f'{s["ssim_windowed_brain"]["mean"]:.3f} +- {s["ssim_windowed_brain"]["std"]:.3f}'
                 f' | {s["psnr_brain"]["mean"]:.2f} +- {s["psnr_brain"]["std"]:.2f} |')
  files.write_text(os.path.join(workdir, 'table1.md'), '\n'.join(lines) + '\n')
  report.grouped_bars({common.NAMES[t]: s for t, s in summary.items()},
                      ['ssim_brain', 'ssim_windowed_brain'], ['SSIM (eq. 5)', 'SSIM (windowed)'],
                      os.path.join(workdir, 'crossval.png'), 'synthesis quality per target')
  return summary
