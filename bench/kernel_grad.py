"""Kernel gradient of the folded 3x3x3 conv on XLA:CPU: XLA's own conv vs contractions of shifted views.

`model.conv_impl='fold'` computes a 3x3x3 conv as a 2D conv over ``taps`` ``[N, H, W, 3 * Cin]`` (the
depth folded into the batch, the three depth taps on the channel axis). Its kernel gradient
``dK[i, j, c, o] = sum_{n, h, w} taps[n, h + i - 1, w + j - 1, c] * g[n, h, w, o]`` is, under
autodiff, a conv whose window is the whole ``H x W`` plane (`bench/train_step.py --profile` counts
it apart). This times that gradient alone, per layer shape of RS-Net, computed as:
  xla          ``jax.vjp`` of the 2D conv with respect to its kernel, over the whole batch at once
  chunks of S  the same over chunks of ``S`` rows of the folded batch, summed
               (``conv.kernel_grad_chunked``; what ``fold`` does on the CPU, with ``S = 8``)
  g shifted    nine ``einsum('nhwc,nhwo->co')`` of ``taps`` with shifted views of ``g``, per depth
               slice (``[N, H*W, .]`` batched contractions summed over ``N``)
  g im2col     one contraction of ``taps`` with the nine shifted views of ``g`` stacked on the
               channel axis (``9 * Cout``), per depth slice
and checks each against ``xla`` (relative max difference). Median of ``--repeats`` after one warm-up,
one process, compiled as the package compiles (`rsnet_jax/runtime/compile_options.py`).

  python bench/kernel_grad.py
  python bench/kernel_grad.py --forms xla 'chunks of 4' 'chunks of 8' 'chunks of 16'
"""

import argparse
import functools
import time

import jax
import jax.numpy as jnp
import numpy as np

from rsnet_jax.model import conv
from rsnet_jax.runtime import compile_options

# (volume side, Cin, Cout): the network's full-resolution and lower-level conv shapes at 64^3 and
# 128^3 (k=4), its widest low-resolution ones, and the regression head's first conv.
SHAPES = ((64, 4, 4), (64, 8, 4), (64, 16, 8), (32, 16, 16), (32, 32, 32), (16, 64, 64),
          (128, 4, 4), (128, 8, 4), (128, 8, 8), (128, 5, 16))


def xla(taps, g):
  kernel = jnp.zeros((3, 3, taps.shape[-1], g.shape[-1]), taps.dtype)
  return jax.vjp(lambda k: conv.conv2d(taps, k), kernel)[1](g)[0]


def _g_views(g):
  """The nine views ``g[n, h - i + 1, w - j + 1]`` (zero outside), ``i, j`` in 0..2 row-major."""
  n, h, w, _ = g.shape
  padded = jnp.pad(g, ((0, 0), (1, 1), (1, 1), (0, 0)))
  return [padded[:, 2 - i:2 - i + h, 2 - j:2 - j + w] for i in range(3) for j in range(3)]


def g_shifted(taps, g):
  n, h, w, c = taps.shape
  t = taps.reshape(n, h * w, c)
  grads = [jnp.einsum('kmc,kmo->co', t, v.reshape(n, h * w, -1)) for v in _g_views(g)]
  return jnp.stack(grads).reshape(3, 3, c, g.shape[-1])


def g_im2col(taps, g):
  n, h, w, c = taps.shape
  o = g.shape[-1]
  views = jnp.concatenate(_g_views(g), axis=-1).reshape(n, h * w, 9 * o)
  grad = jnp.einsum('kmc,kmo->kco', taps.reshape(n, h * w, c), views).sum(0)  # [c, 9 * o]
  return jnp.moveaxis(grad.reshape(c, 3, 3, o), 0, 2)


FORMS = {'xla': xla, 'g shifted': g_shifted, 'g im2col': g_im2col}
FORMS |= {f'chunks of {s}': functools.partial(conv.kernel_grad_chunked, slices=s) for s in (4, 8, 16)}


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--repeats', type=int, default=5)
  parser.add_argument('--forms', nargs='+', default=list(FORMS), choices=list(FORMS),
                      help="the forms to time ('xla' is always timed: the reference)")
  args = parser.parse_args()
  forms = {f: FORMS[f] for f in ['xla'] + [f for f in args.forms if f != 'xla']}
  options = compile_options.for_backend()
  print('| volume, Cin -> Cout | ' + ' | '.join(f'{f} (s)' for f in forms) +
        ' | best vs xla | max rel. difference |')
  print('|---' * (len(forms) + 3) + '|')
  for side, cin, cout in SHAPES:
    keys = jax.random.split(jax.random.key(0))
    taps = jax.random.normal(keys[0], (side, side, side, 3 * cin))
    g = jax.random.normal(keys[1], (side, side, side, cout))
    times, values = {}, {}
    for name, form in forms.items():
      fn = jax.jit(form, compiler_options=options)
      values[name] = jax.block_until_ready(fn(taps, g))
      runs = []
      for _ in range(args.repeats):
        start = time.perf_counter()
        jax.block_until_ready(fn(taps, g))
        runs.append(time.perf_counter() - start)
      times[name] = float(np.median(runs))
    ref = values['xla']
    diff = max(float(jnp.max(jnp.abs(v - ref)) / jnp.max(jnp.abs(ref))) for v in values.values())
    best = min(times[f] for f in forms if f != 'xla')
    print(f'| {side}^3, {cin} -> {cout} | ' + ' | '.join(f'{times[f]:.4f}' for f in forms) +
          f' | {times["xla"] / best:.2f}x | {diff:.0e} |', flush=True)


if __name__ == '__main__':
  main()
