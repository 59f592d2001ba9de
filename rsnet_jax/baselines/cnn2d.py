"""The 2D CNN of Table I ([10]: Chartsias et al., IEEE TMI 37, 2018, multimodal MR synthesis via a
modality-invariant latent representation), slice by slice on axial slices.

One encoder per input sequence (a small 2D U-Net: two poolings, skips, a ReLU latent of
``latent`` channels at full resolution), the latents fused by a voxel-wise max, one decoder to the
target. Loss as the paper's: the mean absolute error over the brain plus, with two or more inputs,
the latents' spread across the inputs (their variance, weighted by ``embedding_weight``), which
pulls the encoders towards one modality-invariant representation. Not kept: the paper's per-output
decoders and its self-reconstruction terms (one target here).
"""

from __future__ import annotations

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from rsnet_jax.baselines import optimize

AXIAL = 2  # the slice axis: S in the canonical orientation (L, P, S)
BATCH_PREDICT = 32  # slices predicted together


def _conv(features: int, name: str):
  return nn.Conv(features, (3, 3), padding='SAME', name=name)


class Encoder(nn.Module):
  """``[B, H, W, 1] -> [B, H, W, latent]`` (H, W multiples of 4)."""
  features: int = 16
  latent: int = 16

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    f = self.features
    s1 = nn.relu(_conv(f, 'down1b')(nn.relu(_conv(f, 'down1a')(x))))
    h = nn.max_pool(s1, (2, 2), (2, 2))
    s2 = nn.relu(_conv(2 * f, 'down2b')(nn.relu(_conv(2 * f, 'down2a')(h))))
    h = nn.max_pool(s2, (2, 2), (2, 2))
    h = nn.relu(_conv(4 * f, 'bottomb')(nn.relu(_conv(4 * f, 'bottoma')(h))))
    h = jax.image.resize(h, h.shape[:1] + s2.shape[1:3] + h.shape[3:], 'nearest')
    h = nn.relu(_conv(2 * f, 'up2')(jnp.concatenate([h, s2], -1)))
    h = jax.image.resize(h, h.shape[:1] + s1.shape[1:3] + h.shape[3:], 'nearest')
    h = nn.relu(_conv(f, 'up1')(jnp.concatenate([h, s1], -1)))
    return nn.relu(_conv(self.latent, 'latent')(h))


class CNN2D(nn.Module):
  """``[B, H, W, M]`` input slices -> ``([B, H, W]`` synthesis, ``[M, B, H, W, latent]`` latents)."""
  features: int = 16
  latent: int = 16

  @nn.compact
  def __call__(self, x: jax.Array) -> tuple[jax.Array, jax.Array]:
    latents = jnp.stack([Encoder(self.features, self.latent, name=f'encoder{m}')(x[..., m:m + 1])
                         for m in range(x.shape[-1])])
    h = jnp.max(latents, 0)
    h = nn.relu(_conv(self.features, 'decode1')(h))
    h = nn.relu(_conv(self.features, 'decode2')(h))
    return _conv(1, 'out')(h)[..., 0], latents


def slices(example: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
  """The example's axial slices that hold brain: ``inputs [S, H, W, M]``, ``brain [S, H, W]`` and,
  when present, ``target [S, H, W]``."""
  keep = np.flatnonzero(np.moveaxis(example['brain'], AXIAL, 0).reshape(
      example['brain'].shape[AXIAL], -1).any(1))
  out = {'inputs': np.moveaxis(example['inputs'], AXIAL, 0)[keep],
         'brain': np.moveaxis(example['brain'], AXIAL, 0)[keep]}
  if 'target' in example:
    out['target'] = np.moveaxis(example['target'][..., 0], AXIAL, 0)[keep]
  return out


def fit(config: ml_collections.ConfigDict, examples: list[dict[str, np.ndarray]],
        key: jax.Array) -> dict:
  """The network's parameters fitted to the axial slices of ``examples`` (`pipeline.load_case`,
  with ``target``; one window shape for all, as the pipeline's padding to ``2 ** num_levels``
  gives for cases of one grid).

  Args:
    config: ``config.baseline.cnn2d`` (features, latent, steps, batch_size, learning_rate,
      embedding_weight).
    key: the initial parameters (``fold_in(key, 1)``) and the batches (2).
  """
  parts = [slices(e) for e in examples]
  shapes = {p['inputs'].shape[1:] for p in parts}
  if len(shapes) > 1:  # cases of several grids: pad every slice to the largest
    h, w = (max(s[a] for s in shapes) for a in (0, 1))
    parts = [{k: np.pad(v, [(0, 0), (0, h - v.shape[1]), (0, w - v.shape[2])] +
                        [(0, 0)] * (v.ndim - 3)) for k, v in p.items()} for p in parts]
  data = tuple(np.concatenate([p[k] for p in parts]) for k in ('inputs', 'target', 'brain'))
  model = CNN2D(config.features, config.latent)
  params = optimize.output_bias(model.init(jax.random.fold_in(key, 1), jnp.asarray(data[0][:1])),
                                'out', float(np.sum(data[1] * data[2]) / np.sum(data[2])))

  def loss_fn(params, inputs, target, brain):
    synthesis, latents = model.apply(params, inputs)
    mae = jnp.sum(jnp.abs(synthesis - target) * brain) / jnp.maximum(jnp.sum(brain), 1.0)
    spread = jnp.mean(jnp.var(latents, 0)) if latents.shape[0] > 1 else 0.0
    return mae + config.embedding_weight * spread

  return optimize.fit(loss_fn, params, data, config.steps, config.batch_size,
                      config.learning_rate, jax.random.fold_in(key, 2), '2D CNN')


def predict(params: dict, config: ml_collections.ConfigDict,
            example: dict[str, np.ndarray]) -> np.ndarray:
  """``[D, H, W, 1] float32``: every axial slice synthesized, 0 outside the brain."""
  inputs = np.moveaxis(example['inputs'], AXIAL, 0)
  out = np.concatenate([np.asarray(_synthesis(params, inputs[i:i + BATCH_PREDICT],
                                              config.features, config.latent))
                        for i in range(0, len(inputs), BATCH_PREDICT)])
  out = np.moveaxis(out, 0, AXIAL) * (example['brain'] > 0)
  return out.astype(np.float32)[..., None]


@functools.partial(jax.jit, static_argnames=('features', 'latent'))
def _synthesis(params: dict, x: jax.Array, features: int, latent: int) -> jax.Array:
  """`CNN2D`'s synthesis of slices ``x [B, H, W, M]``, compiled once per shape (not per case)."""
  return CNN2D(features, latent).apply(params, x)[0]
