"""3x3x3 'SAME' convolutions, computed the way each backend runs fastest.

XLA:CPU runs 2D convolutions far better than 3D ones, so on the CPU a 3x3x3 conv is computed from
2D convs over the depth axis folded into the batch; elsewhere (cuDNN, the TPU compiler) XLA's own 3D
conv is used. Every implementation takes the same kernel ``[3, 3, 3, Cin, Cout]`` (``nn.Conv``'s
layout) and returns the same values to float32 round-off, so parameters and checkpoints are shared.

Implementations (config ``model.conv_impl``):
  ``xla``       ``lax.conv_general_dilated`` in 3D.
  ``fold``      depth padded by one each side, its three shifted views stacked on the channel axis
                (``3 * Cin``) and the depth folded into the batch: one 2D conv with a 3x3 kernel
                over ``3 * Cin`` channels (the fastest on XLA:CPU at every layer shape measured).
  ``fold_sum``  three 2D convs over the depth-shifted views (one per depth tap), accumulated: no
                ``3 * Cin`` copy of the input, three passes over it.
  ``auto``      ``fold`` on the CPU backend, ``xla`` on any other.
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

Array = jax.Array

IMPLS = ('auto', 'xla', 'fold', 'fold_sum')
_DIMS_2D = ('NHWC', 'HWIO', 'NHWC')


def resolve_impl(impl: str, backend: str | None = None) -> str:
  """``impl`` with ``'auto'`` replaced by the choice for ``backend`` (default: JAX's default)."""
  if impl not in IMPLS:
    raise ValueError(f'model.conv_impl must be one of {IMPLS}, got {impl!r}')
  if impl != 'auto':
    return impl
  return 'fold' if (backend or jax.default_backend()) == 'cpu' else 'xla'


def _conv2d(x: Array, kernel: Array) -> Array:
  """``[N, H, W, Cin] * [3, 3, Cin, Cout] -> [N, H, W, Cout]``, 'SAME', stride 1."""
  return jax.lax.conv_general_dilated(x, kernel, (1, 1), 'SAME', dimension_numbers=_DIMS_2D)


def conv3x3x3(x: Array, kernel: Array, impl: str = 'auto') -> Array:
  """3x3x3 'SAME' stride-1 convolution without bias.

  Args:
    x: ``[B, D, H, W, Cin]``.
    kernel: ``[3, 3, 3, Cin, Cout]`` (depth, height, width, in, out), of ``x``'s dtype.
    impl: one of ``IMPLS``.

  Returns:
    ``[B, D, H, W, Cout]``.
  """
  impl = resolve_impl(impl)
  if impl == 'xla':
    return jax.lax.conv_general_dilated(x, kernel, (1, 1, 1), 'SAME',
                                        dimension_numbers=('NDHWC', 'DHWIO', 'NDHWC'))
  b, d, h, w, cin = x.shape
  cout = kernel.shape[-1]
  padded = jnp.pad(x, ((0, 0), (1, 1), (0, 0), (0, 0), (0, 0)))  # [B, D+2, H, W, Cin]
  shifted = [padded[:, dz:dz + d].reshape(b * d, h, w, cin) for dz in range(3)]  # x[d + dz - 1]
  if impl == 'fold':
    taps = jnp.concatenate(shifted, axis=-1)  # [B*D, H, W, 3*Cin], tap-major channels
    y = _conv2d(taps, jnp.moveaxis(kernel, 0, 2).reshape(3, 3, 3 * cin, cout))
  else:  # fold_sum
    y = sum(_conv2d(v, kernel[dz]) for dz, v in enumerate(shifted))
  return y.reshape(b, d, h, w, cout)


class Conv3D(nn.Module):
  """``nn.Conv(features, (3, 3, 3), padding='SAME')`` with a choice of implementation.

  Holds exactly ``nn.Conv``'s parameters (``kernel [3, 3, 3, Cin, features]`` lecun-normal,
  ``bias [features]`` zeros), so a parameter tree initialised or trained with one ``impl`` is used
  unchanged by any other.
  """

  features: int
  impl: str = 'auto'
  dtype: Any = jnp.float32  # compute dtype (parameters stay float32)
  kernel_init: Any = nn.initializers.lecun_normal()

  @nn.compact
  def __call__(self, x: Array) -> Array:
    """``x: [B, D, H, W, Cin] -> [B, D, H, W, features]``."""
    kernel = self.param('kernel', self.kernel_init, (3, 3, 3, x.shape[-1], self.features))
    bias = self.param('bias', nn.initializers.zeros, (self.features,))
    y = conv3x3x3(x.astype(self.dtype), kernel.astype(self.dtype), self.impl)
    return y + bias.astype(self.dtype)
