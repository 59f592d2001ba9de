"""MC-dropout inference: naive vmap vs shared deterministic prefix vs chunked vs Python loop.

Each variant runs in its own process (so its peak RSS is its own) on the same random RS-Net (k=4,
4 levels) and input; the driver prints a Markdown table with times relative to the naive vmap.

  python bench/mc_inference.py --shape 32,32,32 --samples 20
"""

import argparse
import functools
import json
import os
import resource
import subprocess
import sys
import time

VARIANTS = {  # name: (mc_chunk_size (0 = all), share_prefix, python loop)
    'naive vmap': (0, False, False),
    'shared prefix, vmap': (0, True, False),
    'shared prefix, chunks of 4': (4, True, False),
    'python loop': (1, False, True),
}


def run_variant(name: str, shape: tuple[int, ...], samples: int, repeats: int) -> dict:
  import jax  # pylint: disable=g-import-not-at-top
  from rsnet_jax import models, predict  # pylint: disable=g-import-not-at-top
  chunk, share, loop = VARIANTS[name]
  model = models.RSNet()
  x = jax.random.uniform(jax.random.key(0), (1,) + shape + (3,))
  batch = {'inputs': x, 'complementary': x[..., :1]}
  params = jax.jit(model.init)(jax.random.key(1), x, x[..., :1])['params']
  if loop:
    one = jax.jit(lambda p, b, k: model.apply({'params': p}, b['inputs'], b['complementary'],
                                              train=True, rngs={'dropout': k}))

    def fn(p, b, key):
      return [one(p, b, k) for k in jax.random.split(key, samples)]
  else:
    fn = jax.jit(functools.partial(predict.forward, apply_fn=model.apply, num_mc_samples=samples,
                                   mc_chunk_size=chunk or None, share_prefix=share))
  jax.block_until_ready(fn(params, batch, jax.random.key(2)))  # compile
  start = time.perf_counter()
  for i in range(repeats):
    jax.block_until_ready(fn(params, batch, jax.random.key(3 + i)))
  seconds = (time.perf_counter() - start) / repeats
  return {'variant': name, 'seconds': seconds,
          'peak_rss_mb': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
  parser.add_argument('--shape', default='32,32,32')
  parser.add_argument('--samples', type=int, default=20)
  parser.add_argument('--repeats', type=int, default=3)
  parser.add_argument('--variant', help=argparse.SUPPRESS)
  args = parser.parse_args()
  shape = tuple(int(s) for s in args.shape.split(','))
  if args.variant:
    print(json.dumps(run_variant(args.variant, shape, args.samples, args.repeats)))
    return
  rows = []
  for name in VARIANTS:
    out = subprocess.run([sys.executable, __file__, '--variant', name, '--shape', args.shape,
                          '--samples', str(args.samples), '--repeats', str(args.repeats)],
                         capture_output=True, text=True, check=True,
                         env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL='3'))
    rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
  base = rows[0]['seconds']
  print(f'MC dropout, N={args.samples}, shape {shape}, RS-Net k=4:')
  print('| variant | s per case | vs naive vmap | peak RSS (MB) |')
  print('|---|---|---|---|')
  for r in rows:
    print(f"| {r['variant']} | {r['seconds']:.2f} | {r['seconds'] / base:.2f}x | "
          f"{r['peak_rss_mb']:.0f} |")


if __name__ == '__main__':
  main()
