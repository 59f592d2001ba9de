"""What the protocols share: the names of sequences and models, a protocol's model (trained or
resumed, with a jitted deterministic forward), the held-out split and per-row summaries."""

from __future__ import annotations

import functools
import os

import jax
import ml_collections
import numpy as np

from rsnet_jax import baselines
from rsnet_jax.baselines import fitted
from rsnet_jax.data import grid
from rsnet_jax.data import pipeline
from rsnet_jax.data import preprocess
from rsnet_jax.evaluation import metrics
from rsnet_jax.evaluation import report
from rsnet_jax.inference import forward_pass
from rsnet_jax.inference import predict
from rsnet_jax.runtime import compile_options
from rsnet_jax.training import checkpoints
from rsnet_jax.training import train

NAMES = {'t1': 'T1', 't2': 'T2', 'flair': 'FLAIR', 't1ce': 'T1ce'}
VARIANT_NAMES = {'rsnet': 'RS-Net', 'rnet': 'R-Net', 'snet': 'S-Net', 'anyseq': 'anyseq',
                 **baselines.NAMES}


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
    state, _ = checkpoints.restore_params(workdir, config, state, 'best')
    self.params = state.params
    self._window = predict.crop_window(self.task)
    self._fn = jax.jit(functools.partial(forward_pass.forward, apply_fn=state.apply_fn,
                                         num_mc_samples=0,
                                         members=forward_pass.ensemble_size(config)),
                       compiler_options=compile_options.for_backend())

  def load(self, case) -> tuple[dict[str, np.ndarray], pipeline.CaseMeta]:
    """The case as `evaluate` reads it: a brain larger than the crop whole, for the sliding
    window of `__call__` to cover."""
    return pipeline.load_case(case, self.task, whole_brain=True)

  def __call__(self, example: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return predict.predict_example(self._fn, self.params, example, window=self._window)


class Baseline:
  """A Table I baseline of a protocol, fitted (or restored) like `Model` and called the same way."""

  def __init__(self, config: ml_collections.ConfigDict, workdir: str,
               splits: dict[str, list]):
    os.makedirs(workdir, exist_ok=True)
    self._model = fitted.train(config, workdir, splits)
    self.task = grid.on_model_grid(config, workdir, pipeline.Task.from_config(config))

  def load(self, case) -> tuple[dict[str, np.ndarray], pipeline.CaseMeta]:
    return pipeline.load_case(case, self.task, whole_brain=True)

  def __call__(self, example: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return self._model(example)


def protocol_model(config: ml_collections.ConfigDict, workdir: str,
                   splits: dict[str, list]) -> Model | Baseline:
  """The trained model of ``config.model.variant``: a network or a Table I baseline."""
  if config.model.variant in baselines.VARIANTS:
    return Baseline(config, workdir, splits)
  return Model(config, workdir, splits)


def full(volume: np.ndarray, meta: pipeline.CaseMeta) -> np.ndarray:
  """A network-grid volume back on the case's whole (canonical) grid."""
  return preprocess.restore(volume, meta.starts, meta.shape)


def segmentation_scores(truth: np.ndarray, probabilities: np.ndarray,
                         spacing: tuple[float, ...]) -> dict[str, float]:
  pred = np.argmax(probabilities, -1)
  row = {f'dice_{k}': v for k, v in metrics.brats_dice(truth, pred).items()}
  row.update({f'hd95_{k}': v for k, v in metrics.brats_hd95(truth, pred, spacing).items()})
  return row


def label(variant: str, target: str) -> str:
  return f'{target} {VARIANT_NAMES[variant]}'


def held_out(splits: dict[str, list]) -> tuple[str, list]:
  name = 'test' if splits['test'] else 'val'
  return name, splits[name]


def summarize(per_case: dict[str, dict[str, dict[str, float]]]) -> dict:
  rows = {r for case in per_case.values() for r in case}
  summary = {}
  for row in sorted(rows):
    values = [case[row] for case in per_case.values() if row in case]
    summary[row] = {}
    for metric in sorted({k for v in values for k in v}):
      m, s = report.mean_std([v[metric] for v in values if metric in v])
      summary[row][metric] = {'mean': m, 'std': s}
  return summary
