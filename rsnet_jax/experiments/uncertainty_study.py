"""The MC-dropout uncertainty study over a split (``--mode uncertainty``).

Per case (voxels of the brain): MSE, Spearman of the synthesis variance with the squared error,
AUSE, mean variance in healthy brain and in the tumour regions (WT/TC/ET); for the segmentation
head ECE, mean entropy / mutual information per region and the QU-BraTS score per region
(`metrics.qu_brats`, from the maps `predict` writes); also the synthesis' PSNR, the fraction of
voxels whose error lies within 1 and 2 predicted std, Dice and the Brier score. Written to ``OUT``:
  ``NAME.md``, ``NAME.json``          a row per case, then mean +- std (`report.write_tables`)
  ``NAME_overall.json``               pooled reliability bins and ECE, the mean sparsification curves
  ``fig3_<case>.png``                 the paper's Fig. 3 (real, MC mean, MC variance), one column per
                                      target: this model's and those of ``uncertainty.other_models``
  ``sparsification.png``, ``reliability.png``
"""

from __future__ import annotations

import json
import os

import jax
import ml_collections
import numpy as np
import tqdm

from rsnet_jax.data import layouts
from rsnet_jax.data import pipeline
from rsnet_jax.errors import UserError
from rsnet_jax.evaluation import calibration
from rsnet_jax.evaluation import metrics
from rsnet_jax.evaluation import report
from rsnet_jax.inference import forward_pass
from rsnet_jax.inference import predict
from rsnet_jax.inference import uncertainty
from rsnet_jax.runtime import files
from rsnet_jax.training import checkpoints
from rsnet_jax.training import train

FIG3_ORDER = ('t1', 't2', 't1ce', 'flair')  # the paper's columns


def case_measures(example: dict[str, np.ndarray], out: dict[str, np.ndarray],
                  num_bins: int) -> tuple[dict[str, float], dict | None, dict | None]:
  """The study's numbers for one case (no batch axis).

  Returns:
    ``(row, sparsification curves or None, reliability bins or None, QU-BraTS curves per region
    or None)``.
  """
  brain = example['brain'] > 0
  regions = {'brain': brain}
  if 'labels' in example:
    labels = example['labels']
    regions['healthy'] = brain & (labels == 0)
    regions.update({name: np.isin(labels, idx) for name, idx in metrics.REGIONS.items()})
  row, curves, bins, qu = {}, None, None, None
  if 'synthesis_variance' in out and 'target' in example:
    variance = out['synthesis_variance'][..., 0]
    squared_error = (example['target'][..., 0] - out['synthesis'][..., 0])**2
    row['mse_brain'] = float(squared_error[brain].mean(dtype=np.float64))
    row['spearman_var_sqerr'] = calibration.spearman(variance[brain], squared_error[brain])
    curves = calibration.sparsification(variance[brain], squared_error[brain])
    row['ause'] = curves['ause']
    row.update({f'variance_{k}': v for k, v in calibration.region_means(variance, regions).items()})
    row['psnr_brain'] = metrics.psnr(example['target'][..., 0], out['synthesis'][..., 0], brain)
    error, std = np.sqrt(squared_error[brain]), np.sqrt(variance[brain])
    row['within_1std'] = float(np.mean(error <= std))  # a Gaussian's would be 0.68
    row['within_2std'] = float(np.mean(error <= 2 * std))  # and 0.95
  if 'entropy' in out and 'labels' in example:
    bins = calibration.reliability_bins(out['probabilities'][brain], example['labels'][brain],
                                        num_bins)
    row['ece_brain'] = calibration.expected_calibration_error(bins)
    for name in ('entropy', 'mutual_information'):
      row.update({f'{name}_{k}': v for k, v in
                  calibration.region_means(out[name], regions).items()})
    qu = qu_brats_curves(example, out)
    thresholds = metrics.qu_brats_thresholds()
    row.update({f'qu_{name}_score': metrics.qu_brats_areas(c, thresholds)['score']
                for name, c in qu.items()})
    row.update({f'dice_{k}': v for k, v in metrics.brats_dice(
        example['labels'], np.argmax(out['probabilities'], -1)).items()})
    onehot = np.eye(out['probabilities'].shape[-1])[example['labels'][brain]]
    row['brier_brain'] = float(np.mean(np.sum((out['probabilities'][brain] - onehot)**2, -1)))
  return row, curves, bins, qu


def qu_brats_curves(example: dict[str, np.ndarray],
                    out: dict[str, np.ndarray]) -> dict[str, dict[str, np.ndarray]]:
  """One case's QU-BraTS curves per region (`metrics.qu_brats_curves` on the brain)."""
  prediction = np.argmax(out['probabilities'], -1)
  return {name: metrics.qu_brats_curves(
      np.isin(example['labels'], idx), np.isin(prediction, idx),
      uncertainty.region_uncertainty(out['probabilities'], idx), example['brain'] > 0,
      metrics.qu_brats_thresholds()) for name, idx in metrics.REGIONS.items()}


