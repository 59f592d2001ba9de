"""3x3x3 'SAME' convolutions, computed the way each backend runs fastest.

XLA:CPU runs 2D convolutions far better than 3D ones, so on the CPU a 3x3x3 conv is computed from
2D convs over the depth axis folded into the batch; elsewhere (cuDNN, the TPU compiler) XLA's own 3D
conv is used. Every implementation takes the same kernel ``[3, 3, 3, Cin, Cout]`` (``nn.Conv``'s
layout) and returns the same values to float32 round-off, so parameters and checkpoints are shared.

Implementations (config ``model.conv_impl``):
  ``xla``       ``lax.conv_general_dilated`` in 3D.
  ``fold``      depth padded by one each side, its three shifted views stacked on the channel axis
                (``3 * Cin``) and the depth folded into the batch: one 2D conv with a 3x3 kernel
                over ``3 * Cin`` channels (the fastest on XLA:CPU at every layer shape measured);
                for convs with few outputs, zero channels take the taps to 18, and for the other
                convs XLA:CPU leaves to Eigen, to a multiple of 8 (see below); on the
                CPU its kernel gradient is summed over chunks of 8 folded slices, over the real
                (not zero-padded) channels.
  ``fold_sum``  three 2D convs over the depth-shifted views (one per depth tap), accumulated: no
                ``3 * Cin`` copy of the input, three passes over it.
  ``auto``      ``fold`` on the CPU backend, ``xla`` on any other.

``PointwiseConv3D`` is the 1x1x1 conv of the heads, as a matmul with ``nn.Conv``'s parameters.
"""

from __future__ import annotations

import functools
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

Array = jax.Array

IMPLS = ('auto', 'xla', 'fold', 'fold_sum')
_DIMS_2D = ('NHWC', 'HWIO', 'NHWC')
# XLA:CPU (jax 0.10) hands a 2D conv to its YNNPACK kernels only when max(Cin, Cout) > 16, and
# otherwise runs Eigen's, which is slow for few output channels: `fold` pads the stacked taps of
# float32 convs with <= 4 outputs with zero channels (and their kernel with zero rows) to
# _YNN_CHANNELS, which YNNPACK ran fastest (bench/few_channels.py; bench/README.md, "Few output
# channels").
_YNN_CHANNELS = 18
_YNN_MAX_COUT = 4
# The convs left to Eigen (max(Cin, Cout) <= 16) run 1.1-1.4x faster with their stacked taps padded
# to a multiple of 8 channels (12 -> 16, 15 -> 16; AVX2's 8 floats), so `fold` pads those too
# (bench/README.md, "Eigen's convs on a multiple of 8 channels").
_EIGEN_MULTIPLE = 8
_YNN_MIN_CHANNELS = 17  # XLA:CPU's YNNPACK takes a 2D conv with max(Cin, Cout) at least this
# XLA:CPU runs a 2D conv's kernel gradient (a conv whose window is the whole plane, contracted over
# the folded batch) 1.1-3x faster in chunks of 8 folded slices, summed, than over the whole batch
# at once (bench/kernel_grad.py; bench/README.md, "Kernel gradients in chunks").
_KERNEL_GRAD_SLICES = 8


def resolve_impl(impl: str, backend: str | None = None) -> str:
  """``impl`` with ``'auto'`` replaced by the choice for ``backend`` (default: JAX's default)."""
  if impl not in IMPLS:
    raise ValueError(f'model.conv_impl must be one of {IMPLS}, got {impl!r}')
  if impl != 'auto':
    return impl
  return 'fold' if (backend or jax.default_backend()) == 'cpu' else 'xla'


def conv2d(x: Array, kernel: Array) -> Array:
  """``[N, H, W, Cin] * [3, 3, Cin, Cout] -> [N, H, W, Cout]``, 'SAME', stride 1."""
  return jax.lax.conv_general_dilated(x, kernel, (1, 1), 'SAME', dimension_numbers=_DIMS_2D)


def kernel_grad_chunked(x: Array, g: Array, slices: int = _KERNEL_GRAD_SLICES) -> Array:
  """Gradient of ``sum(conv2d(x, kernel) * g)`` with respect to ``kernel``, as the sum of XLA's
  kernel gradients over chunks of ``slices`` rows of the batch.

  Args:
    x: ``[N, H, W, Cin]``, ``conv2d``'s input.
    g: ``[N, H, W, Cout]``, the gradient of its output.
    slices: batch rows per chunk (the last chunk takes the rest).

  Returns:
    ``[3, 3, Cin, Cout]``.
  """
  kernel = jax.ShapeDtypeStruct((3, 3, x.shape[-1], g.shape[-1]), x.dtype)
  grads = [jax.linear_transpose(lambda k, i=i: conv2d(x[i:i + slices], k), kernel)(
      g[i:i + slices])[0].astype(jnp.float32) for i in range(0, x.shape[0], slices)]
  return functools.reduce(jnp.add, grads).astype(x.dtype)  # chunks summed in float32


def _depth_shifted(x: Array) -> list[Array]:
  """``[B, D, H, W, Cin]`` -> the three depth-shifted views ``x[d + dz - 1]`` (zero outside),
  ``dz = 0, 1, 2``, each with the depth folded into the batch: ``[B*D, H, W, Cin]``."""
  b, d, h, w, cin = x.shape
  padded = jnp.pad(x, ((0, 0), (1, 1), (0, 0), (0, 0), (0, 0)))  # [B, D+2, H, W, Cin]
  return [padded[:, dz:dz + d].reshape(b * d, h, w, cin) for dz in range(3)]


