"""The heads' 1x1x1 convs on XLA:CPU: ``nn.Conv``'s convolution vs a matmul over the channel axis.

XLA:CPU computes the kernel gradient of a 1x1x1 convolution as a convolution whose window is the whole
volume, behind a layout transpose; `conv.PointwiseConv3D` computes the same layer as ``jnp.dot`` over
the channel axis, so its kernel gradient is a matmul contracted over the voxels. This times forward +
backward (``grad`` of ``sum(relu(layer(x))**2)`` with respect to input and kernel, and to the kernel
alone) per head layer shape of RS-Net k=4 at 128^3, median of 5 after one warm-up, one process,
compiled as the package compiles (`rsnet_jax/runtime/compile_options.py`), and checks the kernel gradients
agree.

  python bench/pointwise.py
  python bench/pointwise.py --volume 64
"""

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np

from rsnet_jax.runtime import compile_options

# (Cin, Cout) of the heads' 1x1x1 convs at k=4: 4k -> 2k, 2k -> k, k -> 1 (regression) / 4 classes.
LAYERS = ((16, 8), (8, 4), (4, 4), (4, 1))


def _median_time(fn, *args, repeats: int = 5) -> float:
  jax.block_until_ready(fn(*args))
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    jax.block_until_ready(fn(*args))
    times.append(time.perf_counter() - start)
  return float(np.median(times))


def conv(x, kernel):
  return jax.lax.conv_general_dilated(x, kernel, (1, 1, 1), 'SAME',
                                      dimension_numbers=('NDHWC', 'DHWIO', 'NDHWC'))


def matmul(x, kernel):
  return jnp.dot(x, kernel.reshape(kernel.shape[-2:]))


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
  parser.add_argument('--volume', type=int, default=128, help='edge of the cubic volume')
  args = parser.parse_args()
  options = compile_options.for_backend()
  n = args.volume
  print(f'| {n}^3, Cin -> Cout | conv: input + kernel grad (ms) | matmul (ms) | conv: kernel grad '
        '(ms) | matmul (ms) | kernel grads agree to |')
  print('|---|---|---|---|---|---|')
  for cin, cout in LAYERS:
    x = jax.random.normal(jax.random.key(0), (1, n, n, n, cin))
    kernel = jax.random.normal(jax.random.key(1), (1, 1, 1, cin, cout))
    row, kernel_grads = [], []
    for layer in (conv, matmul):
      loss = lambda x, k, layer=layer: jnp.sum(jax.nn.relu(layer(x, k))**2)
      both = jax.jit(jax.grad(loss, argnums=(0, 1)), compiler_options=options)
      only_kernel = jax.jit(jax.grad(loss, argnums=1), compiler_options=options)
      row.append((_median_time(both, x, kernel), _median_time(only_kernel, x, kernel)))
      kernel_grads.append(only_kernel(x, kernel))
    error = float(jnp.abs(kernel_grads[0] - kernel_grads[1]).max() /
                  jnp.abs(kernel_grads[0]).max())
    print(f'| {cin} -> {cout} | {row[0][0] * 1e3:.0f} | {row[1][0] * 1e3:.0f} | '
          f'{row[0][1] * 1e3:.0f} | {row[1][1] * 1e3:.0f} | {error:.1e} |', flush=True)


if __name__ == '__main__':
  main()
