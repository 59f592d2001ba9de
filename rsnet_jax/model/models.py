"""RS-Net, R-Net and S-Net as flax.linen modules (paper Sec. II, Fig. 1).

Every module is a pure function of its parameters and inputs. Dropout is active only when
``train=True`` and then draws its randomness from ``rngs={'dropout': key}``.

Shapes: volumes are channels-last, ``[B, D, H, W, C] float32``; every spatial size must be
divisible by ``2 ** num_levels`` (the data pipeline pads to that).

Architecture reading (the paper leaves the index of the encoder steps open): the start block is two
3x3x3 convs with ``k`` filters at full resolution; encoder step ``n = 1..L`` is two 3x3x3 convs with
``k * 2**n`` filters, 2x2x2 max-pool, instance norm and dropout, so step ``n`` leaves ``k * 2**n``
channels at resolution ``1 / 2**n``; decoder step ``n = L-1..0`` upsamples with a 5x5x5 stride-2
transposed conv to ``k * 2**n`` filters (resolution ``1 / 2**n``), concatenates the encoder output of
that resolution (the start block's for ``n = 0``), then instance norm, dropout and two 3x3x3 convs with
``k * 2**n`` filters. See ``count_parameters`` and docs/architecture.md for the counts this reading
gives.
"""

from __future__ import annotations

import functools
from typing import Any, ClassVar

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from rsnet_jax.model import conv

Array = jax.Array

# Per axis, which of the 5 taps of a stride-2 transposed conv feed output phase p (0 = even, 1 = odd)
# from inputs x[m-1], x[m], x[m+1]; index 5 is a zero tap (see `subpixel_kernel`).
_PHASE_TAPS = np.array([[1, 3, 5], [0, 2, 4]])


def subpixel_kernel(kernel: Array) -> Array:
  """Rewrites a 5x5x5 stride-2 'SAME' transposed-conv kernel as one 3x3x3 conv kernel.

  Args:
    kernel: ``[5, 5, 5, Cin, Cout]``, laid out as ``flax.linen.ConvTranspose`` stores it.

  Returns:
    ``[3, 3, 3, Cin, 8 * Cout]``: output channel ``((pd * 2 + ph) * 2 + pw) * Cout + c`` holds the
    sub-pixel phase ``(pd, ph, pw)`` of channel ``c``.
  """
  cin, cout = kernel.shape[3], kernel.shape[4]
  k = jnp.pad(kernel, ((0, 1), (0, 1), (0, 1), (0, 0), (0, 0)))  # [6, 6, 6, Cin, Cout]
  k = k[_PHASE_TAPS]  # [2, 3, 6, 6, Cin, Cout]
  k = k[:, :, _PHASE_TAPS]  # [2, 3, 2, 3, 6, Cin, Cout]
  k = k[:, :, :, :, _PHASE_TAPS]  # [2, 3, 2, 3, 2, 3, Cin, Cout]
  k = k.transpose(1, 3, 5, 6, 0, 2, 4, 7)  # [3, 3, 3, Cin, 2, 2, 2, Cout]
  return k.reshape(3, 3, 3, cin, 8 * cout)


def depth_to_space(x: Array, cout: int) -> Array:
  """``[B, D, H, W, 8 * Cout]`` phases -> ``[B, 2D, 2H, 2W, Cout]``."""
  b, d, h, w, _ = x.shape
  x = x.reshape(b, d, h, w, 2, 2, 2, cout)
  x = x.transpose(0, 1, 4, 2, 5, 3, 6, 7)
  return x.reshape(b, 2 * d, 2 * h, 2 * w, cout)


class _StrideTwoTranspose(nn.Module):
  """A stride-2 transposed conv with ``nn.ConvTranspose``'s parameters (``kernel [s, s, s, Cin, F]``,
  ``bias [F]``, s = `size`), computed as ``8 * F`` phase channels (`_phases`) and a depth-to-space
  reshuffle."""

  features: int
  kernel_init: Any = nn.initializers.lecun_normal()
  dtype: Any = jnp.float32  # compute dtype (parameters stay float32)
  size: ClassVar[int]

  def _phases(self, x: Array, kernel: Array) -> Array:
    """``[B, D, H, W, Cin]``, the kernel -> ``[B, D, H, W, 8 * F]``, all in the compute dtype."""
    raise NotImplementedError

  @nn.compact
  def __call__(self, x: Array) -> Array:
    """x: ``[B, D, H, W, Cin]`` -> ``[B, 2D, 2H, 2W, features]``."""
    s, cin = self.size, x.shape[-1]
    kernel = self.param('kernel', self.kernel_init, (s, s, s, cin, self.features))
    bias = self.param('bias', nn.initializers.zeros, (self.features,))
    y = self._phases(x.astype(self.dtype), kernel.astype(self.dtype))
    return depth_to_space(y, self.features) + bias.astype(self.dtype)


