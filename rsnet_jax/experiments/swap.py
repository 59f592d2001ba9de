"""``swap`` (Tables II-IV, the BraTS 2017 protocol): trains, each into ``WORKDIR/<model>``, an S-Net on
all four real sequences and, per target of ``experiment.targets``, an RS-Net and an R-Net (the three
other real sequences in, the target synthesized). On the held-out split (test, else validation) it
scores the S-Net's Dice with all real inputs, with each sequence swapped for its RS-Net and its R-Net
synthesis, and the RS-Net segmentation head's own Dice. The S-Net is never retrained on synthesized
data. Writes ``table2``/``table3``/``table4`` ``.md`` (laid out as the paper's), ``swap.json`` (per
case), ``swap_dice.png``.
"""

from __future__ import annotations

import os

from absl import logging
import ml_collections

from rsnet_jax.data import orientation
from rsnet_jax.data import pipeline
from rsnet_jax.data import preprocess
from rsnet_jax.evaluation import metrics
from rsnet_jax.evaluation import report
from rsnet_jax.experiments import common
from rsnet_jax.runtime import files

PAPER_ORDER = ('t1', 't2', 'flair', 't1ce')  # the columns of Tables II-IV
DICE = (('DE', 'dice_ET'), ('DT', 'dice_WT'), ('DC', 'dice_TC'))


def swap_outputs(case, snet: common.Model, synthesizers: dict[tuple[str, str], common.Model]):
  """The swap protocol on one case. Returns ``(truth, spacing, rows)``: the class indices ``[X, Y,
  Z]`` and voxel size (mm) of the case's whole canonical grid, and per row (``'real'``, ``'<t>
  RS-Net'``, ``'<t> R-Net'``, ``'<t> anyseq'``: the S-Net with real inputs or with ``t`` swapped for
  that synthesis; ``'<t> RS-Net segmentation'``, ``'<t> anyseq segmentation'``: the model's own
  head) ``(probabilities [X, Y, Z, C], quality)``, where quality holds PSNR/SSIM of the synthesis
  over the brain and in the tumour (`metrics.synthesis_metrics`)."""
  example, meta = snet.load(case)
  rows = {'real': (common.full(snet(example)['probabilities'], meta), {})}
  for (variant, t), model in synthesizers.items():
    own, own_meta = model.load(case)
    out = model(own)
    brain = own['brain'] > 0
    synthesis = out['synthesis'][..., 0]
    quality = metrics.synthesis_metrics(own['target'][..., 0], synthesis, brain,
                                        brain & (own['labels'] > 0))
    swapped = dict(example, inputs=example['inputs'].copy())
    on_snet_grid = preprocess.extract(common.full(synthesis, own_meta), meta.starts,
                                      example['brain'].shape)
    swapped['inputs'][..., snet.task.inputs.index(t)] = on_snet_grid * example['brain']
    rows[common.label(variant, t)] = (common.full(snet(swapped)['probabilities'], meta), quality)
    if 'probabilities' in out:
      rows[f'{common.label(variant, t)} segmentation'] = (
          common.full(out['probabilities'], own_meta), {})
  return common.full(example['labels'], meta), orientation.spacing(meta.affine), rows


def swap_scores(cases: list, snet: common.Model, synthesizers: dict,
                 what: str) -> tuple[dict, dict]:
  """`swap_outputs` of each case, scored (synthesis quality, Dice, HD95): ``(per_case,
  summary)``, per case and over the cases ``{row: {metric: ...}}``."""
  per_case = {}
  for i, case in enumerate(cases):
    logging.info('%s: case %d/%d %s', what, i + 1, len(cases), case.case_id)
    truth, spacing, rows = swap_outputs(case, snet, synthesizers)
    per_case[case.case_id] = {row: dict(quality, **common.segmentation_scores(truth, prob, spacing))
                              for row, (prob, quality) in rows.items()}
  return per_case, common.summarize(per_case)


