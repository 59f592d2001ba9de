"""``anyseq`` (ours): one ``anyseq`` model (whichever sequence is missing) against a per-target
RS-Net for each of ``experiment.targets``, with the S-Net of the swap protocol. Writes ``anyseq.md``,
``anyseq.json``, ``anyseq.png``.
"""

from __future__ import annotations

import os

import ml_collections
import numpy as np

from rsnet_jax.data import anyseq
from rsnet_jax.data import pipeline
from rsnet_jax.evaluation import report
from rsnet_jax.experiments import common
from rsnet_jax.experiments import swap
from rsnet_jax.runtime import files

class WithoutSequence:
  """An ``anyseq`` `Model` asked to synthesize ``missing``: loads each case without it."""

  def __init__(self, model: common.Model, missing: str):
    self.model, self.missing, self.task = model, missing, model.task

  def load(self, case) -> tuple[dict[str, np.ndarray], pipeline.CaseMeta]:
    return anyseq.load_case(case, self.task, self.missing, whole_brain=True)

  def __call__(self, example: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return self.model(example)


ANYSEQ_COLUMNS = (('psnr_brain', 'PSNR brain (dB)'), ('ssim_brain', 'SSIM brain'),
                  ('psnr_tumour', 'PSNR tumour (dB)'), ('ssim_tumour', 'SSIM tumour'),
                  ('dice_WT', 'S-Net Dice WT'), ('dice_TC', 'S-Net Dice TC'),
                  ('dice_ET', 'S-Net Dice ET'))


def run(config: ml_collections.ConfigDict, workdir: str) -> dict:
  """One ``anyseq`` model against a per-target RS-Net for each of ``experiment.targets``, every
  model trained on the same split for the same steps, with an S-Net on all four real sequences
  for the swap protocol. Per target, on the held-out cases: PSNR/SSIM of each synthesis (brain,
  tumour), the S-Net's Dice with the target swapped for it and the model's own segmentation Dice;
  writes ``anyseq.md`` (the table, then each figure where the one model is worse than the four),
  ``anyseq.json`` (per case) and ``anyseq.png``. Returns the summary ``{row: {metric: {'mean',
  'std'}}}``."""
  targets = tuple(config.experiment.targets)
  snet, synthesizers, splits = swap.protocol_models(config, workdir, ('rsnet',))
  one = common.Model(common.model_config(config, 'anyseq', targets[0]),
                     os.path.join(workdir, 'anyseq'), splits)
  synthesizers.update({('anyseq', t): WithoutSequence(one, t) for t in targets})
  split_name, cases = common.held_out(splits)
  per_case, summary = swap.swap_scores(cases, snet, synthesizers, 'anyseq comparison')
  files.write_json(os.path.join(workdir, 'anyseq.json'), {
      'split': split_name, 'cases': len(cases), 'summary': summary, 'per_case': per_case})
  files.write_text(os.path.join(workdir, 'anyseq.md'),
                   _anyseq_table(summary, targets, split_name, len(cases)))
  report.grouped_bars({common.label(v, t): summary[common.label(v, t)] for t in targets
                       for v in ('rsnet', 'anyseq')},
                      ['psnr_brain', 'psnr_tumour'], ['PSNR brain (dB)', 'PSNR tumour (dB)'],
                      os.path.join(workdir, 'anyseq.png'),
                      f'four RS-Nets vs one anyseq model ({split_name} split, {len(cases)} cases)')
  return summary


def _anyseq_table(summary: dict, targets: tuple[str, ...], split: str, n: int) -> str:
  """The comparison as Markdown: a row per target and model, then where anyseq is worse."""
  fmt = lambda stats: f'{stats["mean"]:.3f} +- {stats["std"]:.3f}'
  head = ['missing', 'model'] + [label for _, label in ANYSEQ_COLUMNS] + ['own Dice WT', 'TC', 'ET']
  real = summary['real']
  lines = [f'One anyseq model vs one RS-Net per target ({split} split, {n} cases, mean +- std). '
           'S-Net Dice: the S-Net trained on all four real sequences, run with the missing one '
           f'swapped for the synthesis (all real: WT {fmt(real["dice_WT"])}, TC '
           f'{fmt(real["dice_TC"])}, ET {fmt(real["dice_ET"])}); own Dice: the model\'s '
           'segmentation head.', '', '| ' + ' | '.join(head) + ' |', '|---' * len(head) + '|']
  worse = []
  for t in targets:
    rows = {v: summary[common.label(v, t)] for v in ('rsnet', 'anyseq')}
    own = {v: summary.get(f'{common.label(v, t)} segmentation', {}) for v in rows}
    for v, stats in rows.items():
      cells = [fmt(stats[k]) if k in stats else '-' for k, _ in ANYSEQ_COLUMNS]
      cells += [fmt(own[v][k]) if k in own[v] else '-' for k in ('dice_WT', 'dice_TC', 'dice_ET')]
      lines.append(f'| {common.NAMES[t]} | {common.VARIANT_NAMES[v]} | ' + ' | '.join(cells) + ' |')
    pairs = [(label, rows['anyseq'].get(k), rows['rsnet'].get(k)) for k, label in ANYSEQ_COLUMNS]
    pairs += [(f'own Dice {k[5:]}', own['anyseq'].get(k), own['rsnet'].get(k))
              for k in ('dice_WT', 'dice_TC', 'dice_ET')]
    worse += [f'- {common.NAMES[t]}, {label}: anyseq {a["mean"]:.3f}, RS-Net {b["mean"]:.3f} '
              f'({a["mean"] - b["mean"]:+.3f})'
              for label, a, b in pairs if a and b and a['mean'] < b['mean']]
  lines += ['', 'Where the one anyseq model is worse than the per-target RS-Net (means):']
  lines += worse or ['- nowhere']
  return '\n'.join(lines) + '\n'
