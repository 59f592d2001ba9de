"""``generalization`` (ours, not a table of the paper): does what a model learns on one family of
cases hold on another? Trains the same RS-Net twice on the cases of ``data`` (our generator,
`synthetic`, unless ``data.data_dir`` is set), without and with ``config.augment``, and scores both
on that family's held-out split and on ``experiment.ood_cases`` cases of an independent family
(`synthetic_relaxometry`: other anatomy, physics-based contrasts; or ``experiment.ood_data_dir``),
beside the baseline that predicts the brain's mean target intensity everywhere in the brain.
Writes ``generalization.md``, ``generalization.json`` and ``montage_<model>_<family>.png``; the
models in ``WORKDIR/no_augmentation`` and ``WORKDIR/augmentation``. With ``experiment.seeds``, all
of it once per seed in ``WORKDIR/seed_<seed>``, and in ``WORKDIR`` the table over the seeds: one
run's figures out of family move with the seed more than most levers do.
"""

from __future__ import annotations

import os

from absl import logging
import ml_collections
import numpy as np

from rsnet_jax.data import augment
from rsnet_jax.data import layouts
from rsnet_jax.data import orientation
from rsnet_jax.data import pipeline
from rsnet_jax.data import synthetic_relaxometry
from rsnet_jax.errors import UserError
from rsnet_jax.evaluation import evaluate
from rsnet_jax.evaluation import metrics
from rsnet_jax.evaluation import report
from rsnet_jax.experiments import common
from rsnet_jax.runtime import files

MODELS = ('no_augmentation', 'augmentation')  # the two trainings experiment.models chooses from
COLUMNS = (('dice_WT', 'Dice WT'), ('dice_TC', 'Dice TC'), ('dice_ET', 'Dice ET'),
           ('psnr_brain', 'PSNR brain (dB)'), ('psnr_tumour', 'PSNR tumour (dB)'),
           ('ssim_brain', 'SSIM brain'), ('psnr_brain_vs_mean', 'brain PSNR - mean (dB)'),
           ('psnr_tumour_vs_mean', 'tumour PSNR - mean (dB)'))


