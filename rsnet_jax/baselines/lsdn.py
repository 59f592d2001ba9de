"""LSDN (Van Nguyen et al., MICCAI 2015): a location-sensitive deep network, fully connected, from
each voxel's input patch and its position in the brain to the target's intensity.

The patch path (``patch^3`` voxels of each input) and the location path (the voxel's position in the
brain's bounding box, -1..1 per axis) each go through a hidden layer; their product (the location
gates the intensity features) goes through one more hidden layer to the output. Trained with Adam on
the squared error over ``samples_per_case`` brain voxels of each training case.
"""

from __future__ import annotations

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from rsnet_jax.baselines import features
from rsnet_jax.baselines import optimize


class LSDN(nn.Module):
  """``(patch [N, P], position [N, 3]) -> [N]`` synthesized intensity."""
  hidden: int = 64

  @nn.compact
  def __call__(self, patch: jax.Array, position: jax.Array) -> jax.Array:
    h = nn.relu(nn.Dense(self.hidden, name='patch')(patch))
    g = nn.sigmoid(nn.Dense(self.hidden, name='location')(position))
    h = nn.relu(nn.Dense(self.hidden, name='hidden')(h * g))
    return nn.Dense(1, name='out')(h)[..., 0]


def _arrays(example: dict[str, np.ndarray], voxels: np.ndarray,
            config: ml_collections.ConfigDict) -> tuple[np.ndarray, np.ndarray]:
  return features.patches(example, voxels, config.patch), features.positions(example, voxels)


def fit(config: ml_collections.ConfigDict, examples: list[dict[str, np.ndarray]],
        key: jax.Array) -> dict:
  """LSDN parameters fitted to ``examples`` (`pipeline.load_case`, with ``target``).

  Args:
    config: ``config.baseline.lsdn`` (patch, hidden, samples_per_case, steps, batch_size,
      learning_rate).
    key: draws the voxels (``fold_in(key, 0)``), the initial parameters (1) and the batches (2).
  """
  rng = np.random.default_rng(np.asarray(jax.random.key_data(jax.random.fold_in(key, 0))))
  patches, positions, truth = [], [], []
  for example in examples:
    voxels = features.sample_voxels(example, config.samples_per_case, rng)
    p, q = _arrays(example, voxels, config)
    patches.append(p)
    positions.append(q)
    truth.append(features.targets(example, voxels))
  data = (np.concatenate(patches), np.concatenate(positions), np.concatenate(truth))
  model = LSDN(config.hidden)
  params = optimize.output_bias(model.init(jax.random.fold_in(key, 1), jnp.asarray(data[0][:1]),
                                           jnp.asarray(data[1][:1])), 'out', float(data[2].mean()))

  def loss_fn(params, patch, position, target):
    return jnp.mean((model.apply(params, patch, position) - target) ** 2)

  return optimize.fit(loss_fn, params, data, config.steps, config.batch_size,
                      config.learning_rate, jax.random.fold_in(key, 2), 'LSDN')


def predict(params: dict, config: ml_collections.ConfigDict,
            example: dict[str, np.ndarray]) -> np.ndarray:
  """``[D, H, W, 1] float32``: the LSDN's synthesis inside the brain, 0 outside."""
  return features.predict_brain(
      example, lambda voxels: _apply(params, *_arrays(example, voxels, config), config.hidden))


@functools.partial(jax.jit, static_argnames='hidden')
def _apply(params: dict, patch: jax.Array, position: jax.Array, hidden: int) -> jax.Array:
  """`LSDN`'s forward, compiled once per shape (not once per case)."""
  return LSDN(hidden).apply(params, patch, position)
