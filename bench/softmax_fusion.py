"""The segmentation head's tail on XLA:CPU: `jax.nn.softmax` vs `uncertainty.softmax` after it.

XLA:CPU (jax 0.10) hands the class-axis reduce of `jax.nn.softmax` to YNNPACK together with the
head's ReLUs and pointwise matmuls (`conv.PointwiseConv3D`) before it: one fusion, which also takes a
materialised broadcast zero per ReLU. `uncertainty.softmax` writes the same formula as elementwise
ops over the classes, with no reduce, and the matmuls stay separate. This times the segmentation
head of RS-Net k=4 after its 3x3x3 conv (ReLU, 16 -> 8, ReLU, 8 -> 4, ReLU, 4 -> classes) followed by
each softmax, and by none (the logits alone), for ``--samples`` volumes at once as an MC chunk
computes them; median of 3 after one warm-up, one process, compiled as the package compiles
(`rsnet_jax/runtime/compile_options.py`), with XLA's scratch plan and the largest difference of the
probabilities.

  python bench/softmax_fusion.py
  python bench/softmax_fusion.py --shape 128,128,128 --samples 4
"""

import argparse
import time

import flax.linen as nn
import jax
import numpy as np

from rsnet_jax.inference import uncertainty
from rsnet_jax.model import conv
from rsnet_jax.runtime import compile_options

SOFTMAXES = {'logits alone': lambda logits: logits,
             'jax.nn.softmax': lambda logits: jax.nn.softmax(logits, axis=-1),
             'uncertainty.softmax': uncertainty.softmax}


class Tail(nn.Module):
  """The segmentation head after its 3x3x3 conv, k=4: ``[..., 4k] -> [..., classes]`` logits."""

  base_filters: int = 4
  classes: int = 4

  @nn.compact
  def __call__(self, x):
    k = self.base_filters
    x = nn.relu(x)
    x = nn.relu(conv.PointwiseConv3D(2 * k, name='Conv_1')(x))
    x = nn.relu(conv.PointwiseConv3D(k, name='Conv_2')(x))
    return conv.PointwiseConv3D(self.classes, name='Conv_3')(x)


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
  parser.add_argument('--shape', default='192,208,160', help='volume D,H,W (default: the crop)')
  parser.add_argument('--samples', type=int, default=2, help='volumes at once (an MC chunk)')
  args = parser.parse_args()
  shape = (args.samples,) + tuple(int(s) for s in args.shape.split(',')) + (16,)
  tail = Tail()
  x = jax.random.normal(jax.random.key(0), shape)
  params = tail.init(jax.random.key(1), x[:, :1, :1, :1])
  options = compile_options.for_backend()
  print(f'| {args.samples} x {args.shape}, after the head\'s conv | s (median of 3) | '
        'XLA temp (GiB) | max difference to jax.nn.softmax |')
  print('|---|---|---|---|')
  reference = None
  for name, softmax in SOFTMAXES.items():
    fn = jax.jit(lambda p, x, softmax=softmax: softmax(tail.apply(p, x)),
                 compiler_options=options).lower(params, x).compile()
    temp = fn.memory_analysis().temp_size_in_bytes / 2**30
    out = jax.block_until_ready(fn(params, x))
    times = []
    for _ in range(3):
      start = time.perf_counter()
      jax.block_until_ready(fn(params, x))
      times.append(time.perf_counter() - start)
    if name == 'jax.nn.softmax':
      reference = np.asarray(out)
    diff = ('-' if reference is None or name == 'logits alone'
            else f'{np.abs(np.asarray(out) - reference).max():.1e}')
    print(f'| {name} | {np.median(times):.3f} | {temp:.2f} | {diff} |')
    del out


if __name__ == '__main__':
  main()
