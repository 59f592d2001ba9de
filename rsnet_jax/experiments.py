"""The paper's evaluation protocols, one command per table (``config.experiment.name``).

``swap`` (Tables II-IV, the BraTS 2017 protocol): trains, each into ``WORKDIR/<model>``, an S-Net on
all four real sequences and, per target of ``experiment.targets``, an RS-Net and an R-Net (the three
other real sequences in, the target synthesized). On the held-out split (test, else validation) it
scores the S-Net's Dice with all real inputs, with each sequence swapped for its RS-Net and its R-Net
synthesis, and the RS-Net segmentation head's own Dice. The S-Net is never retrained on synthesized
data. Writes ``table2``/``table3``/``table4`` ``.md`` (laid out as the paper's), ``swap.json`` (per
case), ``swap_dice.png``.

``lesions`` (Table V, Figs. 4-5, the MS protocol): the same models for ``experiment.targets``
(FLAIR, T2) on MS cases (T1, T2, FLAIR, PD; lesion = label 1); the S-Net's lesion probability with
real inputs and with a target swapped, scored by `metrics.lesion_detection` over probability
thresholds. Writes ``table5.md`` (TPR at FDR 0.2 per size bin), ``lesions.json`` (all ROC curves),
``fig4_<target>.png`` / ``fig5_<target>.png``.

``crossval`` (Table I, the BraTS 2015 protocol): ``experiment.folds`` folds, each with
``experiment.test_cases`` test and ``experiment.val_cases`` validation cases (the paper: 5 folds of
6 / 6 / 42 of the 54 LGG cases); per fold and target an RS-Net from ``data.inputs`` (T1); PSNR
(eq. 6) and SSIM (eq. 5, and windowed) over the brain of each fold's test cases. Writes
``table1.md``, ``crossval.json``, ``crossval.png``.

``convergence`` (ours, not a table of the paper): an RS-Net, an R-Net and an S-Net
(``experiment.variants``) for ``data.target``, trained on the same split with validation every
``train.eval_every_epochs``; their curves (train loss, validation losses, Dice WT/TC/ET,
PSNR/SSIM) read back from each model's TensorBoard events into ``learning_curves.png``, and their
held-out figures into ``convergence.md`` / ``convergence.json``, with the paper's two claims side
by side (the RS-Net head's Dice against the S-Net's; the RS-Net synthesis in the tumour against
the R-Net's).

Models already trained in ``WORKDIR`` are resumed, not retrained, so a rerun only evaluates.
"""

from __future__ import annotations

import functools
import os
import time

from absl import logging
import jax
import ml_collections
import numpy as np

from rsnet_jax import anyseq
from rsnet_jax import compile_options
from rsnet_jax import evaluate
from rsnet_jax import files
from rsnet_jax import metrics
from rsnet_jax import predict
from rsnet_jax import report
from rsnet_jax import summary_writer
from rsnet_jax import train
from rsnet_jax.data import orientation
from rsnet_jax.data import pipeline
from rsnet_jax.data import preprocess
from rsnet_jax.errors import UserError

NAMES = {'t1': 'T1', 't2': 'T2', 'flair': 'FLAIR', 't1ce': 'T1ce'}
VARIANT_NAMES = {'rsnet': 'RS-Net', 'rnet': 'R-Net', 'snet': 'S-Net', 'anyseq': 'anyseq'}
PAPER_ORDER = ('t1', 't2', 'flair', 't1ce')  # the columns of Tables II-IV
DICE = (('DE', 'dice_ET'), ('DT', 'dice_WT'), ('DC', 'dice_TC'))


def model_config(config: ml_collections.ConfigDict, variant: str, target: str,
                 inputs: tuple[str, ...] = ()) -> ml_collections.ConfigDict:
  """``config`` for one model of a protocol (no ``experiment`` field, so it trains as usual)."""
  c = ml_collections.ConfigDict(config.to_dict())
  del c['experiment']
  c.model.variant, c.data.target, c.data.inputs = variant, target, tuple(inputs)
  return c


