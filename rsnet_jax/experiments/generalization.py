"""``generalization`` (ours, not a table of the paper): does what a model learns on one family of
cases hold on another? Trains the same RS-Net twice on the cases of ``data`` (our generator,
`synthetic`, unless ``data.data_dir`` is set), without and with ``config.augment``, and scores both
on that family's held-out split and on ``experiment.ood_cases`` cases of an independent family
(`synthetic_relaxometry`: other anatomy, physics-based contrasts; or ``experiment.ood_data_dir``),
beside the baseline that predicts the brain's mean target intensity everywhere in the brain.
Writes ``generalization.md``, ``generalization.json`` and ``montage_<model>_<family>.png``; the
models in ``WORKDIR/no_augmentation`` and ``WORKDIR/augmentation``.
"""

from __future__ import annotations

import os

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
  """Returns ``{model: {family: {metric: {'mean', 'std'}}}}``."""
  chosen = tuple(config.experiment.get('models', MODELS))
  if not chosen or set(chosen) - set(MODELS):
    raise UserError(f'experiment.models must name some of {MODELS}, got {chosen!r}')
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
           '| model | cases | ' + ' | '.join(label for _, label in COLUMNS) + ' |',
           '|---' * (len(COLUMNS) + 2) + '|']
  for name, by_family in summary.items():
    for family, stats in by_family.items():
      cells = [f'{stats[k]["mean"]:.2f} +- {stats[k]["std"]:.2f}' for k, _ in COLUMNS]
      lines.append(f'| {name.replace("_", " ")} | {family} | ' + ' | '.join(cells) + ' |')
  files.write_text(os.path.join(workdir, 'generalization.md'), '\n'.join(lines) + '\n')
  files.write_json(os.path.join(workdir, 'generalization.json'),
                   {'summary': summary, 'per_case': per_case})
  return summary