class SubPixelConvTranspose(_StrideTwoTranspose):
  """5x5x5 stride-2 'SAME' transposed conv, computed in the 8-phase sub-pixel form.

  Holds exactly the parameters of ``nn.ConvTranspose(features, (5, 5, 5), strides=(2, 2, 2))``
  and returns the same values to float32 round-off, but runs as one 3x3x3 conv to ``8 * F``
  channels plus a depth-to-space reshuffle, which XLA's CPU backend executes ~90x faster than its
  own lowering of the transposed conv. The 3x3x3 conv goes through `conv.conv3x3x3` with ``impl``.
  """

  impl: str = 'auto'  # a key of conv.IMPLS
  size: ClassVar[int] = 5

  def _phases(self, x: Array, kernel: Array) -> Array:
    return conv.conv3x3x3(x, subpixel_kernel(kernel), self.impl)


class PatchConvTranspose(_StrideTwoTranspose):
  """2x2x2 stride-2 transposed conv: each input voxel writes one 2x2x2 block of the output.

  Holds exactly the parameters of ``nn.ConvTranspose(features, (2, 2, 2), strides=(2, 2, 2),
  padding='VALID')`` and returns the same values, as one matmul to ``8 * F`` channels and a
  depth-to-space reshuffle.
  """

  size: ClassVar[int] = 2

  def _phases(self, x: Array, kernel: Array) -> Array:
    # flax's transposed conv applies the kernel flipped; phase (pd, ph, pw) takes tap 1 - p
    cin, f = kernel.shape[-2:]
    return jnp.dot(x, kernel[::-1, ::-1, ::-1].transpose(3, 0, 1, 2, 4).reshape(cin, 8 * f))


# The decoder's upsampling kernel: 5 (the paper's 5x5x5 transposed conv) or 2 (ours: 2x2x2, as
# MONAI's BasicUNet; 1/16 of the parameters, which `filters` can spend on width).
UPSAMPLE_KERNELS = (5, 2)


# The non-linearity after each hidden conv. 'relu' is the paper's; 'leaky_relu' (ours, slope 0.1)
# keeps a gradient through every unit, so the heads' narrow layers (k units) cannot die.
ACTIVATIONS = {'relu': nn.relu, 'leaky_relu': functools.partial(nn.leaky_relu, negative_slope=0.1)}


def activation(name: str):
  if name not in ACTIVATIONS:
    raise ValueError(f'model.activation must be one of {sorted(ACTIVATIONS)}, got {name!r}')
  return ACTIVATIONS[name]


def _conv3(features: int, name: str, dtype: Any, impl: str) -> conv.Conv3D:
  return conv.Conv3D(features, impl=impl, dtype=dtype, name=name)


# Where instance norm sits. 'paper': after each encoder step's max-pool and on each decoder step's
# concatenation (Sec. II). 'every_conv' (ours): those, and also after every 3x3x3 conv of the U-Net
# and the heads' first conv (and the upsampling conv), before its activation, as MONAI's BasicUNet
# and nnU-Net do; configs/default.py's (docs/measurements.md, "Instance norm after every conv,
# BasicUNet's widths and a Dice term").
NORMS = ('paper', 'every_conv')


def _check_widths(norm: str, filters: tuple[int, ...], num_levels: int,
                  upsample_kernel: int) -> None:
  """Raises ValueError naming the config key of a bad ``norm``, ``filters`` or upsampling."""
  if norm not in NORMS:
    raise ValueError(f'model.norm must be one of {NORMS}, got {norm!r}')
  if filters and (len(filters) != num_levels + 1 or min(filters) < 1):
    raise ValueError(f'model.filters must be () (model.base_filters * 2**n) or {num_levels + 1} '
                     f'positive widths (one per resolution, model.num_levels + 1), got '
                     f'{tuple(filters)}: set both, e.g. --config.model.filters=() with '
                     '--config.model.num_levels')
  if upsample_kernel not in UPSAMPLE_KERNELS:
    raise ValueError(f'model.upsample_kernel must be one of {UPSAMPLE_KERNELS}, '
                     f'got {upsample_kernel!r}')


