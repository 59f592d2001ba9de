"""Training: a step lowers the loss, the same seed gives the same parameters, checkpoints round-trip."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rsnet_jax.data import layouts
from rsnet_jax.data import pipeline
from rsnet_jax.errors import UserError
from rsnet_jax.model import losses
from rsnet_jax.training import checkpoints
from rsnet_jax.training import train
from tests.conftest import tiny_config


def _setup(tiny_dataset, **overrides):
  config = tiny_config(**overrides)
  task = pipeline.Task.from_config(config)
  cases = layouts.discover(tiny_dataset)
  ratios = jnp.asarray(losses.class_frequency_ratios(
      pipeline.label_voxel_counts(cases, config.model.num_classes)))
  step = jax.jit(functools.partial(train.train_step, config=config, class_ratios=ratios,
                                   steps_per_epoch=len(cases)))
  return config, task, cases, step


def _train(config, task, cases, step, num_steps):
  state = train.create_train_state(config, task, jax.random.key(config.seed))
  batches = pipeline.to_iterator(pipeline.train_dataset(cases, task, 1, 10, config.seed), 0)
  history = []
  for _ in range(num_steps):
    state, parts = step(state, next(batches), jax.random.key(1))
    history.append(float(parts['loss']))
  return state, history


def test_train_steps_lower_the_loss_on_a_tiny_case(tiny_dataset):
  config, task, cases, step = _setup(tiny_dataset, **{'optim.learning_rate': 3e-3})
  cases = cases[:1]
  state = train.create_train_state(config, task, jax.random.key(0))
  batch = jax.tree.map(lambda a: a[None], pipeline.load_case(cases[0], task)[0])
  loss = jax.jit(lambda params: train._loss(params, state.apply_fn, batch, jnp.ones(4), config,
                                            False)[0])
  before = loss(state.params)
  state, _ = step(state, batch, jax.random.key(1))
  after_one = loss(state.params)
  for _ in range(59):
    state, _ = step(state, batch, jax.random.key(1))
  after = loss(state.params)
  assert float(after_one) < float(before)
  assert float(after) < 0.8 * float(before), (float(before), float(after))


def test_same_seed_gives_identical_parameters(tiny_dataset):
  config, task, cases, step = _setup(tiny_dataset)
  a, _ = _train(config, task, cases, step, 3)
  b, _ = _train(config, task, cases, step, 3)
  for x, y in zip(jax.tree.leaves(a.params), jax.tree.leaves(b.params)):
    np.testing.assert_array_equal(x, y)
  config.seed = 1
  c, _ = _train(config, task, cases, step, 3)
  assert any(not np.array_equal(x, y) for x, y in
             zip(jax.tree.leaves(a.params), jax.tree.leaves(c.params)))


def test_checkpoint_round_trip(tiny_dataset, tmp_path):
  config, task, cases, step = _setup(tiny_dataset)
  state, _ = _train(config, task, cases, step, 2)
  manager = checkpoints.checkpoint_manager(str(tmp_path), config)
  import orbax.checkpoint as ocp  # pylint: disable=g-import-not-at-top
  manager.save(2, args=ocp.args.Composite(state=ocp.args.StandardSave(state)),
               metrics={'val_loss': 0.5})
  manager.wait_until_finished()
  template = train.create_train_state(config, task, jax.random.key(99))
  restored, restored_step = checkpoints.restore_params(str(tmp_path), config, template, 'best')
  assert restored_step == 2 and int(restored.step) == 2
  for x, y in zip(jax.tree.leaves((state.params, state.opt_state)),
                  jax.tree.leaves((restored.params, restored.opt_state))):
    np.testing.assert_array_equal(x, y)


def test_best_checkpoint_is_lowest_validation_loss(tiny_dataset, tmp_path):
  import orbax.checkpoint as ocp  # pylint: disable=g-import-not-at-top
  config, task, _, _ = _setup(tiny_dataset, **{'train.max_checkpoints': 1})
  state = train.create_train_state(config, task, jax.random.key(0))
  manager = checkpoints.checkpoint_manager(str(tmp_path), config)
  for s, loss in [(1, 0.9), (2, 0.2), (3, 0.5), (4, 0.7)]:
    manager.save(s, args=ocp.args.Composite(state=ocp.args.StandardSave(state)),
                 metrics={'val_loss': loss})
  manager.wait_until_finished()
  assert sorted(manager.all_steps()) == [2, 4]  # the best and the latest are kept
  assert checkpoints.restore_params(str(tmp_path), config, state, 'best')[1] == 2
  assert checkpoints.restore_params(str(tmp_path), config, state, 'latest')[1] == 4


def test_best_falls_back_to_latest_without_validation(tiny_dataset, tmp_path):
  import orbax.checkpoint as ocp  # pylint: disable=g-import-not-at-top
  config, task, _, _ = _setup(tiny_dataset)
  state = train.create_train_state(config, task, jax.random.key(0))
  manager = checkpoints.checkpoint_manager(str(tmp_path), config)
  for s in (1, 2):
    manager.save(s, args=ocp.args.Composite(state=ocp.args.StandardSave(state)))
  manager.wait_until_finished()
  assert checkpoints.restore_params(str(tmp_path), config, state, 'best')[1] == 2


def test_brain_region_counts_only_brain_voxels(tiny_dataset):
  config, task, cases, _ = _setup(tiny_dataset)
  state = train.create_train_state(config, task, jax.random.key(0))
  batch = jax.tree.map(lambda a: a[None], pipeline.load_case(cases[0], task)[0])
  outside = batch['brain'] == 0
  assert outside.any() and (~outside).any()
  changed = dict(batch, labels=np.where(outside, 3, batch['labels']),
                 target=np.where(outside[..., None], 5.0, batch['target']))
  loss = lambda b, region: float(train._loss(state.params, state.apply_fn, b, jnp.ones(4),
                                             tiny_config(**{'loss.region': region}), False)[0])
  # Labels and targets outside the brain do not count with 'brain', they do with 'volume'.
  assert loss(changed, 'brain') == loss(batch, 'brain')
  assert loss(changed, 'volume') > loss(batch, 'volume')
  with pytest.raises(UserError, match='loss.region'):
    loss(batch, 'skull')


def test_dice_term_reaches_the_training_loss_and_its_gradient(tiny_dataset):
  """``loss.lambda_dice``: the loss grows by the weighted soft Dice of the same logits, whose
  gradient reaches the segmentation head and not the synthesis head."""
  config, task, cases, _ = _setup(tiny_dataset)
  with_dice = tiny_config(**{'loss.lambda_dice': 0.5})
  state = train.create_train_state(config, task, jax.random.key(0))
  batch = jax.tree.map(lambda a: a[None], pipeline.load_case(cases[0], task)[0])
  plain, (parts, outputs) = train._loss(state.params, state.apply_fn, batch, jnp.ones(4), config,
                                        False)
  dice, (parts_d, _) = train._loss(state.params, state.apply_fn, batch, jnp.ones(4), with_dice,
                                   False)
  assert 'dice' not in parts and 0 < float(parts_d['dice']) < 1
  np.testing.assert_allclose(float(dice), float(plain) + 0.5 * float(parts_d['dice']), rtol=1e-5)
  grad = lambda c: jax.grad(lambda p: train._loss(p, state.apply_fn, batch, jnp.ones(4), c,
                                                   False)[0])(state.params)
  a, b = grad(config), grad(with_dice)
  assert not np.allclose(a['segmentation']['Conv_3']['kernel'],
                         b['segmentation']['Conv_3']['kernel'])
  np.testing.assert_array_equal(a['regression']['Conv_3']['kernel'],
                                b['regression']['Conv_3']['kernel'])  # the synthesis head: no


@pytest.mark.parametrize('variant', ['rsnet', 'snet', 'anyseq'])
def test_abstract_state_has_the_shapes_and_dtypes_of_a_created_one(variant):
  config = tiny_config(**{'model.variant': variant})
  task = pipeline.Task.from_config(config)
  abstract = train.abstract_train_state(config, task)
  created = train.create_train_state(config, task, jax.random.key(3))
  leaves = lambda state: jax.tree_util.tree_leaves_with_path(state)
  assert [path for path, _ in leaves(abstract)] == [path for path, _ in leaves(created)]
  for (_, a), (_, c) in zip(leaves(abstract), leaves(created)):
    assert isinstance(a, jax.ShapeDtypeStruct)
    assert (a.shape, a.dtype) == (jnp.shape(c), jnp.asarray(c).dtype)
  assert train.checkpoint_bytes(config, task) == sum(
      x.size * x.dtype.itemsize for x in jax.tree.leaves(abstract))
