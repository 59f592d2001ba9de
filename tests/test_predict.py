"""Prediction outputs outside the brain."""

import numpy as np

from rsnet_jax.inference import predict


def test_outside_the_brain_is_background_with_no_uncertainty():
  rng = np.random.default_rng(0)
  brain = np.zeros((4, 5, 6), np.float32)
  brain[1:3, 1:4, 2:5] = 1
  p = rng.dirichlet(np.ones(4), (4, 5, 6)).astype(np.float32)
  outputs = {'synthesis': rng.normal(size=(4, 5, 6, 1)), 'probabilities': p,
             'synthesis_variance': rng.uniform(size=(4, 5, 6, 1)),
             'entropy': rng.uniform(size=(4, 5, 6)), 'mutual_information': rng.uniform(size=(4, 5, 6))}
  masked = predict.outside_brain_as_background(outputs, brain)
  inside = brain > 0
  for name, value in masked.items():
    np.testing.assert_array_equal(value[inside], outputs[name][inside])  # untouched inside
  np.testing.assert_array_equal(masked['probabilities'][~inside], [[1, 0, 0, 0]] * (~inside).sum())
  for name in ('synthesis', 'synthesis_variance', 'entropy', 'mutual_information'):
    assert not masked[name][~inside].any(), name
  assert outputs['synthesis'][~inside].any()  # the caller's arrays are not changed in place