class Model:
  """A trained (or resumed) model of a protocol with its task and a jitted deterministic forward."""

  def __init__(self, config: ml_collections.ConfigDict, workdir: str,
               splits: dict[str, list]):
    self.task = pipeline.Task.from_config(config)
    os.makedirs(workdir, exist_ok=True)
    train.train_and_evaluate(config, workdir, splits)
    state = train.abstract_train_state(config, self.task)
    state, _ = train.restore_params(workdir, config, state, 'best')
    self.params = state.params
    self._fn = jax.jit(functools.partial(predict.forward, apply_fn=state.apply_fn,
                                         num_mc_samples=0),
                       compiler_options=compile_options.for_backend())

  def load(self, case) -> tuple[dict[str, np.ndarray], pipeline.CaseMeta]:
    return pipeline.load_case(case, self.task)

  def __call__(self, example: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return predict.predict_example(self._fn, self.params, example)


def _full(volume: np.ndarray, meta: pipeline.CaseMeta) -> np.ndarray:
  """A network-grid volume back on the case's whole (canonical) grid."""
  return preprocess.restore(volume, meta.starts, meta.shape)


def _segmentation_scores(truth: np.ndarray, probabilities: np.ndarray,
                         spacing: tuple[float, ...]) -> dict[str, float]:
  pred = np.argmax(probabilities, -1)
  row = {f'dice_{k}': v for k, v in metrics.brats_dice(truth, pred).items()}
  row.update({f'hd95_{k}': v for k, v in metrics.brats_hd95(truth, pred, spacing).items()})
  return row


def _label(variant: str, target: str) -> str:
  return f'{target} {VARIANT_NAMES[variant]}'


def swap_outputs(case, snet: Model, synthesizers: dict[tuple[str, str], Model]):
  """The swap protocol on one case. Returns ``(truth, spacing, rows)``: the class indices ``[X, Y,
  Z]`` and voxel size (mm) of the case's whole canonical grid, and per row (``'real'``, ``'<t>
  RS-Net'``, ``'<t> R-Net'``, ``'<t> anyseq'``: the S-Net with real inputs or with ``t`` swapped for
  that synthesis; ``'<t> RS-Net segmentation'``, ``'<t> anyseq segmentation'``: the model's own
  head) ``(probabilities [X, Y, Z, C], quality)``, where quality holds PSNR/SSIM of the synthesis
  over the brain and in the tumour (`metrics.synthesis_metrics`)."""
  example, meta = snet.load(case)
  rows = {'real': (_full(snet(example)['probabilities'], meta), {})}
  for (variant, t), model in synthesizers.items():
    own, own_meta = model.load(case)
    out = model(own)
    brain = own['brain'] > 0
    synthesis = out['synthesis'][..., 0]
    quality = metrics.synthesis_metrics(own['target'][..., 0], synthesis, brain,
                                        brain & (own['labels'] > 0))
    swapped = dict(example, inputs=example['inputs'].copy())
    on_snet_grid = preprocess.extract(_full(synthesis, own_meta), meta.starts,
                                      example['brain'].shape)
    swapped['inputs'][..., snet.task.inputs.index(t)] = on_snet_grid * example['brain']
    rows[_label(variant, t)] = (_full(snet(swapped)['probabilities'], meta), quality)
    if 'probabilities' in out:
      rows[f'{_label(variant, t)} segmentation'] = (_full(out['probabilities'], own_meta), {})
  return _full(example['labels'], meta), orientation.spacing(meta.affine), rows


def _swap_scores(cases: list, snet: Model, synthesizers: dict,
                 what: str) -> tuple[dict, dict]:
  """`swap_outputs` of each case, scored (synthesis quality, Dice, HD95): ``(per_case,
  summary)``, per case and over the cases ``{row: {metric: ...}}``."""
  per_case = {}
  for i, case in enumerate(cases):
    logging.info('%s: case %d/%d %s', what, i + 1, len(cases), case.case_id)
    truth, spacing, rows = swap_outputs(case, snet, synthesizers)
    per_case[case.case_id] = {row: dict(quality, **_segmentation_scores(truth, prob, spacing))
                              for row, (prob, quality) in rows.items()}
  return per_case, _summarize(per_case)


def held_out(splits: dict[str, list]) -> tuple[str, list]:
  name = 'test' if splits['test'] else 'val'
  return name, splits[name]


def _protocol_models(config: ml_collections.ConfigDict, workdir: str,
                     variants: tuple[str, ...] = ('rsnet', 'rnet')):
  """The S-Net and a model of each of ``variants`` per target of a swap protocol, trained or
  resumed, with the splits they share."""
  targets = tuple(config.experiment.targets)
  snet_config = model_config(config, 'snet', targets[0])
  splits = pipeline.dataset_splits(snet_config, workdir, pipeline.Task.from_config(snet_config))
  snet = Model(snet_config, os.path.join(workdir, 'snet'), splits)
  synthesizers = {(variant, t): Model(model_config(config, variant, t),
                                      os.path.join(workdir, f'{variant}_{t}'), splits)
                  for t in targets for variant in variants}
  return snet, synthesizers, splits


class WithoutSequence:
  """An ``anyseq`` `Model` asked to synthesize ``missing``: loads each case without it."""

  def __init__(self, model: Model, missing: str):
    self.model, self.missing, self.task = model, missing, model.task

  def load(self, case) -> tuple[dict[str, np.ndarray], pipeline.CaseMeta]:
    return anyseq.load_case(case, self.task, self.missing)

  def __call__(self, example: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return self.model(example)


ANYSEQ_COLUMNS = (('psnr_brain', 'PSNR brain (dB)'), ('ssim_brain', 'SSIM brain'),
                  ('psnr_tumour', 'PSNR tumour (dB)'), ('ssim_tumour', 'SSIM tumour'),
                  ('dice_WT', 'S-Net Dice WT'), ('dice_TC', 'S-Net Dice TC'),
                  ('dice_ET', 'S-Net Dice ET'))


def run_anyseq(config: ml_collections.ConfigDict, workdir: str) -> dict:
  """One ``anyseq`` model against a per-target RS-Net for each of ``experiment.targets``, every
  model trained on the same split for the same steps, with an S-Net on all four real sequences
  for the swap protocol. Per target, on the held-out cases: PSNR/SSIM of each synthesis (brain,
  tumour), the S-Net's Dice with the target swapped for it and the model's own segmentation Dice;
  writes ``anyseq.md`` (the table, then each figure where the one model is worse than the four),
  ``anyseq.json`` (per case) and ``anyseq.png``. Returns the summary ``{row: {metric: {'mean',
  'std'}}}``."""
  targets = tuple(config.experiment.targets)
  snet, synthesizers, splits = _protocol_models(config, workdir, ('rsnet',))
  one = Model(model_config(config, 'anyseq', targets[0]), os.path.join(workdir, 'anyseq'), splits)
  synthesizers.update({('anyseq', t): WithoutSequence(one, t) for t in targets})
  split_name, cases = held_out(splits)
  per_case, summary = _swap_scores(cases, snet, synthesizers, 'anyseq comparison')
  files.write_json(os.path.join(workdir, 'anyseq.json'), {
      'split': split_name, 'cases': len(cases), 'summary': summary, 'per_case': per_case})
  files.write_text(os.path.join(workdir, 'anyseq.md'),
                   _anyseq_table(summary, targets, split_name, len(cases)))
  report.grouped_bars({_label(v, t): summary[_label(v, t)] for t in targets
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
    rows = {v: summary[_label(v, t)] for v in ('rsnet', 'anyseq')}
    own = {v: summary.get(f'{_label(v, t)} segmentation', {}) for v in rows}
    for v, stats in rows.items():
      cells = [fmt(stats[k]) if k in stats else '-' for k, _ in ANYSEQ_COLUMNS]
      cells += [fmt(own[v][k]) if k in own[v] else '-' for k in ('dice_WT', 'dice_TC', 'dice_ET')]
      lines.append(f'| {NAMES[t]} | {VARIANT_NAMES[v]} | ' + ' | '.join(cells) + ' |')
    pairs = [(label, rows['anyseq'].get(k), rows['rsnet'].get(k)) for k, label in ANYSEQ_COLUMNS]
    pairs += [(f'own Dice {k[5:]}', own['anyseq'].get(k), own['rsnet'].get(k))
              for k in ('dice_WT', 'dice_TC', 'dice_ET')]
    worse += [f'- {NAMES[t]}, {label}: anyseq {a["mean"]:.3f}, RS-Net {b["mean"]:.3f} '
              f'({a["mean"] - b["mean"]:+.3f})'
              for label, a, b in pairs if a and b and a['mean'] < b['mean']]
  lines += ['', 'Where the one anyseq model is worse than the per-target RS-Net (means):']
  lines += worse or ['- nowhere']
  return '\n'.join(lines) + '\n'


def run_swap(config: ml_collections.ConfigDict, workdir: str) -> dict:
  """Tables II-IV; returns ``{'summary': {row: {metric: {'mean', 'std'}}}, 'per_case': ...}``."""
  targets = tuple(config.experiment.targets)
  snet, synthesizers, splits = _protocol_models(config, workdir)
  split_name, cases = held_out(splits)
  per_case, summary = _swap_scores(cases, snet, synthesizers, 'swap protocol')
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


LESION_ROWS = (('real', 'All real sequences (4)'), ('R-Net', '3 real + 1 R-Net synthesized'),
               ('RS-Net', '3 real + 1 RS-Net synthesized'))
BIN_COLUMNS = (('all', 'All'), ('large', 'Large'), ('medium', 'Med.'), ('small', 'Small'))


def run_lesions(config: ml_collections.ConfigDict, workdir: str) -> dict:
  """Table V and Figs. 4-5: lesion detection by the S-Net (lesion = class 1) with real inputs and
  with each target swapped for its RS-Net / R-Net synthesis; ROC (TPR vs FDR) over
  ``experiment.num_thresholds`` probability thresholds per size bin, pooled over the held-out cases;
  TPR at FDR ``experiment.fdr``. Returns ``{target: {row: {bin: tpr}}}``."""
  targets = tuple(config.experiment.targets)
  snet, synthesizers, splits = _protocol_models(config, workdir)
  split_name, cases = held_out(splits)
  truths, lesion_prob = [], {}
  for i, case in enumerate(cases):
    logging.info('lesion protocol: case %d/%d %s', i + 1, len(cases), case.case_id)
    truth, _, rows = swap_outputs(case, snet, synthesizers)
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
  head = [f'{NAMES[t]} synthesis: {c}' for t in targets for _, c in BIN_COLUMNS]
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
                      f'{NAMES[t]} synthesis: lesion detection ROC')
  return tpr


def _summarize(per_case: dict[str, dict[str, dict[str, float]]]) -> dict:
  rows = {r for case in per_case.values() for r in case}
  summary = {}
  for row in sorted(rows):
    values = [case[row] for case in per_case.values() if row in case]
    summary[row] = {}
    for metric in sorted({k for v in values for k in v}):
      m, s = report.mean_std([v[metric] for v in values if metric in v])
      summary[row][metric] = {'mean': m, 'std': s}
  return summary


def _swap_table(summary: dict, rows: list[str], caption: str, split: str, n: int) -> str:
  """Markdown laid out as the paper's Tables II-IV: which sequences are real (X), synthesized by
  RS-Net (RS) or R-Net (R), or not used (the RS-Net's own head: x), then Dice in % and HD95 in mm."""
  head = ([NAMES[t] for t in PAPER_ORDER] + [n for n, _ in DICE] +
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


def run_crossval(config: ml_collections.ConfigDict, workdir: str) -> dict:
  """Table I; returns ``{target: {metric: {'mean', 'std'}}}`` over all folds' test cases."""
  e = config.experiment
  first = model_config(config, config.model.variant, e.targets[0], config.data.inputs)
  cases = pipeline.dataset_cases(first, workdir, pipeline.Task.from_config(first))
  per_case = {t: {} for t in e.targets}
  for f, split in enumerate(folds(cases, e.folds, e.test_cases, e.val_cases,
                                  config.data.split_seed)):
    for t in e.targets:
      model = Model(model_config(config, config.model.variant, t, config.data.inputs),
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
  inputs = ','.join(NAMES[m] for m in pipeline.Task.from_config(first).inputs)
  lines = [f'{config.model.variant} synthesis from {inputs}, {e.folds}-fold cross-validation '
           f'({e.test_cases} test / {e.val_cases} validation cases per fold), over the brain, mean '
           '+- std over all test cases.', '',
           '| target | SSIM (eq. 5) | SSIM (windowed) | PSNR (dB) |', '|---|---|---|---|']
  for t, s in summary.items():
    lines.append(f'| {NAMES[t]} | {s["ssim_brain"]["mean"]:.3f} +- {s["ssim_brain"]["std"]:.3f} | '
                 f'{s["ssim_windowed_brain"]["mean"]:.3f} +- {s["ssim_windowed_brain"]["std"]:.3f}'
                 f' | {s["psnr_brain"]["mean"]:.2f} +- {s["psnr_brain"]["std"]:.2f} |')
  files.write_text(os.path.join(workdir, 'table1.md'), '\n'.join(lines) + '\n')
  report.grouped_bars({NAMES[t]: s for t, s in summary.items()},
                      ['ssim_brain', 'ssim_windowed_brain'], ['SSIM (eq. 5)', 'SSIM (windowed)'],
                      os.path.join(workdir, 'crossval.png'), 'synthesis quality per target')
  return summary


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
    return f'- {text}: needs {VARIANT_NAMES[a]} and {VARIANT_NAMES[b]}.'
  (ma, sa), (mb, sb) = ((summary[m][metric]['mean'], summary[m][metric]['std']) for m in (a, b))
  return (f'- {text}: {VARIANT_NAMES[a]} {ma:.3f} +- {sa:.3f}, {VARIANT_NAMES[b]} {mb:.3f} +- '
          f'{sb:.3f} (difference {ma - mb:+.3f}).')


def run_convergence(config: ml_collections.ConfigDict, workdir: str) -> dict:
  """The convergence study; returns ``{variant: {metric: {'mean', 'std'}}}`` on the held-out
  split."""
  target, variants = config.data.target, tuple(config.experiment.variants)
  unknown = set(variants) - set(VARIANT_NAMES)
  if unknown:
    raise UserError(f'experiment.variants: unknown {sorted(unknown)}; use {sorted(VARIANT_NAMES)}')
  first = model_config(config, variants[0], target)
  splits = pipeline.dataset_splits(first, workdir, pipeline.Task.from_config(first))
  split_name, cases = held_out(splits)
  summary, curves, seconds = {}, {}, {}
  for variant in variants:
    model_dir = os.path.join(workdir, variant)
    start = time.perf_counter()
    model = Model(model_config(config, variant, target), model_dir, splits)
    seconds[variant] = time.perf_counter() - start
    per_case = {}
    for case in cases:
      example, meta = model.load(case)
      per_case[case.case_id] = evaluate.score(example, model(example),
                                              orientation.spacing(meta.affine))
    summary[variant] = report.write_tables(per_case, os.path.join(model_dir, 'evaluation'),
                                           split_name)
    curves[VARIANT_NAMES[variant]] = summary_writer.read_scalars(model_dir)
  n = len(cases)
  report.learning_curves(curves, list(CURVES), os.path.join(workdir, 'learning_curves.png'),
                         f'{NAMES[target]}: validation on {len(splits["val"])} cases, '
                         f'{len(splits["train"])} training cases')
  lines = [f'Held-out {split_name} split ({n} cases), best checkpoint by validation loss, mean +- '
           f'std; target {NAMES[target]}.', '',
           '| model | ' + ' | '.join(label for _, label in FINAL_COLUMNS) + ' | train + eval (s) |',
           '|---' * (len(FINAL_COLUMNS) + 2) + '|']
  for variant, s in summary.items():
    cells = [f'{s[k]["mean"]:.3f} +- {s[k]["std"]:.3f}' if k in s else '-'
             for k, _ in FINAL_COLUMNS]
    lines.append(f'| {VARIANT_NAMES[variant]} | ' + ' | '.join(cells) +
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


RUNNERS = {'swap': run_swap, 'crossval': run_crossval, 'lesions': run_lesions,
           'convergence': run_convergence, 'anyseq': run_anyseq}


def run(config: ml_collections.ConfigDict, workdir: str) -> None:
  name = config.experiment.name
  if name not in RUNNERS:
    raise UserError(f'experiment.name must be one of {sorted(RUNNERS)}, got {name!r}')
  RUNNERS[name](config, workdir)
  written = sorted(f for f in os.listdir(workdir) if f.endswith(('.md', '.json', '.png'))
                   and f != 'config.json')
  print(f'experiment {name}: ' + ', '.join(os.path.join(workdir, f) for f in written))
