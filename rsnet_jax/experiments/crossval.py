"""``crossval`` (Table I, the BraTS 2015 protocol): ``experiment.folds`` folds, each with
``experiment.test_cases`` test and ``experiment.val_cases`` validation cases (the paper: 5 folds of
6 / 6 / 42 of the 54 LGG cases); per fold and target a model of each of ``experiment.methods``
(RS-Net and Table I's baselines, `rsnet_jax.baselines`) from ``data.inputs`` (T1); PSNR (eq. 6)
and SSIM (eq. 5, and windowed) over the brain of each fold's test cases. Writes ``table1.md``
(laid out as the paper's), ``crossval.json`` (per case, per method), ``crossval.png`` (per-case
PSNR), ``table1_montage.png`` (one case, every method) and ``table1_curves.png`` (the networks'
validation PSNR over steps against the baselines' on the same validation cases).
"""

from __future__ import annotations

import json
import os
import time

import ml_collections
import numpy as np

from rsnet_jax import baselines
from rsnet_jax.data import pipeline
from rsnet_jax.errors import UserError
from rsnet_jax.evaluation import metrics
from rsnet_jax.evaluation import report
from rsnet_jax.experiments import common
from rsnet_jax.runtime import files
from rsnet_jax.training import summary_writer

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


# Table I as published (the paper reports the other methods as listed in [10]):
# {target: {method: (SSIM mean, std, PSNR mean, std)}}
PAPER = {'t2': {'replica': (0.901, 0.01, 28.62, 1.69), 'lsdn': (0.909, 0.02, 30.12, 1.62),
                'cnn2d': (0.929, 0.17, 30.96, 1.85), 'rsnet': (0.934, 0.02, 31.13, 1.78)},
         'flair': {'replica': (0.870, 0.01, 28.32, 1.38), 'lsdn': (0.887, 0.01, 29.68, 1.56),
                   'cnn2d': (0.897, 0.01, 30.32, 1.61), 'rsnet': (0.900, 0.01, 30.88, 1.84)}}
METRICS = (('ssim_brain', 'SSIM (eq. 5)', 3), ('ssim_windowed_brain', 'SSIM (windowed)', 3),
           ('psnr_brain', 'PSNR (dB)', 2))


def methods(config: ml_collections.ConfigDict) -> tuple[str, ...]:
  """``experiment.methods`` (Table I's columns), or the config's own model alone."""
  return tuple(config.experiment.get('methods', ())) or (config.model.variant,)


def model_dir(workdir: str, fold: int, target: str, method: str, own: str) -> str:
  """Where fold ``fold``'s model of ``method`` for ``target`` lives; the config's own variant keeps
  the folder it always had."""
  return os.path.join(workdir, f'fold{fold}_{target}' + ('' if method == own else f'_{method}'))


def run(config: ml_collections.ConfigDict, workdir: str) -> dict:
  """Table I; returns ``{target: {method: {metric: {'mean', 'std'}}}}`` over all folds' test
  cases."""
  e = config.experiment
  own, names = config.model.variant, methods(config)
  first = common.model_config(config, own, e.targets[0], config.data.inputs)
  cases = pipeline.dataset_cases(first, workdir, pipeline.Task.from_config(first))
  per_case = {t: {m: {} for m in names} for t in e.targets}
  seconds = {t: {m: 0.0 for m in names} for t in e.targets}  # all folds' fits, as measured
  existed = {(t, m): all(os.path.isdir(model_dir(workdir, f, t, m, own)) for f in range(e.folds))
             for t in e.targets for m in names}  # a rerun keeps the times the fits took
  record_path = os.path.join(workdir, 'crossval.json')
  before = {}
  if os.path.exists(record_path):
    with open(record_path) as f:
      before = json.load(f).get('seconds', {})
  val_psnr = {t: {m: [] for m in names if m in baselines.VARIANTS} for t in e.targets}
  shown = {}  # the montage's case: fold 0's first test case
  for f, split in enumerate(folds(cases, e.folds, e.test_cases, e.val_cases,
                                  config.data.split_seed)):
    for t in e.targets:
      for m in names:
        start = time.time()
        model = common.protocol_model(common.model_config(config, m, t, config.data.inputs),
                                      model_dir(workdir, f, t, m, own), split)
        seconds[t][m] += time.time() - start
        if m in baselines.VARIANTS:  # its level in the validation curves' figure
          for case in split['val']:
            _, real, synth, brain = _synthesized(model, case)
            val_psnr[t][m].append(metrics.psnr(real, synth, brain))
        for case in split['test']:
          example, real, synth, brain = _synthesized(model, case)
          per_case[t][m][case.case_id] = {
              'fold': f, 'psnr_brain': metrics.psnr(real, synth, brain),
              'ssim_brain': metrics.ssim_global(real, synth, brain),
              'ssim_windowed_brain': metrics.ssim_windowed(real, synth, brain)}
          if f == 0 and case is split['test'][0]:
            shown.setdefault('inputs', example['inputs'])
            shown.setdefault('labels', example.get('labels'))
            shown[t, 'real'], shown[t, m] = real, synth
  for (t, m), reused in existed.items():
    if reused and isinstance(before.get(t, {}).get(m), float):
      seconds[t][m] = before[t][m]
  summary = {t: {m: {k: dict(zip(('mean', 'std'), report.mean_std([r[k] for r in rows.values()])))
                     for k, _, _ in METRICS} for m, rows in by_method.items()}
             for t, by_method in per_case.items()}
  files.write_json(record_path,
                   {'summary': summary, 'per_case': per_case, 'seconds': seconds,
                    'val_psnr_brain': val_psnr})
  task = pipeline.Task.from_config(first)
  files.write_text(os.path.join(workdir, 'table1.md'),
                   table_markdown(summary, seconds, config, task, len(cases)))
  report.per_case_points(
      {f'{_inputs(task)} -> {common.NAMES[t]}': {common.VARIANT_NAMES[m]: [
          r['psnr_brain'] for r in per_case[t][m].values()] for m in names} for t in e.targets},
      'brain PSNR (dB), per test case', os.path.join(workdir, 'crossval.png'),
      f'Table I: {e.folds}-fold cross-validation, {e.test_cases} test cases per fold')
  _montage(shown, task, e.targets, names, os.path.join(workdir, 'table1_montage.png'))
  networks = [m for m in names if m not in baselines.VARIANTS]
  if networks:
    report.curves_and_levels(
        {f'{_inputs(task)} -> {common.NAMES[t]}': (
            {common.VARIANT_NAMES[m]: _mean_curve([summary_writer.read_scalars(
                model_dir(workdir, f, t, m, own)).get('val_psnr_brain', [])
                                                   for f in range(e.folds)]) for m in networks},
            {common.VARIANT_NAMES[m]: float(np.mean(v)) for m, v in val_psnr[t].items()})
         for t in e.targets},
        'validation brain PSNR (dB)', os.path.join(workdir, 'table1_curves.png'),
        f'validation PSNR over steps, mean of {e.folds} folds\' {e.val_cases} validation cases '
        'each; dashed: the baselines on the same cases')
  return summary


