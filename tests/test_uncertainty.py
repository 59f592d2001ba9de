"""MC dropout: the same samples and statistics in a loop, one vmap or chunks; BALD by hand."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rsnet_jax.inference import forward_pass
from rsnet_jax.inference import uncertainty
from rsnet_jax.model import models


def _toy(key):
  return {'a': jax.random.normal(key, (3, 4)), 'b': jax.random.uniform(key, (2,))}


def _loop(sample_fn, key, n):
  samples = [jax.jit(sample_fn)(k) for k in jax.random.split(key, n)]
  return {name: (np.mean([s[name] for s in samples], 0), np.var([s[name] for s in samples], 0))
          for name in samples[0]}


@pytest.mark.parametrize('chunk', [None, 1, 3, 4, 7])
def test_chunked_equals_loop(chunk):
  key = jax.random.key(3)
  expected = _loop(_toy, key, 7)
  got = jax.jit(functools.partial(uncertainty.mc_dropout, _toy, num_samples=7,
                                  chunk_size=chunk))(key)
  for name, (mean, var) in expected.items():
    np.testing.assert_allclose(got['mean'][name], mean, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(got['variance'][name], var, rtol=1e-5, atol=1e-6)


def test_same_chunking_is_bit_identical_and_variance_can_be_limited():
  key = jax.random.key(0)
  run = jax.jit(functools.partial(uncertainty.mc_dropout, _toy, num_samples=6, chunk_size=4,
                                  variance_of=('a',)))
  a, b = run(key), run(key)
  for name in a['mean']:
    np.testing.assert_array_equal(a['mean'][name], b['mean'][name])
  assert set(a['variance']) == {'a'}


@pytest.fixture(scope='module')
def tiny_model():
  """A small RS-Net with strong dropout, its parameters and one input batch."""
  model = models.RSNet(base_filters=2, num_levels=2, dropout_rate=0.3)
  x = jax.random.uniform(jax.random.key(0), (1, 8, 8, 8, 3))
  batch = {'inputs': x, 'complementary': x[..., :1]}
  params = jax.jit(model.init)(jax.random.key(1), x, x[..., :1])['params']
  return model, params, batch


def test_model_mc_dropout_loop_vmap_chunked_agree(tiny_model):
  model, params, batch = tiny_model
  x = batch['inputs']
  key = jax.random.key(2)
  runs = {c: jax.jit(functools.partial(forward_pass.forward, apply_fn=model.apply,
                                       num_mc_samples=5, mc_chunk_size=c))(params, batch, key[None])
          for c in (None, 2)}

  @jax.jit
  def sample(k):
    out = model.apply({'params': params}, x, x[..., :1], train=True, rngs={'dropout': k})
    return {'synthesis': out['synthesis'], 'probabilities': jax.nn.softmax(out['logits'])}

  loop = _loop(sample, key, 5)
  for out in runs.values():
    np.testing.assert_allclose(out['synthesis'], loop['synthesis'][0], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(out['synthesis_variance'], loop['synthesis'][1], rtol=1e-4,
                               atol=1e-7)
    np.testing.assert_allclose(out['probabilities'], loop['probabilities'][0], rtol=1e-5,
                               atol=1e-6)
    assert out['entropy'].shape == out['mutual_information'].shape == (1, 8, 8, 8)
  assert float(runs[None]['synthesis_variance'].max()) > 0


def test_entropy_and_mutual_information_by_hand():
  p = jnp.array([[1.0, 0.0], [0.0, 1.0]])  # two confident samples that disagree
  mean_p = p.mean(0)
  mean_sample_entropy = uncertainty.entropy(p).mean()
  out = uncertainty.segmentation_uncertainty(mean_p, mean_sample_entropy)
  np.testing.assert_allclose(out['entropy'], np.log(2), rtol=1e-6)
  np.testing.assert_allclose(out['mutual_information'], np.log(2), rtol=1e-6)
  agree = uncertainty.segmentation_uncertainty(jnp.array([0.5, 0.5]), jnp.log(2.0))
  np.testing.assert_allclose(agree['mutual_information'], 0.0, atol=1e-6)


def test_shared_prefix_equals_recomputing_it(tiny_model):
  model, params, batch = tiny_model
  run = lambda share: jax.jit(functools.partial(
      forward_pass.forward, apply_fn=model.apply, num_mc_samples=4, mc_chunk_size=2,
      share_prefix=share))(params, batch, jax.random.key(2)[None])
  shared, naive = run(True), run(False)
  assert set(shared) == set(naive)
  for name in shared:
    np.testing.assert_allclose(shared[name], naive[name], rtol=1e-5, atol=1e-7)


def test_model_mc_dropout_is_bit_identical_per_chunk_size_and_agrees_across_them(tiny_model):
  model, params, batch = tiny_model
  run = lambda c: jax.jit(functools.partial(
      forward_pass.forward, apply_fn=model.apply, num_mc_samples=5, mc_chunk_size=c))(
          params, batch, jax.random.key(4)[None])
  reference = run(None)
  for chunk in (1, 2, 3):
    out, again = run(chunk), run(chunk)
    for name in reference:
      np.testing.assert_array_equal(out[name], again[name], err_msg=f'{name}, chunk {chunk}')
      # Another chunk size batches the convolutions differently (XLA:CPU's GEMM kernels round the
      # rows of a tile's edge their own way), so float32 round-off only.
      np.testing.assert_allclose(out[name], reference[name], rtol=1e-5, atol=1e-6,
                                 err_msg=f'{name}, chunk {chunk}')


def test_model_mc_dropout_does_not_depend_on_the_batch(tiny_model):
  model, params, batch = tiny_model
  a, b = batch['inputs'], jax.random.uniform(jax.random.key(9), batch['inputs'].shape)
  ka, kb = jax.random.key(5), jax.random.key(6)
  fn = jax.jit(functools.partial(forward_pass.forward, apply_fn=model.apply, num_mc_samples=3,
                                 mc_chunk_size=2))
  stack = lambda *xs: jnp.concatenate(xs)
  run = lambda x, keys: fn(params, {'inputs': x, 'complementary': x[..., :1]}, keys)
  alone = run(a, ka[None])
  ab = run(stack(a, b), jnp.stack([ka, kb]))
  ba = run(stack(b, a), jnp.stack([kb, ka]))
  for name in alone:
    np.testing.assert_allclose(ab[name][:1], alone[name], rtol=1e-5, atol=1e-6, err_msg=name)
    np.testing.assert_allclose(ba[name][1:], alone[name], rtol=1e-5, atol=1e-6, err_msg=name)
  assert not np.allclose(ab['synthesis_variance'][1], alone['synthesis_variance'][0])


@pytest.mark.parametrize('classes', [2, 4, 5])
def test_softmax_equals_jax_nn_softmax_without_a_reduce_op(classes):
  logits = jax.random.normal(jax.random.key(0), (2, 3, 4, classes)) * 30.0  # large: stability
  logits = logits.at[0, 0, 0].set(jnp.array([1e4] + [-1e4] * (classes - 1)))
  np.testing.assert_allclose(uncertainty.softmax(logits), jax.nn.softmax(logits, axis=-1),
                             rtol=1e-6, atol=1e-7)
  assert np.all(np.isfinite(uncertainty.softmax(logits)))
  # the point of it: no reduce for XLA:CPU to fuse with the segmentation head's matmuls
  hlo = jax.jit(uncertainty.softmax).lower(logits).as_text()
  assert 'reduce' not in hlo and 'exponential' in hlo