def instance_norm(name: str, affine: bool, dtype: Any) -> nn.InstanceNorm:
  return nn.InstanceNorm(use_scale=affine, use_bias=affine, dtype=dtype, name=name)


# Rematerialisation (config model.remat): what the backward pass keeps of the start block, each
# encoder/decoder step and each head; the rest is recomputed. Dropout stays outside, so masks never
# change.
REMAT_POLICIES = {
    'none': None,  # keep every activation (no jax.checkpoint)
    'levels': jax.checkpoint_policies.nothing_saveable,  # keep only each level's inputs
    'convs': jax.checkpoint_policies.dots_saveable,  # keep conv outputs, recompute relu/pool/norm
}


class UNet3D(nn.Module):
  """The modified 3D U-Net of RS-Net. ``[B, D, H, W, Cin] -> [B, D, H, W, k]``."""

  base_filters: int = 4
  num_levels: int = 4
  dropout_rate: float = 0.1
  instance_norm_affine: bool = False
  remat: str = 'none'  # a key of REMAT_POLICIES
  dtype: Any = jnp.float32  # compute dtype of the convolutions (parameters stay float32)
  conv_impl: str = 'auto'  # how 3x3x3 convs are computed: a key of conv.IMPLS
  activation: str = 'relu'  # after every conv: a key of ACTIVATIONS
  norm: str = 'paper'  # where instance norm sits: one of NORMS
  filters: tuple[int, ...] = ()  # widths at resolution 1 / 2**n, n = 0..num_levels; () = the
  #   paper's base_filters * 2**n (start block and decoder step 0 at n = 0)
  upsample_kernel: int = 5  # one of UPSAMPLE_KERNELS
  pool_first: bool = False  # encoder step n pools before its convs (see `_encoder_step`)

  def _width(self, n: int) -> int:
    return self.filters[n] if self.filters else self.base_filters * 2**n

  def _act(self, x: Array) -> Array:
    return activation(self.activation)(x)

  def _norm(self, x: Array, block: str) -> Array:
    return instance_norm(f'{block}_norm', self.instance_norm_affine, self.dtype)(x)

  def _conv_act(self, x: Array, features: int, name: str) -> Array:
    """3x3x3 conv ``name``, instance norm ``name + '_norm'`` where ``norm='every_conv'``, then the
    activation."""
    x = _conv3(features, name, self.dtype, self.conv_impl)(x)
    if self.norm == 'every_conv':
      x = self._norm(x, name)
    return self._act(x)

  def _level(self, method, static_argnums: tuple[int, ...]):
    """``method`` as is, or under `nn.remat` with the configured policy (same parameters)."""
    if self.remat not in REMAT_POLICIES:
      raise ValueError(f'model.remat must be one of {sorted(REMAT_POLICIES)}, got {self.remat!r}')
    if self.remat == 'none':
      return functools.partial(method, self)
    return functools.partial(nn.remat(method, static_argnums=static_argnums,
                                      policy=REMAT_POLICIES[self.remat]), self)

  def _drop(self, x: Array, train: bool, block: str) -> Array:
    return nn.Dropout(self.dropout_rate, deterministic=not train, name=f'{block}_dropout')(x)

  def _pool_norm(self, x: Array, n: int) -> Array:
    return self._norm(nn.max_pool(x, (2, 2, 2), strides=(2, 2, 2)), f'encoder{n}')

  def _encoder_step(self, x: Array, n: int) -> Array:
    """The paper's: two convs at the input's resolution, then max-pool and instance norm; with
    `pool_first` (ours, BasicUNet's order) max-pool and instance norm, then the two convs, so the
    convs of width ``_width(n)`` run at resolution ``1 / 2**n`` and the deepest level has convs too
    (same parameters)."""
    f = self._width(n)
    if self.pool_first:
      x = self._pool_norm(x, n)
    x = self._conv_act(x, f, f'encoder{n}_conv0')
    x = self._conv_act(x, f, f'encoder{n}_conv1')
    return x if self.pool_first else self._pool_norm(x, n)

  def _start(self, x: Array) -> Array:
    f = self._width(0)
    return self._conv_act(self._conv_act(x, f, 'start_conv0'), f, 'start_conv1')

  def _decoder_up(self, x: Array, skip: Array, n: int) -> Array:
    f = self._width(n)
    if self.upsample_kernel == 5:
      up = SubPixelConvTranspose(f, dtype=self.dtype, impl=self.conv_impl,
                                 name=f'decoder{n}_upsample')
    else:
      up = PatchConvTranspose(f, dtype=self.dtype, name=f'decoder{n}_upsample')
    x = up(x)
    if self.norm == 'every_conv':
      x = self._norm(x, f'decoder{n}_upsample')
    x = self._act(x)
    return self._norm(jnp.concatenate([x, skip.astype(x.dtype)], axis=-1), f'decoder{n}')

  def _decoder_convs(self, x: Array, n: int) -> Array:
    f = self._width(n)
    return self._conv_act(self._conv_act(x, f, f'decoder{n}_conv0'), f, f'decoder{n}_conv1')

  @nn.compact
  def __call__(self, x: Array, train: bool = False, prefix: tuple[Array, Array] | None = None,
               prefix_only: bool = False):
    """``x: [B, D, H, W, Cin] -> [B, D, H, W, k]``.

    The layers before the first dropout are deterministic: ``prefix_only=True`` returns their
    outputs (the start block's ``[B, D, H, W, k]`` and encoder step 1's, before its dropout), and
    ``prefix=`` takes them instead of recomputing them, so MC-dropout samples can share them.
    """
    _check_widths(self.norm, self.filters, self.num_levels, self.upsample_kernel)
    encoder_step = self._level(UNet3D._encoder_step, (2,))
    decoder_up = self._level(UNet3D._decoder_up, (3,))
    decoder_convs = self._level(UNet3D._decoder_convs, (2,))
    if prefix is None:
      start = self._level(UNet3D._start, ())(x)
      prefix = (start, encoder_step(start, 1))
    if prefix_only:
      return prefix
    start, x = prefix
    x = self._drop(x, train, 'encoder1')
    skips = [start, x]  # skips[n]: encoder output at resolution 1 / 2**n
    for n in range(2, self.num_levels + 1):
      x = self._drop(encoder_step(x, n), train, f'encoder{n}')
      skips.append(x)
    for n in reversed(range(self.num_levels)):
      x = self._drop(decoder_up(x, skips[n], n), train, f'decoder{n}')
      x = decoder_convs(x, n)
    return x