def protocol_models(config: ml_collections.ConfigDict, workdir: str,
                     variants: tuple[str, ...] = ('rsnet', 'rnet')):
  """The S-Net and a model of each of ``variants`` per target of a swap protocol, trained or
  resumed, with the splits they share."""
  targets = tuple(config.experiment.targets)
  snet_config = common.model_config(config, 'snet', targets[0])
  splits = pipeline.dataset_splits(snet_config, workdir, pipeline.Task.from_config(snet_config))
  snet = common.Model(snet_config, os.path.join(workdir, 'snet'), splits)
  synthesizers = {(variant, t): common.Model(common.model_config(config, variant, t),
                                             os.path.join(workdir, f'{variant}_{t}'), splits)
                  for t in targets for variant in variants}
  return snet, synthesizers, splits


def run(config: ml_collections.ConfigDict, workdir: str) -> dict:
  """Tables II-IV; returns ``{'summary': {row: {metric: {'mean', 'std'}}}, 'per_case': ...}``."""
  targets = tuple(config.experiment.targets)
  snet, synthesizers, splits = protocol_models(config, workdir)
  split_name, cases = common.held_out(splits)
  per_case, summary = swap_scores(cases, snet, synthesizers, 'swap protocol')
  files.write_json(os.path.join(workdir, 'swap.json'), {
      'split': split_name, 'cases': len(cases), 'summary': summary, 'per_case': per_case})
  order = [t for t in PAPER_ORDER if t in targets]
  tables = {
      'table2': ['real'] + [f'{t} RS-Net' for t in order],
      'table3': ['real'] + [r for t in order for r in (f'{t} RS-Net', f'{t} R-Net')],
      'table4': ['real'] + [r for t in order for r in (f'{t} RS-Net',
                                                      f'{t} RS-Net segmentation')],
  }
  captions = {
      'table2': 'S-Net Dice with all real sequences, and with one swapped for its RS-Net synthesis',
      'table3': 'S-Net Dice with one sequence swapped for its RS-Net or its R-Net synthesis',
      'table4': 'S-Net Dice with an RS-Net synthesis, and the RS-Net segmentation head itself',
  }
  for name, rows in tables.items():
    text = _swap_table(summary, rows, captions[name], split_name, len(cases))
    files.write_text(os.path.join(workdir, f'{name}.md'), text)
  report.grouped_bars({r: summary[r] for r in tables['table3'] + tables['table4'][2::2]},
                      [k for _, k in DICE], [n for n, _ in DICE],
                      os.path.join(workdir, 'swap_dice.png'),
                      f'S-Net Dice on the {split_name} split ({len(cases)} cases)')
  return {'summary': summary, 'per_case': per_case, 'split': split_name}


def _swap_table(summary: dict, rows: list[str], caption: str, split: str, n: int) -> str:
  """Markdown laid out as the paper's Tables II-IV: which sequences are real (X), synthesized by
  RS-Net (RS) or R-Net (R), or not used (the RS-Net's own head: x), then Dice in % and HD95 in mm."""
  head = ([common.NAMES[t] for t in PAPER_ORDER] + [n for n, _ in DICE] +
          [f'HD95 {k[5:]} (mm)' for _, k in DICE])
  lines = [f'{caption} ({split} split, {n} cases, mean +- std).', '',
           '| ' + ' | '.join(head) + ' |', '|---' * len(head) + '|']
  for row in rows:
    target, *kind = row.split(' ', 1)
    mark = {'RS-Net': 'RS', 'R-Net': 'R', 'RS-Net segmentation': 'x'}.get(kind[0] if kind else '')
    cells = [mark if kind and t == target else 'X' for t in PAPER_ORDER]
    stats = summary[row]
    cells += [f'{100 * stats[k]["mean"]:.1f} +- {100 * stats[k]["std"]:.1f}' for _, k in DICE]
    cells += [f'{stats["hd95_" + k[5:]]["mean"]:.1f} +- {stats["hd95_" + k[5:]]["std"]:.1f}'
              for _, k in DICE]
    lines.append('| ' + ' | '.join(cells) + ' |')
  return '\n'.join(lines) + '\n'
