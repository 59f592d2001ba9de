"""Few-channel folded convs on XLA:CPU: Eigen's 2D conv vs YNNPACK's, reached by zero channels.

`model.conv_impl='fold'` computes a 3x3x3 conv as a 2D conv over ``taps`` ``[N, H, W, 3 * Cin]``
(the depth folded into the batch, the three depth taps on the channel axis). XLA:CPU hands a 2D conv
to its YNNPACK kernels only when ``max(Cin, Cout) > 16``; otherwise it runs Eigen's conv. This times
the forward 2D conv per layer shape of RS-Net with few output channels, as it is (``3 * Cin``
channels) and with the taps padded by zero channels (and the kernel by zero rows) to ``--pad``
channels, says which kernel XLA chose (``ynn``: a YNNPACK fusion in the compiled program) and checks
the values agree. Best of ``--repeats`` after one warm-up, both forms alternating, one process,
compiled as the package compiles (`rsnet_jax/runtime/compile_options.py`).

  python bench/few_channels.py
  python bench/few_channels.py --volumes 64 128 192x208x160 --pad 16 18 20 24
"""

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np

from rsnet_jax.model import conv
from rsnet_jax.runtime import compile_options

# (Cin, Cout) of RS-Net's 3x3x3 convs with <= 4 outputs at k=4 (start, decoder 0) and, for contrast,
# those with 8 and 16 (encoder 1; the regression head with its complementary input, the segmentation
# head).
LAYERS = ((3, 4), (4, 4), (8, 4), (4, 8), (5, 16), (4, 16))


def _conv(taps, kernel, width: int):
  """The folded 2D conv with the taps and the kernel zero-padded to ``width`` channels."""
  extra = width - taps.shape[-1]
  taps = jnp.pad(taps, ((0, 0),) * 3 + ((0, extra),))
  kernel = jnp.pad(kernel, ((0, 0), (0, 0), (0, extra), (0, 0)))
  return conv.conv2d(taps, kernel)


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split('\n', maxsplit=1)[0])
  parser.add_argument('--volumes', nargs='+', default=['64', '128', '192x208x160'],
                      help='D (cube) or DxHxW: the depth is folded into the batch')
  parser.add_argument('--pad', nargs='+', type=int, default=[18], help='channel counts to try')
  parser.add_argument('--repeats', type=int, default=5)
  args = parser.parse_args()
  options = compile_options.for_backend()
  print(f'jax {jax.__version__}, {jax.devices()[0].device_kind}')
  print('| volume | Cin -> Cout | taps as they are (ms) | ' +
        ' | '.join(f'padded to {p} (ms)' for p in args.pad) + ' | best vs as they are |')
  print('|---|---|---|' + '---|' * len(args.pad) + '---|')
  rng = np.random.default_rng(0)
  for volume in args.volumes:
    d, h, w = (int(s) for s in volume.split('x')) if 'x' in volume else (int(volume),) * 3
    for cin, cout in LAYERS:
      taps = jnp.asarray(rng.standard_normal((d, h, w, 3 * cin), np.float32))
      kernel = jnp.asarray(rng.standard_normal((3, 3, 3 * cin, cout), np.float32))
      widths = [3 * cin] + [p for p in args.pad if p > 3 * cin]
      compiled = {p: jax.jit(_conv, static_argnums=2, compiler_options=options)
                  .lower(taps, kernel, p).compile() for p in widths}
      outs = {p: np.asarray(c(taps, kernel)) for p, c in compiled.items()}
      for p in widths[1:]:
        np.testing.assert_allclose(outs[p], outs[widths[0]], rtol=1e-4, atol=1e-4)
      best = {p: float('inf') for p in widths}
      for _ in range(args.repeats):
        for p, c in compiled.items():
          start = time.perf_counter()
          jax.block_until_ready(c(taps, kernel))
          best[p] = min(best[p], time.perf_counter() - start)
      ynn = {p: ' ynn' if 'ynn_fusion' in c.as_text() else '' for p, c in compiled.items()}
      cells = {p: f'{best[p] * 1e3:.1f}{ynn[p]}' for p in widths}
      print(f'| {volume} | {cin} -> {cout} | {cells[widths[0]]} | ' +
            ' | '.join(cells[p] if p in widths[1:] else '-' for p in args.pad) +
            f' | {best[widths[0]] / min(best.values()):.2f}x |', flush=True)


if __name__ == '__main__':
  main()
