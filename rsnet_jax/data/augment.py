"""Data augmentation of training examples, on the fly and from explicit seeds (``config.augment``).

One example of `pipeline.load_case` (network grid ``[D, H, W]``) in, the same keys and shapes out:
  spatial, one warp for every array: a mirror per axis, a small rotation about each axis, an
    isotropic scaling and an elastic deformation, composed into one map of voxel coordinates;
    images (``inputs``, ``complementary``, ``target``) are resampled linearly, ``labels``, ``brain``
    and ``valid`` by nearest neighbour, and every image is 0 outside the warped brain, as a
    skull-stripped volume is;
  intensity, per input sequence and inside the brain only (the synthesis ``target`` is left as it
    is: the network should read through these changes, not learn to reproduce them): a random
    monotone intensity curve (tissues keep their order, not their contrast: another scanner's or
    protocol's weighting), gamma, contrast and brightness, a smooth multiplicative bias field,
    Gaussian noise and blur.
  random crop (``augment.random_crop``): `crop_around` takes ``data.crop_shape`` around a voxel
    drawn from the tumour with probability ``augment.foreground_share``, else from the brain, from a
    case loaded whole.

Each transform happens with its own probability; with every probability 0 an example comes back
unchanged (the same arrays). The generator of example ``g`` of the training stream is
`example_rng(seed, g)`: the same seed gives the same augmented batches, in any process layout,
resumed or not.
"""

from __future__ import annotations

import ml_collections
import numpy as np
from scipy import ndimage

from rsnet_jax.errors import UserError

AUGMENT_STREAM = 0x617567  # keeps the augmentation's draws apart from other uses of the seed
IMAGES = ('inputs', 'complementary', 'target')  # linear interpolation
MASKS = ('labels', 'brain', 'valid')  # nearest neighbour
SPATIAL = ('mirror', 'rotate', 'scale', 'elastic')
INTENSITY = ('curve', 'gamma', 'contrast', 'bias_field', 'noise', 'blur')


def probability(a: ml_collections.ConfigDict, name: str) -> float:
  """``augment.<name>_probability``; 0 where a config written before the transform lacks it."""
  return float(a.get(f'{name}_probability', 0.0))


def enabled(config: ml_collections.ConfigDict) -> bool:
  """Whether ``config.augment`` changes anything."""
  a = config.get('augment')
  if a is None:
    return False
  return a.random_crop or any(probability(a, name) > 0 for name in SPATIAL + INTENSITY)


def validate(config: ml_collections.ConfigDict) -> None:
  """`UserError` for a probability outside [0, 1], an intensity curve that would not increase, or a
  random crop without ``data.crop_shape``."""
  a = config.augment
  for name in SPATIAL + INTENSITY:
    p = probability(a, name)
    if not 0.0 <= p <= 1.0:
      raise UserError(f'augment.{name}_probability must be in [0, 1], got {p}')
  if probability(a, 'curve') > 0 and not (0.0 <= a.curve_strength < 1.0 and a.curve_knots >= 0):
    raise UserError(f'augment.curve_strength must be in [0, 1) and augment.curve_knots >= 0, got '
                    f'{a.curve_strength} and {a.curve_knots}')
  if a.random_crop and not tuple(config.data.crop_shape):
    raise UserError('augment.random_crop needs data.crop_shape (the window to draw)')


def example_rng(seed: int, index: int) -> np.random.Generator:
  """The generator of element ``index`` of the global training stream (`pipeline.train_dataset`)."""
  return np.random.default_rng([seed, AUGMENT_STREAM, index])


