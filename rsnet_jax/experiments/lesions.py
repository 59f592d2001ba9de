"""``lesions`` (Table V, Figs. 4-5, the MS protocol): the same models for ``experiment.targets``
(FLAIR, T2) on MS cases (T1, T2, FLAIR, PD; lesion = label 1); the S-Net's lesion probability with
real inputs and with a target swapped, scored by `metrics.lesion_detection` over probability
thresholds. Writes ``table5.md`` (TPR at FDR 0.2 per size bin), ``lesions.json`` (all ROC curves),
``fig4_<target>.png`` / ``fig5_<target>.png``.
"""

from __future__ import annotations

import os

from absl import logging
import ml_collections
import numpy as np

from rsnet_jax.evaluation import metrics
from rsnet_jax.evaluation import report
from rsnet_jax.experiments import common
from rsnet_jax.experiments import swap
from rsnet_jax.runtime import files

LESION_ROWS = (('real', 'All real sequences (4)'), ('R-Net', '3 real + 1 R-Net synthesized'),
               ('RS-Net', '3 real + 1 RS-Net synthesized'))
BIN_COLUMNS = (('all', 'All'), ('large', 'Large'), ('medium', 'Med.'), ('small', 'Small'))


def run(config: ml_collections.ConfigDict, workdir: str) -> dict:
  """Table V and Figs. 4-5: lesion detection by the S-Net (lesion = class 1) with real inputs and
  with each target swapped for its RS-Net / R-Net synthesis; ROC (TPR vs FDR) over
  ``experiment.num_thresholds`` probability thresholds per size bin, pooled over the held-out cases;
  TPR at FDR ``experiment.fdr``. Returns ``{target: {row: {bin: tpr}}}``."""
  targets = tuple(config.experiment.targets)
  snet, synthesizers, splits = swap.protocol_models(config, workdir)
  split_name, cases = common.held_out(splits)
  truths, lesion_prob = [], {}
  for i, case in enumerate(cases):
    logging.info('lesion protocol: case %d/%d %s', i + 1, len(cases), case.case_id)
    truth, _, rows = swap.swap_outputs(case, snet, synthesizers)
    truths.append(truth > 0)
    for row, (prob, _) in rows.items():
      lesion_prob.setdefault(row, []).append(prob[..., 1])
  thresholds = np.linspace(0, 1, config.experiment.num_thresholds + 2)[1:-1]
  curves = {row: metrics.lesion_roc(truths, p, thresholds) for row, p in lesion_prob.items()}
  fdr = config.experiment.fdr
  tpr = {t: {name: {b: metrics.tpr_at_fdr(curves['real' if key == 'real' else f'{t} {key}'][b], fdr)
                    for b, _ in BIN_COLUMNS}
             for key, name in LESION_ROWS}
         for t in targets}
  head = [f'{common.NAMES[t]} synthesis: {c}' for t in targets for _, c in BIN_COLUMNS]
  lines = [f'TPR at FDR {fdr} per lesion size ({split_name} split, {len(cases)} cases; small 3-10, '
           'medium 11-50, large 51+ voxels).', '', '| | ' + ' | '.join(head) + ' |',
           '|---' * (len(head) + 1) + '|']
  for _, name in LESION_ROWS:
    lines.append(f'| {name} | ' + ' | '.join(f'{tpr[t][name][b]:.3f}' for t in targets
                                              for b, _ in BIN_COLUMNS) + ' |')
  files.write_text(os.path.join(workdir, 'table5.md'), '\n'.join(lines) + '\n')
  files.write_json(os.path.join(workdir, 'lesions.json'), {
      'split': split_name, 'cases': len(cases), 'fdr': fdr, 'tpr_at_fdr': tpr,
      'thresholds': thresholds.tolist(),
      'curves': {row: {b: c.tolist() for b, c in bins.items()} for row, bins in curves.items()}})
  for number, t in zip((4, 5), targets):
    report.roc_panels({'S-Net, real': curves['real'], 'RS-Net': curves[f'{t} RS-Net'],
                       'R-Net': curves[f'{t} R-Net']}, [b for b, _ in BIN_COLUMNS],
                      os.path.join(workdir, f'fig{number}_{t}.png'),
                      f'{common.NAMES[t]} synthesis: lesion detection ROC')
  return tpr
