"""Monte-Carlo dropout (paper Sec. II): N stochastic forward passes, mean and variance per voxel.

Sample ``i`` always uses ``jax.random.split(key, N)[i]``, so the samples are the same whether they are
drawn in a loop, in one vmap or in chunks. Chunks of ``chunk_size`` samples are vmapped and folded
into running statistics (Chan et al.'s parallel mean/M2 update) by ``jax.lax.scan``, so peak memory
grows with the chunk, not with N.
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp

Array = jax.Array
Stats = tuple[Array, dict[str, Array], dict[str, Array]]  # (count, mean, M2) per output


def _merge(a: Stats, b: Stats) -> Stats:
  """Combines the statistics of two disjoint sample sets."""
  n_a, mean_a, m2_a = a
  n_b, mean_b, m2_b = b
  n = n_a + n_b
  frac = n_b / jnp.maximum(n, 1.0)
  delta = {name: mean_b[name] - mean_a[name] for name in mean_a}
  mean = {name: mean_a[name] + delta[name] * frac for name in mean_a}
  m2 = {name: m2_a[name] + m2_b[name] + delta[name]**2 * n_a * frac for name in m2_a}
  return n, mean, m2


def mc_dropout(sample_fn: Callable[[Array], dict[str, Array]], key: Array, num_samples: int,
               chunk_size: int | None = None,
               variance_of: tuple[str, ...] | None = None) -> dict[str, dict[str, Array]]:
  """Mean and (population) variance of ``sample_fn`` over ``num_samples`` dropout keys.

  Args:
    sample_fn: ``key -> {name: array}``, one forward pass with dropout on.
    key: the MC key; sample ``i`` uses ``jax.random.split(key, num_samples)[i]``.
    num_samples: N.
    chunk_size: samples computed together (vmapped); ``None`` = all N at once. A last partial chunk
      is padded with repeats of the last key whose samples get weight 0.
    variance_of: the outputs whose variance is tracked (``None`` = all); the others get a mean only.

  Returns:
    ``{'mean': {name: array}, 'variance': {name: array}}``, arrays shaped like ``sample_fn``'s.
  """
  if num_samples < 1:
    raise ValueError(f'num_samples must be >= 1, got {num_samples}')
  chunk = min(chunk_size or num_samples, num_samples)
  num_chunks = -(-num_samples // chunk)
  keys = jax.random.split(key, num_samples)
  pad = num_chunks * chunk - num_samples
  keys = jnp.concatenate([keys, jnp.repeat(keys[-1:], pad, axis=0)])
  weights = jnp.concatenate([jnp.ones(num_samples), jnp.zeros(pad)])
  keys = keys.reshape((num_chunks, chunk) + keys.shape[1:])
  weights = weights.reshape(num_chunks, chunk)

  def chunk_stats(chunk_keys, w) -> Stats:
    samples = jax.vmap(sample_fn)(chunk_keys)
    n = jnp.sum(w)
    expand = lambda x: w.reshape((-1,) + (1,) * (x.ndim - 1))
    mean = {k: jnp.sum(v * expand(v), 0) / n for k, v in samples.items()}
    m2 = {k: jnp.sum(expand(v) * (v - mean[k])**2, 0) for k, v in samples.items()
          if variance_of is None or k in variance_of}
    return n, mean, m2

  def body(carry, xs):
    return _merge(carry, chunk_stats(*xs)), None

  first = chunk_stats(keys[0], weights[0])
  (n, mean, m2), _ = jax.lax.scan(body, first, (keys[1:], weights[1:]))
  return {'mean': mean, 'variance': {k: v / n for k, v in m2.items()}}


def entropy(probabilities: Array, axis: int = -1) -> Array:
  """Shannon entropy in nats of ``probabilities`` along ``axis``."""
  return -jnp.sum(jnp.where(probabilities > 0, probabilities * jnp.log(probabilities), 0.0),
                  axis=axis)


def segmentation_uncertainty(mean_probabilities: Array, mean_sample_entropy: Array
                             ) -> dict[str, Array]:
  """Predictive entropy ``H[E p]`` and mutual information (BALD) ``H[E p] - E H[p]`` in nats."""
  predictive = entropy(mean_probabilities)
  return {'entropy': predictive,
          'mutual_information': jnp.maximum(predictive - mean_sample_entropy, 0.0)}
