"""Training works: each variant overfits two tiny synthetic cases (paper eq. 4's losses, the train
step, the label mapping and the deterministic evaluation pass all have to be right for that).

Not timing tests: the step counts leave a margin, and a broken loss sign, a wrong label mapping or
dropout left on in evaluation makes them fail.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rsnet_jax.data import layouts
from rsnet_jax.data import pipeline
from rsnet_jax.data import synthetic
from rsnet_jax.evaluation import metrics
from rsnet_jax.inference import forward_pass
from rsnet_jax.model import losses
from rsnet_jax.training import train
from tests.conftest import tiny_config

# 125 per case. `_overfit` measured (2026-11-28, under this suite's XLA flags) at 250 steps: WT Dice
# 0.970-0.983 (the variants with a segmentation head) and the synthesis MSE 19-26x lower (those with
# a regression head); at 400 steps, before the tests compiled with XLA:CPU's loop emitters,
# 0.995-1.0 and 24-36x.
NUM_STEPS = 250
# Cases on a 32^3 grid (7.5 mm voxels: a tumour of a few hundred voxels), cropped to 16^3 around the
# brain (mostly brain, as the paper's crop is).
OVERRIDES = {'model.base_filters': 4, 'optim.learning_rate': 3e-3, 'optim.warmup_steps': 20,
             'optim.schedule': 'cosine', 'loss.decay_rate': 0.9, 'data.crop_shape': (16, 16, 16)}


@pytest.fixture(scope='module')
def two_cases(tmp_path_factory):
  out = tmp_path_factory.mktemp('two_cases')
  synthetic.generate_dataset(str(out), 2, seed=7, layout='brats2021', shape=(32, 32, 32))
  return layouts.discover(str(out))


def _overfit(cases, variant: str):
  """Trains ``variant`` on ``cases``; returns the examples and the deterministic predictions before
  and after training."""
  config = tiny_config(**OVERRIDES, **{'model.variant': variant})
  task = pipeline.Task.from_config(config)
  examples = [pipeline.load_case(c, task)[0] for c in cases]
  ratios = losses.class_frequency_ratios(pipeline.label_voxel_counts(
      cases, config.model.num_classes))
  step = jax.jit(functools.partial(train.train_step, config=config, class_ratios=ratios,
                                   steps_per_epoch=len(cases)))
  state = train.create_train_state(config, task, jax.random.key(0), num_steps=NUM_STEPS)
  batches = [jax.tree.map(lambda a: jnp.asarray(a)[None], e) for e in examples]
  forward = jax.jit(functools.partial(forward_pass.forward, apply_fn=state.apply_fn,
                                      num_mc_samples=0))
  first = [forward(state.params, b, None) for b in batches]
  for i in range(NUM_STEPS):
    state, _ = step(state, batches[i % len(batches)], jax.random.key(1))
  last = [forward(state.params, b, None) for b in batches]
  return examples, first, last


def _mse(example, out):
  brain = example['brain'] > 0
  return float(np.mean((np.asarray(out['synthesis'][0, ..., 0]) - example['target'][..., 0])[brain]
                       ** 2))


def _whole_tumour_dice(example, out):
  labels = np.argmax(np.asarray(out['probabilities'][0]), -1)
  return metrics.brats_dice(example['labels'], labels)['WT']


@pytest.mark.slow
@pytest.mark.parametrize('variant', ['rsnet', 'rnet', 'snet'])
def test_each_variant_overfits_two_cases(two_cases, variant):
  examples, first, last = _overfit(two_cases, variant)
  for example, before, after in zip(examples, first, last):
    if variant != 'snet':
      assert _mse(example, after) < _mse(example, before) / 10, (
          _mse(example, before), _mse(example, after))
    if variant != 'rnet':
      assert _whole_tumour_dice(example, after) >= 0.9, _whole_tumour_dice(example, after)
