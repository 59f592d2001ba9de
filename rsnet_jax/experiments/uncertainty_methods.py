"""Uncertainty methods side by side (ours, issue 31): MC dropout, a deep ensemble, test-time
augmentation and an ensemble with MC dropout, on the same held-out cases.

Trains one network (``single``) and one deep ensemble of ``experiment.ensemble_size`` members
(``ensemble``) on the same split, then runs `uncertainty_study.study_cases` once per method of
`METHODS` and writes into ``WORKDIR``: ``uncertainty_methods.md`` / ``.json`` (per method the
segmentation's Dice, QU-BraTS score per region, ECE and Brier score; the synthesis' PSNR, Spearman
of its error with the predicted spread, AUSE and the fraction of voxels within 1 and 2 predicted
std; the cost: training time, prediction time per case, XLA's memory plan of the prediction),
``qu_brats_curves.png``, ``sparsification_methods.png``, ``reliability_methods.png``, and each
method's own study in ``methods/<method>/``.
"""

from __future__ import annotations

import json
import os
import time

import jax
import ml_collections

from rsnet_jax.data import pipeline
from rsnet_jax.evaluation import report
from rsnet_jax.experiments import common
from rsnet_jax.experiments import uncertainty_study
from rsnet_jax.inference import tta
from rsnet_jax.runtime import files
from rsnet_jax.training import checkpoints
from rsnet_jax.training import train

# method: (model, MC samples per member: 'mc' = experiment.mc_samples, predict.tta)
METHODS = {
    'MC dropout': ('single', 'mc', 'none'),
    'deep ensemble': ('ensemble', 0, 'none'),
    'TTA': ('single', 0, 'tta'),
    'ensemble + MC dropout': ('ensemble', 'mc', 'none'),
}
# (key of the study's summary, label)
COLUMNS = (('dice_WT', 'Dice WT'), ('dice_TC', 'Dice TC'), ('dice_ET', 'Dice ET'),
           ('qu_WT_score', 'QU WT'), ('qu_TC_score', 'QU TC'), ('qu_ET_score', 'QU ET'),
           ('ece_brain', 'ECE'), ('brier_brain', 'Brier'), ('psnr_brain', 'PSNR (dB)'),
           ('spearman_var_sqerr', 'Spearman'), ('ause', 'AUSE'),
           ('within_1std', 'in 1 std'), ('within_2std', 'in 2 std'))


def _train(config: ml_collections.ConfigDict, workdir: str, splits: dict) -> tuple[object, float]:
  """Trains (or resumes) one model; returns its best state and the training's wall time (s),
  recorded in ``WORKDIR/training_time.json`` the first time (a rerun only restores)."""
  record = os.path.join(workdir, 'training_time.json')
  start = time.time()
  train.train_and_evaluate(config, workdir, splits)
  if not os.path.exists(record):
    files.write_json(record, {'seconds': time.time() - start})
  with open(record) as f:
    seconds = json.load(f)['seconds']
  task = pipeline.Task.from_config(config)
  state, _ = checkpoints.restore_params(workdir, config, train.abstract_train_state(config, task),
                                        'best')
  return state, seconds


def run(config: ml_collections.ConfigDict, workdir: str) -> dict:
  """Returns ``{method: {metric: {'mean', 'std'}}}`` (the cost under ``'cost'``)."""
  e = config.experiment
  first = common.model_config(config, config.model.variant, config.data.target)
  task = pipeline.Task.from_config(first)
  splits = pipeline.dataset_splits(first, workdir, task)
  split_name, cases = common.held_out(splits)
  models = {}
  for name, members in (('single', 1), ('ensemble', e.ensemble_size)):
    model_config = ml_collections.ConfigDict(first.to_dict())
    model_config.model.ensemble_size = members
    models[name] = (model_config, *_train(model_config, os.path.join(workdir, name), splits))
  results, overall = {}, {}
  for method, (model, samples, views) in METHODS.items():
    model_config, state, train_seconds = models[model]
    c = ml_collections.ConfigDict(model_config.to_dict())
    c.uncertainty.num_mc_samples = e.mc_samples if samples == 'mc' else samples
    c.predict.tta = e.tta if views == 'tta' else views
    out_dir = os.path.join(workdir, 'methods', method.replace(' ', '_').replace('+', 'and'))
    os.makedirs(out_dir, exist_ok=True)
    start = time.time()
    study = uncertainty_study.study_cases(c, state.params, state.apply_fn, task, cases, out_dir,
                                          split_name, jax.random.key(c.seed))
    results[method] = dict(study['summary'])
    results[method]['cost'] = {
        'training_s': train_seconds, 'predict_s_per_case': (time.time() - start) / len(cases),
        'xla_plan_gib': study['overall']['xla_plan_bytes'] / 2**30,
        'passes_per_case': (c.uncertainty.num_mc_samples or 1) * c.model.ensemble_size *
                           len(tta.views(c.predict.tta))}
    overall[method] = study['overall']
  figures = report.methods_figures(overall, workdir)
  _write_table(results, config, task, split_name, len(cases), len(splits['train']), workdir)
  files.write_json(os.path.join(workdir, 'uncertainty_methods.json'),
                   {'methods': results, 'figures': [os.path.basename(f) for f in figures]})
  return results


def _write_table(results: dict, config: ml_collections.ConfigDict, task: pipeline.Task,
                 split_name: str, num_cases: int, num_train: int, workdir: str) -> None:
  e = config.experiment
  lines = [f'{common.VARIANT_NAMES[config.model.variant]} ({task.target} from '
           f'{", ".join(task.inputs)}), trained on {num_train} cases; {num_cases} {split_name} '
           f'cases, mean +- std over cases. MC dropout: {e.mc_samples} samples per member; deep '
           f'ensemble: {e.ensemble_size} members; TTA: {e.tta}. QU: the QU-BraTS score; Spearman: '
           'of the synthesis error with its predicted variance; "in 1 std": the fraction of brain '
           'voxels whose error lies within one predicted standard deviation.', '',
           '| method | ' + ' | '.join(label for _, label in COLUMNS) + ' |',
           '|---' * (len(COLUMNS) + 1) + '|']
  for method, summary in results.items():
    cells = [f'{summary[k]["mean"]:.3f} +- {summary[k]["std"]:.3f}' if k in summary else '-'
             for k, _ in COLUMNS]
    lines.append(f'| {method} | ' + ' | '.join(cells) + ' |')
  lines += ['', '| method | network passes per case | training (s) | prediction (s per case, '
            'compile included) | XLA plan of the prediction (GiB) |', '|---|---|---|---|---|']
  for method, summary in results.items():
    cost = summary['cost']
    lines.append(f'| {method} | {cost["passes_per_case"]} | {cost["training_s"]:.0f} | '
                 f'{cost["predict_s_per_case"]:.1f} | {cost["xla_plan_gib"]:.2f} |')
  files.write_text(os.path.join(workdir, 'uncertainty_methods.md'), '\n'.join(lines) + '\n')