# An output head's layers. 'paper': conv3 (4k), conv1 (2k), conv1 (k), conv1 (out) (Fig. 1).
# 'linear' (ours): one 1x1x1 conv from the U-Net's features to the outputs, as BasicUNet's last
# layer, so that every decision is made by the U-Net, with its context.
HEADS = ('paper', 'linear')


def _check_head(key: str, layers: str) -> None:
  """Raises ValueError naming config key ``key`` unless ``layers`` is one of HEADS."""
  if layers not in HEADS:
    raise ValueError(f'{key} must be one of {HEADS}, got {layers!r}')


class Head(nn.Module):
  """Regression or segmentation block: conv3 (4k), conv1 (2k), conv1 (k), conv1 (out), last linear;
  with ``layers='linear'`` the last conv1 alone (``Conv_3``)."""

  base_filters: int
  out_features: int
  dtype: Any = jnp.float32  # compute dtype; the output is float32 either way
  conv_impl: str = 'auto'  # the 3x3x3 conv's: a key of conv.IMPLS
  activation: str = 'relu'  # a key of ACTIVATIONS
  norm: str = 'paper'  # one of NORMS: 'every_conv' normalises the first conv's output
  instance_norm_affine: bool = False
  layers: str = 'paper'  # one of HEADS (checked by RSNet and count_parameters)

  def _act(self, x: Array) -> Array:
    return activation(self.activation)(x)

  @nn.compact
  def __call__(self, x: Array) -> Array:
    """x: ``[B, D, H, W, Cin]`` -> ``[B, D, H, W, out_features] float32``."""
    k = self.base_filters
    if self.layers == 'linear':
      return conv.PointwiseConv3D(self.out_features, self.dtype,
                                  name='Conv_3')(x).astype(jnp.float32)
    x = _conv3(4 * k, 'Conv_0', self.dtype, self.conv_impl)(x)
    if self.norm == 'every_conv':
      x = instance_norm('Conv_0_norm', self.instance_norm_affine, self.dtype)(x)
    x = self._act(x)
    x = self._act(conv.PointwiseConv3D(2 * k, self.dtype, name='Conv_1')(x))
    x = self._act(conv.PointwiseConv3D(k, self.dtype, name='Conv_2')(x))
    return conv.PointwiseConv3D(self.out_features, self.dtype,
                                name='Conv_3')(x).astype(jnp.float32)