def load_model(workdir: str) -> tuple[pipeline.Task, train.TrainState]:
  """The task and restored checkpoint of a training workdir (from its ``config.json``)."""
  path = os.path.join(workdir, 'config.json')
  try:
    with open(path) as f:
      config = ml_collections.ConfigDict(json.load(f))
  except (OSError, ValueError) as e:
    raise UserError(f'{path}: cannot read the config of a training workdir ({e})') from None
  task = pipeline.Task.from_config(config)
  if task.target is None:
    raise UserError(f'{path}: an S-Net synthesizes nothing; give synthesis models only')
  state = train.abstract_train_state(config, task)
  state, _ = checkpoints.restore_params(workdir, config, state, config.predict.checkpoint)
  return task, state


def _mc_forward(config: ml_collections.ConfigDict, apply_fn):
  return forward_pass.MCForward(config, apply_fn, config.uncertainty.num_mc_samples)


def study_cases(config: ml_collections.ConfigDict, params, apply_fn, task: pipeline.Task,
                cases: list[layouts.CaseFiles], out_dir: str, name: str,
                key: jax.Array) -> dict:
  """Runs the study on ``cases`` with ``config.uncertainty.num_mc_samples`` MC samples per case
  (case ``c`` uses ``predict.case_key(key, c)``), pooled with the ``predict.tta`` views; writes
  tables and figures into ``out_dir``.

  Returns ``{'summary': {metric: {'mean', 'std'}}, 'overall': {...}}``.
  """
  num_bins = config.uncertainty.num_bins
  fn, views = _mc_forward(config, apply_fn), predict.tta_mode(config)
  others = []
  for workdir in config.uncertainty.other_models:
    other_task, state = load_model(workdir)  # sampled with this run's N and chunking
    others.append((other_task, state.params, _mc_forward(config, state.apply_fn)))
  per_case, all_curves, pooled, qu_curves = {}, {}, None, {}
  for case in tqdm.tqdm(cases, desc=f'uncertainty {name}', unit='case'):
    example, _ = pipeline.load_case(case, task)
    case_key = predict.case_key(key, case.case_id)
    out = predict.predict_example(fn, params, example, case_key, tta_mode=views)
    row, curves, bins, qu = case_measures(example, out, num_bins)
    per_case[case.case_id] = row
    if curves is not None:
      all_curves[case.case_id] = curves
      columns = {task.target: (example['target'][..., 0], out['synthesis'][..., 0],
                               out['synthesis_variance'][..., 0])}
      for other_task, other_params, other_fn in others:
        other_example, _ = pipeline.load_case(case, other_task)
        other = predict.predict_example(other_fn, other_params, other_example, case_key,
                                        tta_mode=views)
        columns[other_task.target] = (other_example['target'][..., 0], other['synthesis'][..., 0],
                                      other['synthesis_variance'][..., 0])
      report.uncertainty_figure(
          [(t, *columns[t]) for t in sorted(columns, key=FIG3_ORDER.index)],
          report.tumour_slice(example), os.path.join(out_dir, f'fig3_{case.case_id}.png'),
          title=case.case_id)
    if bins is not None:
      pooled = bins if pooled is None else {k: pooled[k] + bins[k] for k in bins}
    if qu is not None:
      qu_curves[case.case_id] = qu

  summary = report.write_tables(per_case, out_dir, name)
  overall = {'num_cases': len(cases), 'num_mc_samples': config.uncertainty.num_mc_samples,
             'tta': views, 'xla_plan_bytes': max(fn.plans.values(), default=0)}
  if all_curves:
    mean = {k: np.mean([c[k] for c in all_curves.values()], 0) for k in ('curve', 'oracle')}
    mean['fractions'] = calibration.FRACTIONS
    mean['ause'] = float(np.trapezoid(mean['curve'] - mean['oracle'], mean['fractions']))
    overall['sparsification_mean'] = {k: np.asarray(v).tolist() for k, v in mean.items()}
    report.sparsification_plot(mean, list(all_curves.values()),
                               os.path.join(out_dir, 'sparsification.png'))
  if pooled is not None:
    overall['ece_pooled'] = calibration.expected_calibration_error(pooled)
    overall['reliability_bins'] = {k: v.tolist() for k, v in pooled.items()}
    report.reliability_plot(pooled, overall['ece_pooled'],
                            os.path.join(out_dir, 'reliability.png'))
  if qu_curves:
    overall['qu_brats_thresholds'] = metrics.qu_brats_thresholds().tolist()
    overall['qu_brats_curves'] = {
        region: {k: np.mean([c[region][k] for c in qu_curves.values()], 0).tolist()
                 for k in ('dice', 'ftp_ratio', 'ftn_ratio')}
        for region in metrics.REGIONS}
  files.write_json(os.path.join(out_dir, f'{name}_overall.json'), overall)
  return {'summary': summary, 'overall': overall}