def crop_around(example: dict[str, np.ndarray], crop_shape: tuple[int, ...],
                foreground_share: float, rng: np.random.Generator) -> dict[str, np.ndarray]:
  """A ``crop_shape`` window of ``example`` (every array) centred on a voxel drawn from the tumour
  (``labels > 0``) with probability ``foreground_share``, else from the brain; kept inside the grid
  where it fits, zero-padded where the grid is smaller."""
  shape = example['brain'].shape
  tumour = example['labels'] > 0 if 'labels' in example else np.zeros(shape, bool)
  pool = tumour if tumour.any() and rng.random() < foreground_share else example['brain'] > 0
  voxels = np.argwhere(pool)
  center = voxels[rng.integers(len(voxels))] if len(voxels) else np.array(shape) // 2
  starts = [int(min(max(c - s // 2, 0), max(n - s, 0))) if s <= n else (n - s) // 2
            for c, s, n in zip(center, crop_shape, shape)]
  out = {}
  for key, value in example.items():
    window = np.zeros(tuple(crop_shape) + value.shape[3:], value.dtype)
    src = tuple(slice(max(b, 0), min(b + s, n)) for b, s, n in zip(starts, crop_shape, shape))
    dst = tuple(slice(max(-b, 0), max(-b, 0) + (r.stop - r.start)) for b, r in zip(starts, src))
    window[dst] = value[src]
    out[key] = window
  return out


def _spatial_map(shape: tuple[int, ...], a: ml_collections.ConfigDict,
                 rng: np.random.Generator) -> np.ndarray | None:
  """``[3, D, H, W]`` source coordinates of each output voxel, or None for the identity. Rotation,
  scaling and mirroring act about the grid's centre."""
  matrix, drawn = np.eye(3), False
  if rng.random() < a.rotate_probability:
    for axis, angle in enumerate(np.deg2rad(rng.uniform(-a.rotate_degrees, a.rotate_degrees, 3))):
      i, j = [k for k in range(3) if k != axis]
      r = np.eye(3)
      r[i, i] = r[j, j] = np.cos(angle)
      r[i, j], r[j, i] = -np.sin(angle), np.sin(angle)
      matrix = r @ matrix
    drawn = True
  if rng.random() < a.scale_probability:
    matrix = matrix / rng.uniform(*a.scale_range)  # zoom z: read the source at 1/z the distance
    drawn = True
  flips = rng.random(3) < a.mirror_probability
  if flips.any():
    matrix = matrix @ np.diag(np.where(flips, -1.0, 1.0))
    drawn = True
  elastic = rng.random() < a.elastic_probability
  if not (drawn or elastic):
    return None
  center = (np.array(shape, np.float64) - 1) / 2
  grid = np.stack(np.meshgrid(*[np.arange(n, dtype=np.float64) for n in shape], indexing='ij'))
  coords = np.einsum('ij,j...->i...', matrix, grid - center[:, None, None, None])
  coords += center[:, None, None, None]
  if elastic:
    for axis in range(3):
      field = ndimage.gaussian_filter(rng.standard_normal(shape), a.elastic_sigma)
      field *= a.elastic_magnitude / max(float(field.std()), 1e-12)
      coords[axis] += field
  return coords


def _warp(value: np.ndarray, coords: np.ndarray, order: int) -> np.ndarray:
  """``value`` ``[D, H, W(, C)]`` read at ``coords`` (0 outside the grid), in its own dtype."""
  if value.ndim == 3:
    return ndimage.map_coordinates(value, coords, order=order, mode='constant',
                                   cval=0).astype(value.dtype)
  return np.stack([_warp(value[..., c], coords, order) for c in range(value.shape[-1])], -1)


def intensity_curve(x: np.ndarray, lo: float, hi: float, knots: int, strength: float,
                    rng: np.random.Generator) -> np.ndarray:
  """``x`` through a random increasing piecewise-linear map of ``[lo, hi]`` onto itself:
  ``knots`` evenly spaced inner knots, the ``knots + 1`` segments' slopes drawn uniform in
  ``[1 - strength, 1 + strength]`` (then rescaled to keep the range). Values outside the range
  are clamped to it."""
  steps = rng.uniform(1.0 - strength, 1.0 + strength, knots + 1)
  xs = np.linspace(lo, hi, knots + 2)
  ys = lo + (hi - lo) * np.concatenate([[0.0], np.cumsum(steps) / steps.sum()])
  return np.interp(x, xs, ys)


def _intensity(volume: np.ndarray, brain: np.ndarray, a: ml_collections.ConfigDict,
               rng: np.random.Generator) -> np.ndarray:
  """One sequence ``[D, H, W] float32``, changed inside ``brain`` (bool); 0 outside it."""
  x = volume.astype(np.float64)
  inside = x[brain]
  if inside.size == 0:
    return volume
  lo, hi = float(inside.min()), float(inside.max())  # the curve maps this range onto itself
  # Drawn only when enabled, so that configs without it keep their augmented streams bit for bit.
  if probability(a, 'curve') > 0 and rng.random() < a.curve_probability:
    x = intensity_curve(x, lo, hi, a.curve_knots, a.curve_strength, rng)
  if rng.random() < a.gamma_probability:
    span = max(hi - lo, 1e-12)
    x = lo + span * np.clip((x - lo) / span, 0, 1) ** rng.uniform(*a.gamma_range)
  if rng.random() < a.contrast_probability:
    mean, std = float(x[brain].mean()), float(x[brain].std())
    x = mean + (x - mean) * rng.uniform(*a.contrast_range) + std * rng.uniform(*a.brightness_range)
  if rng.random() < a.bias_field_probability:
    coarse = rng.normal(0.0, a.bias_field_strength, (3, 3, 3))
    field = ndimage.zoom(coarse, np.array(x.shape) / 3, order=3, mode='nearest')
    # A gain on the signal above 0, or above the brain's darkest voxel where that is negative
    # (zscore): a gain field for signed normalisations too, the same numbers for brats2017's.
    base = min(lo, 0.0)
    x = base + (x - base) * np.exp(field[tuple(slice(0, n) for n in x.shape)])
  if rng.random() < a.noise_probability:
    x = x + rng.normal(0.0, rng.uniform(*a.noise_std) * float(x[brain].std()), x.shape)
  if rng.random() < a.blur_probability:
    x = ndimage.gaussian_filter(x, rng.uniform(*a.blur_sigma))
  return np.where(brain, x, 0.0).astype(volume.dtype)


def augment(example: dict[str, np.ndarray], config: ml_collections.ConfigDict,
            rng: np.random.Generator, complementary_index: int | None = None
            ) -> dict[str, np.ndarray]:
  """``example`` augmented by ``config.augment`` with ``rng`` (see the module docstring).

  ``complementary_index``: the channel of ``inputs`` that ``complementary`` copies (an RS-Net's
  regression-block input), so that it stays that channel's exact copy.
  """
  a = config.augment
  out = dict(example)
  coords = _spatial_map(out['brain'].shape, a, rng)
  if coords is not None:
    for key in MASKS:
      if key in out:
        out[key] = _warp(out[key], coords, 0)
    brain = out['brain'][..., None] > 0
    for key in IMAGES:
      if key in out:
        out[key] = np.where(brain, _warp(out[key], coords, 1), 0).astype(out[key].dtype)
    if 'labels' in out:
      out['labels'] = np.where(brain[..., 0], out['labels'], 0)
  if any(probability(a, name) > 0 for name in INTENSITY):
    brain = out['brain'] > 0
    inputs = out['inputs'].copy()
    for c in range(inputs.shape[-1]):
      inputs[..., c] = _intensity(inputs[..., c], brain, a, rng)
    out['inputs'] = inputs
  if complementary_index is not None and 'complementary' in out:
    out['complementary'] = out['inputs'][..., [complementary_index]]
  return out
