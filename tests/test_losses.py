"""Eqs. 1-4: class weights and their decay, W-MSE, W-CCE, the combined loss."""

import jax
import jax.numpy as jnp
import numpy as np

from rsnet_jax.model import losses


def test_class_weights_formula_and_decay():
  counts = np.array([90, 6, 3, 1])  # sum 100
  ratios = losses.class_frequency_ratios(counts)
  np.testing.assert_allclose(ratios, [100 / 90, 100 / 6, 100 / 3, 100.0], rtol=1e-6)
  w0 = losses.class_weights(ratios, rep=0.5, decay_rate=0.5, epoch=0)
  np.testing.assert_allclose(w0, [100 / 90 * 0.5 + 1, 100 / 6 * 0.5 + 1, 100 / 3 * 0.5 + 1, 51.0],
                             rtol=1e-6)
  w2 = losses.class_weights(ratios, rep=0.5, decay_rate=0.5, epoch=2)
  np.testing.assert_allclose(w2, np.asarray(ratios) * 0.5 * 0.25 + 1, rtol=1e-6)
  late = losses.class_weights(ratios, rep=0.5, decay_rate=0.5, epoch=200)
  np.testing.assert_allclose(late, 1.0, atol=1e-6)


def test_absent_class_gets_weight_one():
  ratios = losses.class_frequency_ratios(np.array([10, 0, 5, 5]))
  w = losses.class_weights(ratios, 1.0, 0.9, 0)
  assert float(w[1]) == 1.0 and float(w[0]) == 3.0


def test_weighted_mse_by_hand():
  pred = jnp.array([[1.0, 2.0, 3.0, 4.0]])
  target = jnp.array([[1.0, 0.0, 0.0, 2.0]])
  labels = jnp.array([[0, 1, 2, 0]])
  weights = jnp.array([1.0, 2.0, 3.0])
  # (0*1 + 4*2 + 9*3 + 4*1) / 4
  np.testing.assert_allclose(losses.weighted_mse(pred, target, labels, weights), 39 / 4)
  mask = jnp.array([[1, 1, 0, 0]])
  np.testing.assert_allclose(losses.weighted_mse(pred, target, labels, weights, mask), 8 / 2)


def test_weighted_cce_by_hand():
  logits = jnp.log(jnp.array([[[0.5, 0.5], [0.25, 0.75]]]))
  labels = jnp.array([[0, 1]])
  weights = jnp.array([2.0, 4.0])
  expected = (2 * -np.log(0.5) + 4 * -np.log(0.75)) / 2
  np.testing.assert_allclose(losses.weighted_cce(logits, labels, weights), expected, rtol=1e-6)


def test_combined_loss_uses_lambdas_and_present_heads():
  labels = jnp.zeros((1, 2, 2, 2), jnp.int32)
  out = {'synthesis': jnp.ones((1, 2, 2, 2, 1)), 'logits': jnp.zeros((1, 2, 2, 2, 2))}
  target = jnp.zeros((1, 2, 2, 2, 1))
  w = jnp.ones(2)
  loss, parts = losses.rsnet_loss(out, target, labels, w, 1.0, 0.1)
  np.testing.assert_allclose(parts['wmse'], 1.0)
  np.testing.assert_allclose(parts['wcce'], np.log(2), rtol=1e-6)
  np.testing.assert_allclose(loss, 1.0 + 0.1 * np.log(2), rtol=1e-6)
  loss_s, parts_s = losses.rsnet_loss({'logits': out['logits']}, None, labels, w, 1.0, 0.1)
  assert set(parts_s) == {'wcce', 'loss'}
  np.testing.assert_allclose(loss_s, 0.1 * np.log(2), rtol=1e-6)
  assert jax.grad(lambda s: losses.weighted_mse(s, target, labels, w))(out['synthesis']).shape == (
      1, 2, 2, 2, 1)


def test_soft_dice_by_hand_and_its_mask():
  """Two voxels, two classes: p = (0.8, 0.2) on a class-0 voxel and (0.4, 0.6) on a class-1 one;
  per class Dice 2 sum(p y) / (sum p + sum y), averaged over classes; a masked-out voxel counts
  for nothing; a perfect prediction scores 0."""
  logits = jnp.log(jnp.array([[[0.8, 0.2], [0.4, 0.6], [0.1, 0.9]]]))
  labels = jnp.array([[0, 1, 0]])
  mask = jnp.array([[1, 1, 0]])
  dice0 = 2 * 0.8 / ((0.8 + 0.4) + 1)
  dice1 = 2 * 0.6 / ((0.2 + 0.6) + 1)
  np.testing.assert_allclose(losses.soft_dice(logits, labels, mask),
                             1 - (dice0 + dice1) / 2, rtol=1e-5)
  assert float(losses.soft_dice(logits, labels)) > float(losses.soft_dice(logits, labels, mask))
  np.testing.assert_allclose(losses.soft_dice(100 * jax.nn.one_hot(labels, 2), labels), 0.0,
                             atol=1e-6)


def test_dice_term_is_off_by_default_and_added_with_its_weight():
  labels = jnp.array([[[[0, 1]]]])
  out = {'logits': jnp.zeros((1, 1, 1, 2, 2))}
  w = jnp.ones(2)
  loss, parts = losses.rsnet_loss(out, None, labels, w, 0.1, 1.0)
  assert 'dice' not in parts
  loss_d, parts_d = losses.rsnet_loss(out, None, labels, w, 0.1, 1.0, lambda_dice=0.5)
  np.testing.assert_allclose(parts_d['dice'], 0.5, rtol=1e-5)  # p = 0.5 everywhere
  np.testing.assert_allclose(loss_d, loss + 0.25, rtol=1e-5)