def _synthesized(model: common.Model | common.Baseline, case
                 ) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray, np.ndarray]:
  """``(example, real [D, H, W], synthesized [D, H, W], brain [D, H, W] bool)`` of one case."""
  example, _ = model.load(case)
  return (example, example['target'][..., 0], model(example)['synthesis'][..., 0],
          example['brain'] > 0)


def _mean_curve(curves: list[list[tuple[int, float]]]) -> list[tuple[int, float]]:
  """``[(step, value)]`` averaged over the folds' curves at the steps every fold logged (each fold
  averages its own validation cases, as many per fold)."""
  steps = set.intersection(*(set(s for s, _ in c) for c in curves)) if curves else set()
  return [(s, float(np.mean([dict(c)[s] for c in curves]))) for s in sorted(steps)]


def _inputs(task: pipeline.Task) -> str:
  return ','.join(common.NAMES[m] for m in task.inputs)


def table_markdown(summary: dict, seconds: dict, config: ml_collections.ConfigDict,
                   task: pipeline.Task, num_cases: int) -> str:
  """Table I laid out as the paper's: a block per target, a column per method, our rows (the best
  in bold) and the paper's published figures under them."""
  e = config.experiment
  lines = [f'Synthesis from {_inputs(task)}: {e.folds}-fold cross-validation of {num_cases} cases '
           f'({e.test_cases} test / {e.val_cases} validation per fold), over the brain, mean +- '
           'std over all test cases; normalisation '
           f'`{config.data.normalization}`. "paper": Table I as published (BraTS 2015 LGG).', '']
  for t, by_method in summary.items():
    names = list(by_method)
    lines += [f'**{_inputs(task)} -> {common.NAMES[t]}**', '',
              '| | ' + ' | '.join(common.VARIANT_NAMES[m] for m in names) + ' |',
              '|---' * (len(names) + 1) + '|']
    for key, label, digits in METRICS:
      best = max(by_method[m][key]['mean'] for m in names)
      cells = []
      for m in names:
        s = by_method[m][key]
        cell = f'{s["mean"]:.{digits}f} +- {s["std"]:.{digits}f}'
        cells.append(f'**{cell}**' if s['mean'] == best and len(names) > 1 else cell)
      lines.append(f'| {label} | ' + ' | '.join(cells) + ' |')
    if t in PAPER and task.inputs == ('t1',):
      for j, label, digits in ((0, 'paper: SSIM', 3), (2, 'paper: PSNR (dB)', 2)):
        lines.append(f'| {label} | ' + ' | '.join(
            f'{PAPER[t][m][j]:.{digits}f} +- {PAPER[t][m][j + 1]:.2f}' if m in PAPER[t] else '-'
            for m in names) + ' |')
    lines.append('| fitting, s (all folds) | ' + ' | '.join(
        f'{seconds[t][m]:.0f}' for m in names) + ' |')
    lines.append('')
  return '\n'.join(lines)


def _montage(shown: dict, task: pipeline.Task, targets: tuple[str, ...], names: tuple[str, ...],
             path: str) -> None:
  """One case, one axial slice: the inputs and real targets, then a row per method (each target's
  synthesis and |error|)."""
  if not shown:
    return
  z = report.tumour_slice({'inputs': shown['inputs'], **(
      {'labels': shown['labels']} if shown['labels'] is not None else {})})
  rows = [('real', [(common.NAMES[m], shown['inputs'][..., z, i], 'gray')
                    for i, m in enumerate(task.inputs)] +
           [(common.NAMES[t], shown[t, 'real'][..., z], 'gray') for t in targets])]
  for m in names:
    panels = []
    for t in targets:
      panels += [(f'{common.NAMES[t]}', shown[t, m][..., z], 'gray'),
                 (f'|error| {common.NAMES[t]}', np.abs(shown[t, m] - shown[t, 'real'])[..., z],
                  'magma')]
    rows.append((common.VARIANT_NAMES[m], panels))
  report.image_grid(rows, path, 'Table I: one test case, each method\'s synthesis and error')
