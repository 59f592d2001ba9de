"""Sliding-window inference: window placement, Gaussian weights, exact blending of per-voxel maps,
and the network on windows next to one pass."""

import functools

import jax
import numpy as np
import pytest

from rsnet_jax.data import pipeline
from rsnet_jax.errors import UserError
from rsnet_jax.inference import forward_pass
from rsnet_jax.inference import predict
from rsnet_jax.inference import sliding_window
from rsnet_jax.training import train
from tests.conftest import tiny_config


@pytest.mark.parametrize('size,window,overlap', [(16, 16, 0.5), (16, 32, 0.5), (40, 16, 0.5),
                                                 (37, 8, 0.25), (64, 16, 0.0), (20, 8, 0.9)])
def test_windows_cover_the_axis_with_the_overlap_asked(size, window, overlap):
  s = sliding_window.starts(size, window, overlap)
  assert s[0] == 0 and s == sorted(set(s))
  assert s[-1] + min(window, size) == size
  assert all(b - a <= window * (1 - overlap) + 0.5 for a, b in zip(s, s[1:]))


def test_gaussian_is_centred_and_positive():
  w = sliding_window.gaussian((8, 9, 4))
  assert w.shape == (8, 9, 4) and w.dtype == np.float32
  assert w.max() == pytest.approx(1.0, abs=1e-6) and w.min() >= 1e-3
  assert w[3, 4, 1] == w[4, 4, 2] == w.max()  # even sizes: the two middle voxels
  np.testing.assert_allclose(w, w[::-1, ::-1, ::-1], rtol=1e-6)


def test_blending_reproduces_any_per_voxel_map_exactly():
  rng = np.random.default_rng(0)
  inputs = {'inputs': rng.normal(size=(1, 37, 24, 19, 3)).astype(np.float32),
            'complementary': rng.normal(size=(1, 37, 24, 19, 1)).astype(np.float32)}

  def fn(x, index):  # a per-voxel function: every window agrees where they overlap
    a = x['inputs']
    return {'synthesis': 2 * a[..., :1] + x['complementary'], 'probabilities': np.exp(a),
            'entropy': a.sum(-1)}

  out = sliding_window.predict(fn, inputs, (16, 8, 8), overlap=0.5)
  whole = fn(inputs, 0)
  assert out.keys() == whole.keys()
  for name in whole:
    np.testing.assert_allclose(out[name], whole[name], rtol=1e-5, atol=1e-5)


def test_network_on_windows_next_to_one_pass(tiny_dataset):
  config = tiny_config(**{'model.num_levels': 1})
  task = pipeline.Task.from_config(config)
  state = train.create_train_state(config, task, jax.random.key(0))
  case = pipeline.layouts.discover(tiny_dataset)[0]
  example, _ = pipeline.load_case(case, task)
  key = jax.random.key(3)
  for mc in (0, 2):
    fn = jax.jit(functools.partial(forward_pass.forward, apply_fn=state.apply_fn,
                                   num_mc_samples=mc))
    k = key if mc else None
    whole = predict.predict_example(fn, state.params, example, k)
    covering = predict.predict_example(fn, state.params, example, k, window=(32, 32, 32))
    windows = predict.predict_example(fn, state.params, example, k, window=(8, 8, 16))
    assert windows.keys() == whole.keys()
    for name in whole:
      np.testing.assert_array_equal(covering[name], whole[name])
      assert windows[name].shape == whole[name].shape and np.isfinite(windows[name]).all()
    # a convex blend of softmaxes is a softmax; instance norm normalises per window, so the
    # windows' answer is not that of one pass
    np.testing.assert_allclose(windows['probabilities'].sum(-1), 1.0, atol=1e-5)
    assert np.abs(windows['synthesis'] - whole['synthesis']).max() > 0


def test_window_shape_must_fit_the_network():
  config = tiny_config(**{'predict.window_shape': (8, 8, 6)})
  with pytest.raises(UserError, match=r'window_shape \(8, 8, 6\).*multiple of 4'):
    predict.window_shape(config, pipeline.Task.from_config(config))
  config.predict.window_shape = (8, 8, 8)
  assert predict.window_shape(config, pipeline.Task.from_config(config)) == (8, 8, 8)