def without_augmentation(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict(config.to_dict())
  for name in augment.SPATIAL + augment.INTENSITY:
    c.augment[f'{name}_probability'] = 0.0
  c.augment.random_crop = False
  return c


def ood_cases(config: ml_collections.ConfigDict, workdir: str) -> list[layouts.CaseFiles]:
  """``experiment.ood_data_dir``'s cases, or the independent family's, generated once into
  ``WORKDIR/relaxometry`` on the training family's grid."""
  e = config.experiment
  folder = e.ood_data_dir or os.path.join(workdir, 'relaxometry')
  done = os.path.join(folder, '.complete')
  if not e.ood_data_dir and not os.path.exists(done):
    synthetic_relaxometry.generate_dataset(folder, e.ood_cases, config.seed + 1,
                                           config.data.synthetic_layout,
                                           tuple(config.data.synthetic_shape))
    open(done, 'w').close()
  return layouts.discover(folder, layouts.from_config(config.data))


def scores(example: dict[str, np.ndarray], out: dict[str, np.ndarray],
           spacing: tuple[float, ...]) -> dict[str, float]:
  """`evaluate.score` of one case's outputs, plus how many dB its synthesis is above the baseline
  that predicts the brain's mean target intensity everywhere in the brain (and in the tumour)."""
  row = evaluate.score(example, out, spacing)
  brain = example['brain'] > 0
  truth = example['target'][..., 0]
  mean = np.where(brain, truth[brain].mean(), 0.0)
  tumour = brain & (example['labels'] > 0)
  row['psnr_brain_vs_mean'] = row['psnr_brain'] - metrics.psnr(truth, mean, brain)
  row['psnr_tumour_vs_mean'] = row['psnr_tumour'] - metrics.psnr(truth, mean, tumour)
  return row


def _score(model: common.Model, case) -> tuple[dict[str, float], dict, dict]:
  example, meta = model.load(case)
  out = model(example)
  return scores(example, out, orientation.spacing(meta.affine)), example, out


def run(config: ml_collections.ConfigDict, workdir: str) -> dict:
  """Returns ``{model: {family: {metric: {'mean', 'std'}}}}``: over held-out cases, or with
  ``experiment.seeds`` over seeds (of each seed's mean over cases)."""
  chosen = tuple(config.experiment.get('models', MODELS))
  if not chosen or set(chosen) - set(MODELS):
    raise UserError(f'experiment.models must name some of {MODELS}, got {chosen!r}')
  seeds = tuple(config.experiment.get('seeds', ()))
  if len(set(seeds)) != len(seeds) or not all(isinstance(s, int) for s in seeds):
    raise UserError(f'experiment.seeds must be distinct integers, got {seeds!r}')
  if not seeds:
    return _one_seed(config, workdir, chosen)
  by_seed = {}
  for i, seed in enumerate(seeds):
    logging.info('generalization: seed %d (%d of %d) in %s', seed, i + 1, len(seeds),
                 os.path.join(workdir, f'seed_{seed}'))
    c = ml_collections.ConfigDict(config.to_dict())
    c.seed = seed
    by_seed[seed] = _one_seed(c, os.path.join(workdir, f'seed_{seed}'), chosen)
  summary = {
      name: {family: {k: dict(zip(('mean', 'std'), report.mean_std(
          [by_seed[seed][name][family][k]['mean'] for seed in seeds]))) for k, _ in COLUMNS}
             for family in by_family} for name, by_family in by_seed[seeds[0]].items()}
  lines = [f'{len(seeds)} seeds ({", ".join(map(str, seeds))}; each: its own cases, '
           'initialisation, data order and family of held-out cases, in seed_<seed>/); mean +- '
           'std over seeds of each seed\'s mean over cases. "- mean": dB above predicting the '
           'brain\'s mean intensity everywhere.', '', *_table(summary), '', 'Per seed:', '',
           '| model | cases | seed | ' + ' | '.join(label for _, label in COLUMNS) + ' |',
           '|---' * (len(COLUMNS) + 3) + '|']
  for name, by_family in summary.items():
    for family in by_family:
      for seed in seeds:
        stats = by_seed[seed][name][family]
        lines.append(f'| {name.replace("_", " ")} | {family} | {seed} | ' + ' | '.join(
            f'{stats[k]["mean"]:.2f}' for k, _ in COLUMNS) + ' |')
  files.write_text(os.path.join(workdir, 'generalization.md'), '\n'.join(lines) + '\n')
  files.write_json(os.path.join(workdir, 'generalization.json'),
                   {'summary': summary, 'by_seed': {str(k): v for k, v in by_seed.items()}})
  return summary


def _table(summary: dict) -> list[str]:
  """Markdown rows of ``{model: {family: {metric: {'mean', 'std'}}}}``."""
  lines = ['| model | cases | ' + ' | '.join(label for _, label in COLUMNS) + ' |',
           '|---' * (len(COLUMNS) + 2) + '|']
  for name, by_family in summary.items():
    for family, stats in by_family.items():
      cells = [f'{stats[k]["mean"]:.2f} +- {stats[k]["std"]:.2f}' for k, _ in COLUMNS]
      lines.append(f'| {name.replace("_", " ")} | {family} | ' + ' | '.join(cells) + ' |')
  return lines


def _one_seed(config: ml_collections.ConfigDict, workdir: str, chosen: tuple[str, ...]) -> dict:
  """Trains and scores the ``chosen`` models with ``config.seed`` in ``workdir``; writes its table,
  record and montages; returns its summary over cases."""
  first = common.model_config(config, config.model.variant, config.data.target)
  task = pipeline.Task.from_config(first)
  splits = pipeline.dataset_splits(first, workdir, task)
  split_name, home = common.held_out(splits)
  families = {f'same family ({split_name})': home, 'independent family': ood_cases(config, workdir)}
  models = {'no_augmentation': without_augmentation(first), 'augmentation': first}
  models = {name: models[name] for name in chosen}
  summary, per_case = {}, {}
  for name, model_config in models.items():
    model = common.Model(model_config, os.path.join(workdir, name), splits)
    for family, cases in families.items():
      rows = {}
      for i, case in enumerate(cases):
        rows[case.case_id], example, out = _score(model, case)
        if i == 0:
          report.montage(example, out, task, os.path.join(
              workdir, f'montage_{name}_{family.split()[0]}.png'), f'{name}, {family}: '
              f'{case.case_id}')
      per_case.setdefault(name, {})[family] = rows
      summary.setdefault(name, {})[family] = {
          k: dict(zip(('mean', 'std'), report.mean_std([r[k] for r in rows.values() if k in r])))
          for k, _ in COLUMNS}
  lines = [f'RS-Net ({config.data.target} from {", ".join(task.inputs)}) trained on '
           f'{len(splits["train"])} cases of one family, scored on {len(home)} held-out cases of '
           f'that family and {len(families["independent family"])} of an independent one; mean '
           '+- std. "- mean": dB above predicting the brain\'s mean intensity everywhere.', '',
           *_table(summary)]
  files.write_text(os.path.join(workdir, 'generalization.md'), '\n'.join(lines) + '\n')
  files.write_json(os.path.join(workdir, 'generalization.json'),
                   {'summary': summary, 'per_case': per_case})
  return summary
