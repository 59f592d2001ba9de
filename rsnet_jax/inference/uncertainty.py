"""Monte-Carlo dropout (paper Sec. II): N stochastic forward passes, mean and variance per voxel.

Sample ``i`` always uses ``jax.random.split(key, N)[i]``, so the samples are the same whether they are
drawn in a loop, in one vmap or in chunks. Chunks of ``chunk_size`` samples are vmapped and folded
into running statistics (Welford's mean/M2 update, one sample at a time) by ``jax.lax.scan``, so
peak memory grows with the chunk, not with N. The same chunk size gives the same bits every time;
another one the same values to float32 round-off (it changes the batch of every convolution, and
XLA:CPU's GEMM kernels round the rows at a tile's edge their own way).
"""

from __future__ import annotations

import functools
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

Array = jax.Array
Stats = tuple[Array, dict[str, Array], dict[str, Array]]  # (count, mean, M2) per output


def _welford(stats: Stats, sample: tuple[dict[str, Array], Array]) -> Stats:
  """Folds one sample of weight ``w`` (1 or 0) into the running count, mean and M2."""
  n, mean, m2 = stats
  x, w = sample
  n_new = n + w
  keep = w > 0
  delta = {k: x[k] - mean[k] for k in mean}
  new_mean = {k: jnp.where(keep, mean[k] + delta[k] / jnp.maximum(n_new, 1.0), mean[k])
              for k in mean}
  new_m2 = {k: jnp.where(keep, m2[k] + delta[k] * (x[k] - new_mean[k]), m2[k]) for k in m2}
  return n_new, new_mean, new_m2


def mc_dropout(sample_fn: Callable[[Array], dict[str, Array]], key: Array, num_samples: int,
               chunk_size: int | None = None,
               variance_of: tuple[str, ...] | None = None) -> dict[str, dict[str, Array]]:
  """Mean and (population) variance of ``sample_fn`` over ``num_samples`` dropout keys.

  The samples of a chunk are computed together (``jax.vmap``) and then folded into the running
  statistics one at a time, in sample order (Welford), so the arithmetic of the statistics does not
  depend on ``chunk_size``.

  Args:
    sample_fn: ``key -> {name: array}``, one forward pass with dropout on.
    key: the MC key; sample ``i`` uses ``jax.random.split(key, num_samples)[i]``.
    num_samples: N.
    chunk_size: samples computed together; ``None`` = all N at once. Peak memory grows with it.
      A last partial chunk is padded with repeats of the last key whose samples get weight 0.
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

  shapes = jax.eval_shape(sample_fn, keys[0, 0])
  tracked = [k for k in shapes if variance_of is None or k in variance_of]
  zeros = lambda names: {k: jnp.zeros(shapes[k].shape, shapes[k].dtype) for k in names}
  init = (jnp.zeros(()), zeros(shapes), zeros(tracked))

  def fold_chunk(stats: Stats, xs) -> tuple[Stats, None]:
    chunk_keys, w = xs
    samples = jax.vmap(sample_fn)(chunk_keys)
    return jax.lax.scan(lambda s, x: (_welford(s, x), None), stats, (samples, w))[0], None

  (n, mean, m2), _ = jax.lax.scan(fold_chunk, init, (keys, weights))
  return {'mean': mean, 'variance': {k: v / n for k, v in m2.items()}}


def softmax(logits: Array) -> Array:
  """``jax.nn.softmax`` over the last (class) axis, written as elementwise ops over the classes.

  ``logits [..., C] -> [..., C]``, the same formula (``exp(x - max) / sum``) to float32 round-off.
  XLA:CPU hands a reduce over the classes to YNNPACK together with the segmentation head's ReLUs
  and matmuls before it: one fusion, 1.80 s for the head's tail on two crop-sized volumes against
  1.08 s without a reduce op (`python bench/softmax_fusion.py`; bench/README.md).
  """
  classes = [logits[..., i] for i in range(logits.shape[-1])]
  top = functools.reduce(jnp.maximum, classes)
  exps = [jnp.exp(c - top) for c in classes]
  total = functools.reduce(jnp.add, exps)
  return jnp.stack([e / total for e in exps], axis=-1)


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


# The QU-BraTS challenge's names of its three uncertainty maps: <case>_unc_<name>.nii.gz.
QU_BRATS_FILES = {'WT': 'whole', 'TC': 'core', 'ET': 'enhance'}


def region_uncertainty(probabilities: np.ndarray, region: tuple[int, ...]) -> np.ndarray:
  """A region's QU-BraTS uncertainty map: the binary entropy (bits) of the probability that a voxel
  is in ``region`` (class indices), from ``probabilities [X, Y, Z, C]``, times 100: 0 where the
  prediction is sure either way, 100 where it is a coin flip. ``[X, Y, Z] float32`` in [0, 100]."""
  p = np.clip(np.take(probabilities, region, axis=-1).sum(-1, dtype=np.float32), 0.0, 1.0)
  q = 1 - p
  with np.errstate(divide='ignore', invalid='ignore'):
    h = np.where(p > 0, p * np.log2(p), 0.0) + np.where(q > 0, q * np.log2(q), 0.0)
  return np.clip(-100.0 * h, 0.0, 100.0).astype(np.float32)