def _depth_taps(x: Array, zeros: int = 0) -> Array:
  """``[B, D, H, W, Cin] -> [B*D, H, W, 3*Cin + zeros]``: `_depth_shifted`'s views stacked
  tap-major on the channel axis, then ``zeros`` zero channels."""
  shifted = _depth_shifted(x)
  if zeros:
    shifted.append(jnp.zeros(shifted[0].shape[:-1] + (zeros,), x.dtype))
  return jnp.concatenate(shifted, axis=-1)


def _fold(x: Array, kernel: Array, zeros: int) -> Array:
  """``fold``'s 2D conv of ``_depth_taps(x, zeros)`` with ``kernel [3, 3, 3*Cin + zeros, Cout]``:
  ``[B*D, H, W, Cout]``."""
  return conv2d(_depth_taps(x, zeros), kernel)


def after(x: Array, y: Array) -> Array:
  """``x``, computed only once ``y`` is: plus a zero that XLA cannot fold (``0 * y[0, ..., 0]``).

  An ordering hint for XLA's scheduler, which drops ``lax.optimization_barrier`` on the CPU before
  it schedules: values derived from the result wait for ``y``, so what ``y`` needed can be freed
  first. Exact for finite ``y`` (the zero is added, not multiplied in).
  """
  return x + jnp.zeros((), x.dtype) * y[(0,) * y.ndim].astype(x.dtype)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def _fold_cpu(x: Array, kernel: Array, zeros: int) -> Array:
  """``_fold`` with XLA:CPU's fast backward pass: it keeps ``x`` (not its 3x-channel taps) for the
  backward pass and rebuilds the taps there, once the output's gradient exists (XLA would otherwise
  keep every layer's taps, transposed for the kernel gradient, from the forward pass to the
  backward: 3.5 GiB at the paper's crop); the kernel gradient is ``kernel_grad_chunked`` over the
  real channels (the zero channels' kernel rows get zeros)."""
  return _fold(x, kernel, zeros)


def _fold_cpu_fwd(x: Array, kernel: Array, zeros: int) -> tuple[Array, tuple[Array, Array]]:
  return _fold(x, kernel, zeros), (x, kernel)


def _fold_cpu_bwd(zeros: int, residuals: tuple[Array, Array], g: Array) -> tuple[Array, Array]:
  x, kernel = residuals
  dx = jax.linear_transpose(lambda x: _fold(x, kernel, zeros), x)(g)[0]
  x = after(x, g)  # the taps rebuilt once g exists, not shared with the forward pass's
  dk = kernel_grad_chunked(_depth_taps(x), g)
  return dx, jnp.pad(dk, ((0, 0), (0, 0), (0, zeros), (0, 0)))


_fold_cpu.defvjp(_fold_cpu_fwd, _fold_cpu_bwd)


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
  if impl == 'fold':
    kernel = jnp.moveaxis(kernel, 0, 2).reshape(3, 3, 3 * cin, cout)  # tap-major input channels
    if jax.default_backend() != 'cpu':
      y = _fold(x, kernel, 0)
    else:
      zeros = 0
      if x.dtype == jnp.float32 and cout <= _YNN_MAX_COUT:
        zeros = max(_YNN_CHANNELS - 3 * cin, 0)
      elif x.dtype == jnp.float32 and max(3 * cin, cout) < _YNN_MIN_CHANNELS:
        zeros = -3 * cin % _EIGEN_MULTIPLE
      y = _fold_cpu(x, jnp.pad(kernel, ((0, 0), (0, 0), (0, zeros), (0, 0))), zeros)
  else:  # fold_sum
    y = sum(conv2d(v, kernel[dz]) for dz, v in enumerate(_depth_shifted(x)))
  return y.reshape(b, d, h, w, cout)


class PointwiseConv3D(nn.Module):
  """``nn.Conv(features, (1, 1, 1))`` computed as a matmul over the channel axis.

  Holds exactly ``nn.Conv``'s parameters (``kernel [1, 1, 1, Cin, features]`` lecun-normal,
  ``bias [features]`` zeros) and returns the same values, but its kernel gradient is a matmul
  contracted over the voxels, where XLA:CPU computes ``nn.Conv``'s as a convolution with a
  whole-volume window behind a layout transpose (forward and backward about 2x faster at 128^3:
  bench/pointwise.py; bench/README.md, "The backward pass rebuilds the taps; pointwise convs as
  matmuls").
  """

  features: int
  dtype: Any = jnp.float32  # compute dtype (parameters stay float32)
  kernel_init: Any = nn.initializers.lecun_normal()

  @nn.compact
  def __call__(self, x: Array) -> Array:
    """``x: [..., Cin] -> [..., features]``."""
    kernel = self.param('kernel', self.kernel_init, (1, 1, 1, x.shape[-1], self.features))
    bias = self.param('bias', nn.initializers.zeros, (self.features,))
    kernel = kernel.reshape(x.shape[-1], self.features).astype(self.dtype)
    return jnp.dot(x.astype(self.dtype), kernel) + bias.astype(self.dtype)


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
