"""A Table I baseline as a model of the codebase: fitted on a run's training split (on the grid and
normalisation RS-Net would read), saved in ``WORKDIR/baseline/``, restored, and called on examples
of `pipeline.load_case` like RS-Net's deterministic forward.

  ``WORKDIR/baseline/<variant>.joblib``   REPLICA: the scikit-learn forest (joblib: load only
                                          files you made; a pickle runs code)
  ``WORKDIR/baseline/<variant>.msgpack``  LSDN, 2D CNN: the Flax parameters
  ``WORKDIR/baseline/baseline.json``      what was fitted: variant, its config, cases, seconds
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import os
import time
from typing import Any

from absl import logging
import flax
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import tqdm

from rsnet_jax.baselines import cnn2d
from rsnet_jax.baselines import lsdn
from rsnet_jax.baselines import replica
from rsnet_jax.data import grid
from rsnet_jax.data import layouts
from rsnet_jax.data import pipeline
from rsnet_jax.errors import UserError
from rsnet_jax.runtime import files

FOLDER = 'baseline'
MODULES = {'replica': replica, 'lsdn': lsdn, 'cnn2d': cnn2d}  # each: fit, predict


@dataclasses.dataclass
class Baseline:
  """A fitted baseline: ``state`` is REPLICA's forest or the network's parameters."""
  variant: str
  config: ml_collections.ConfigDict  # config.baseline[variant]
  state: Any

  def __call__(self, example: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """``{'synthesis': [D, H, W, 1] float32}`` for one example (no batch axis), 0 outside the
    brain."""
    return {'synthesis': MODULES[self.variant].predict(self.state, self.config, example)}


def check(config: ml_collections.ConfigDict) -> None:
  """Refuses what a baseline cannot do, before any case is read."""
  variant = config.model.variant
  if jax.process_count() > 1:
    raise UserError(f'{variant} fits on one host: run it as one process (no SLURM/MPI tasks)')
  if config.model.get('ensemble_size', 1) > 1 or config.predict.num_mc_samples > 0:
    raise UserError(f'{variant} is deterministic: model.ensemble_size 1 and '
                    'predict.num_mc_samples 0')
  if variant == 'replica':
    try:
      importlib.import_module('sklearn')
    except ImportError as e:
      raise UserError("REPLICA's forests need scikit-learn: pip install "
                      "'rsnet_jax[baselines]'") from e


def _path(workdir: str, variant: str) -> str:
  ext = 'joblib' if variant == 'replica' else 'msgpack'
  return os.path.join(workdir, FOLDER, f'{variant}.{ext}')


def load_examples(cases: list[layouts.CaseFiles], task: pipeline.Task,
                  desc: str = 'read') -> list[dict[str, np.ndarray]]:
  """The cases as `pipeline.load_case` reads them for evaluation (the whole brain), with target."""
  return [pipeline.load_case(c, task, whole_brain=True)[0]
          for c in tqdm.tqdm(cases, desc=desc, unit='case')]


def fit(config: ml_collections.ConfigDict, task: pipeline.Task,
        train_cases: list[layouts.CaseFiles]) -> Baseline:
  """``config.model.variant`` fitted on ``train_cases`` with key/seed ``config.seed``."""
  variant = config.model.variant
  c = config.baseline[variant]
  examples = load_examples(train_cases, task, f'{variant}: read')
  seed = config.seed if variant == 'replica' else jax.random.key(config.seed)  # sklearn: an int
  return Baseline(variant, c, MODULES[variant].fit(c, examples, seed))


def save(baseline: Baseline, workdir: str, record: dict) -> None:
  """The fitted state into ``WORKDIR/baseline/`` and ``record`` into its ``baseline.json``."""
  path = _path(workdir, baseline.variant)
  os.makedirs(os.path.dirname(path), exist_ok=True)
  if baseline.variant == 'replica':
    import joblib  # pylint: disable=g-import-not-at-top  (scikit-learn's)
    with files.atomic_path(path) as tmp:
      joblib.dump(baseline.state, tmp)
  else:
    with files.atomic_write(path, 'wb') as f:
      f.write(flax.serialization.to_bytes(baseline.state))
  files.write_json(os.path.join(workdir, FOLDER, 'baseline.json'), record)


def _template(config: ml_collections.ConfigDict, task: pipeline.Task):
  """The parameters' structure (shapes only) of the network of ``config.model.variant``."""
  c = config.baseline[config.model.variant]
  if config.model.variant == 'lsdn':
    patch = jnp.zeros((1, len(task.inputs) * c.patch ** 3))
    return jax.eval_shape(lsdn.LSDN(c.hidden).init, jax.random.key(0), patch, jnp.zeros((1, 3)))
  x = jnp.zeros((1, task.multiple, task.multiple, len(task.inputs)))
  return jax.eval_shape(cnn2d.CNN2D(c.features, c.latent).init, jax.random.key(0), x)


def restore(config: ml_collections.ConfigDict, workdir: str, task: pipeline.Task) -> Baseline:
  """The baseline `train` saved in ``workdir``.

  Raises:
    UserError: nothing saved there for this variant.
  """
  variant = config.model.variant
  path = _path(workdir, variant)
  if not os.path.exists(path):
    raise UserError(f'{path}: no fitted {variant} here; train it first (--mode train)')
  if variant == 'replica':
    import joblib  # pylint: disable=g-import-not-at-top
    state = joblib.load(path)
  else:
    with open(path, 'rb') as f:
      state = flax.serialization.from_bytes(_template(config, task), f.read())
  return Baseline(variant, config.baseline[variant], state)


def train(config: ml_collections.ConfigDict, workdir: str,
          splits: dict[str, list[layouts.CaseFiles]]) -> Baseline:
  """Fits and saves the baseline on ``splits['train']``, or restores the one a previous run of the
  same config saved (a rerun only evaluates again)."""
  check(config)
  task = grid.record(config, workdir, pipeline.Task.from_config(config), splits['train'])
  variant = config.model.variant
  record = json.loads(json.dumps({
      'variant': variant, 'config': config.baseline[variant].to_dict(), 'seed': config.seed,
      'inputs': list(task.inputs), 'target': task.target, 'normalization': task.normalization,
      'spacing_mm': list(task.spacing or ()),
      'train_cases': [c.case_id for c in splits['train']]}))
  saved_path = os.path.join(workdir, FOLDER, 'baseline.json')
  saved = None
  if os.path.exists(saved_path):
    with open(saved_path) as f:
      saved = json.load(f)
  if os.path.exists(_path(workdir, variant)) and saved and all(
      saved.get(k) == v for k, v in record.items()):
    logging.info('%s: fitted before in %s, reused', variant, workdir)
    return restore(config, workdir, task)
  start = time.time()
  baseline = fit(config, task, splits['train'])
  record['fit_seconds'] = round(time.time() - start, 1)
  save(baseline, workdir, record)
  print(f'{variant}: fitted on {len(splits["train"])} cases in {record["fit_seconds"]:.0f} s')
  return baseline