VARIANTS = ('rsnet', 'rnet', 'snet')


class RSNet(nn.Module):
  """RS-Net and its paper variants.

  ``variant``: ``'rsnet'`` (both heads, regression head also sees the complementary input),
  ``'rnet'`` (regression only, no complementary input) or ``'snet'`` (segmentation only).
  """

  variant: str = 'rsnet'
  base_filters: int = 4
  num_levels: int = 4
  num_classes: int = 4
  dropout_rate: float = 0.1
  instance_norm_affine: bool = False
  remat: str = 'none'  # rematerialisation of the U-Net levels: a key of REMAT_POLICIES
  dtype: Any = jnp.float32  # compute dtype (jnp.bfloat16: bf16 convolutions, float32 parameters
  #   and outputs)
  conv_impl: str = 'auto'  # how 3x3x3 convs are computed: a key of conv.IMPLS (same parameters)
  activation: str = 'relu'  # after every hidden conv: a key of ACTIVATIONS (same parameters)
  norm: str = 'paper'  # where instance norm sits: one of NORMS
  filters: tuple[int, ...] = ()  # the U-Net's widths per resolution (see UNet3D); () = the paper's
  upsample_kernel: int = 5  # the decoder's transposed conv: one of UPSAMPLE_KERNELS
  pool_first: bool = False  # the encoder's order (see `UNet3D._encoder_step`)
  segmentation_head: str = 'paper'  # the segmentation head's layers: one of HEADS
  regression_head: str = 'paper'  # the regression (synthesis) head's layers: one of HEADS

  def setup(self):
    if self.variant not in VARIANTS:
      raise ValueError(f'model.variant must be one of {VARIANTS}, got {self.variant!r}')
    _check_head('model.segmentation_head', self.segmentation_head)
    _check_head('model.regression_head', self.regression_head)
    self.unet = UNet3D(self.base_filters, self.num_levels, self.dropout_rate,
                       self.instance_norm_affine, self.remat, self.dtype, self.conv_impl,
                       self.activation, self.norm, tuple(self.filters), self.upsample_kernel,
                       self.pool_first)
    block = Head if self.remat == 'none' else nn.remat(Head, policy=REMAT_POLICIES.get(self.remat))
    if self.variant != 'snet':
      self.regression = block(self.base_filters, 1, self.dtype, self.conv_impl, self.activation,
                              self.norm, self.instance_norm_affine, self.regression_head)
    if self.variant != 'rnet':
      self.segmentation = block(self.base_filters, self.num_classes, self.dtype, self.conv_impl,
                                self.activation, self.norm, self.instance_norm_affine,
                                self.segmentation_head)

  def prefix(self, inputs: Array) -> tuple[Array, Array]:
    """The deterministic layers before the first dropout (see `UNet3D`); pass the result as
    ``prefix=`` to skip them, e.g. once for all MC-dropout samples."""
    return self.unet(inputs, prefix_only=True)

  def __call__(self, inputs: Array, complementary: Array | None = None, train: bool = False,
               prefix: tuple[Array, Array] | None = None) -> dict[str, Array]:
    """Forward pass.

    Args:
      inputs: ``[B, D, H, W, Cin]`` the acquired sequences.
      complementary: ``[B, D, H, W, 1]``, required for ``'rsnet'`` only.
      train: dropout on (needs ``rngs={'dropout': key}``).
      prefix: ``self.prefix(inputs)``, computed once elsewhere (optional).

    Returns:
      ``{'synthesis': [B, D, H, W, 1]}`` and/or ``{'logits': [B, D, H, W, num_classes]}``.
    """
    features = self.unet(inputs, train, prefix=prefix)
    out = {}
    if self.variant != 'rnet':
      out['logits'] = self.segmentation(features)
      # the regression head after the segmentation head, not beside it: their full-resolution
      # 16-channel intermediates are never live together (MC at the paper's crop in chunks of 4:
      # XLA's plan 6.78 -> 6.03 GiB; bench/README.md)
      features = conv.after(features, out['logits'])
    if self.variant == 'rsnet':
      if complementary is None:
        raise ValueError('the rsnet variant needs a complementary input volume')
      out['synthesis'] = self.regression(
          jnp.concatenate([features, complementary.astype(features.dtype)], -1))
    elif self.variant == 'rnet':
      out['synthesis'] = self.regression(features)
    return out


def count_parameters(variant: str, in_channels: int, base_filters: int = 4, num_levels: int = 4,
                     num_classes: int = 4, instance_norm_affine: bool = False,
                     norm: str = 'paper', filters: tuple[int, ...] = (),
                     upsample_kernel: int = 5, pool_first: bool = False,
                     segmentation_head: str = 'paper',
                     regression_head: str = 'paper') -> dict[str, int]:
  """Closed-form parameter count per block for the reading documented above."""
  _check_widths(norm, filters, num_levels, upsample_kernel)
  _check_head('model.segmentation_head', segmentation_head)
  _check_head('model.regression_head', regression_head)

  def conv(ks: int, cin: int, cout: int) -> int:
    return ks**3 * cin * cout + cout

  def norm_params(c: int) -> int:
    return 2 * c if instance_norm_affine else 0

  def conv_norm(ks: int, cin: int, cout: int) -> int:  # a conv and, for 'every_conv', its norm
    return conv(ks, cin, cout) + (norm_params(cout) if norm == 'every_conv' else 0)

  k = base_filters
  width = [filters[n] if filters else k * 2**n for n in range(num_levels + 1)]
  counts = {'start': conv_norm(3, in_channels, width[0]) + conv_norm(3, width[0], width[0])}
  ch = width[0]
  for n in range(1, num_levels + 1):
    f = width[n]
    pooled = ch if pool_first else f  # the channels instance norm sees after the max-pool
    counts[f'encoder{n}'] = conv_norm(3, ch, f) + conv_norm(3, f, f) + norm_params(pooled)
    ch = f
  for n in reversed(range(num_levels)):
    f = skip = width[n]
    counts[f'decoder{n}'] = (conv_norm(upsample_kernel, ch, f) + norm_params(f + skip)
                             + conv_norm(3, f + skip, f) + conv_norm(3, f, f))
    ch = f

  def head_params(cin: int, out: int, layers: str) -> int:
    if layers == 'linear':
      return conv(1, cin, out)
    return conv_norm(3, cin, 4 * k) + conv(1, 4 * k, 2 * k) + conv(1, 2 * k, k) + conv(1, k, out)

  if variant == 'rsnet':
    counts['regression'] = head_params(width[0] + 1, 1, regression_head)
  elif variant == 'rnet':
    counts['regression'] = head_params(width[0], 1, regression_head)
  if variant != 'rnet':
    counts['segmentation'] = head_params(width[0], num_classes, segmentation_head)
  counts['total'] = sum(counts.values())
  return counts


def summarize(params: Any) -> dict[str, int]:
  """Parameter count per top-level block of an initialised parameter tree, plus ``'total'``."""
  out: dict[str, int] = {}

  def add(path, leaf):
    keys = [getattr(p, 'key', str(p)) for p in path]
    block = keys[1].split('_', 1)[0] if keys[0] == 'unet' else keys[0]
    out[block] = out.get(block, 0) + int(leaf.size)

  jax.tree_util.tree_map_with_path(add, params)

  def network_order(block: str) -> tuple[int, int]:  # start, encoders up, decoders down, heads
    if block.startswith('encoder'):
      return 1, int(block[7:])
    if block.startswith('decoder'):
      return 2, -int(block[7:])
    return {'start': 0, 'regression': 3}.get(block, 4), 0

  out = {b: out[b] for b in sorted(out, key=network_order)}
  out['total'] = sum(out.values())
  return out
