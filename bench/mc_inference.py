"""MC-dropout inference: naive vmap vs shared deterministic prefix vs chunked vs Python loop.

Each variant runs in its own process (so its peak RSS is its own) on the same random RS-Net (k=4,
4 levels) and input; the driver prints a Markdown table with times relative to the first variant.
``XLA temp`` is the scratch memory XLA's compiler plans for the whole computation
(``compiled.memory_analysis()``); with ``--compile-only`` a variant is compiled, not run (for
variants that would not fit in memory).

  python bench/mc_inference.py --shape 32,32,32 --samples 20
  python bench/mc_inference.py --shape 192,208,160 --samples 20 --repeats 1 --no-warmup \
      --variants 'naive, chunks of 4' 'shared prefix, chunks of 4'
  python bench/mc_inference.py --shape 32,32,32 --conv-impl xla   # XLA's own 3D convolutions
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
    'naive, chunks of 4': (4, False, False),
    'shared prefix, chunks of 4': (4, True, False),
    'shared prefix, chunks of 2': (2, True, False),
    'python loop': (1, False, True),
}


def run_variant(name: str, shape: tuple[int, ...], samples: int, repeats: int,
                compile_only: bool, warmup: bool, conv_impl: str = 'auto') -> dict:
  import jax  # pylint: disable=g-import-not-at-top
  from rsnet_jax.inference import forward_pass  # pylint: disable=g-import-not-at-top
  from rsnet_jax.model import models  # pylint: disable=g-import-not-at-top
  from rsnet_jax.runtime import compile_options  # pylint: disable=g-import-not-at-top
  chunk, share, loop = VARIANTS[name]
  options = compile_options.for_backend()  # as predict compiles it
  model = models.RSNet(conv_impl=conv_impl)
  x = jax.random.uniform(jax.random.key(0), (1,) + shape + (3,))
  batch = {'inputs': x, 'complementary': x[..., :1]}
  params = jax.jit(model.init)(jax.random.key(1), x, x[..., :1])['params']
  keys = lambda i: jax.random.key(i)[None]
  if loop:
    one = jax.jit(lambda p, b, k: model.apply({'params': p}, b['inputs'], b['complementary'],
                                              train=True, rngs={'dropout': k}),
                  compiler_options=options)
    compiled = one.lower(params, batch, keys(0)[0]).compile()

    def fn(p, b, k):
      return [compiled(p, b, s) for s in jax.random.split(k[0], samples)]
  else:
    compiled = jax.jit(functools.partial(
        forward_pass.forward, apply_fn=model.apply, num_mc_samples=samples,
        mc_chunk_size=chunk or None,
        share_prefix=share), compiler_options=options).lower(params, batch, keys(2)).compile()
    fn = compiled
  temp_gib = compiled.memory_analysis().temp_size_in_bytes / 2**30
  row = {'variant': name, 'xla_temp_gib': temp_gib, 'seconds': None, 'peak_rss_mb': None}
  if compile_only:
    return row
  if warmup:  # compilation is done above; this also settles caches and allocations
    jax.block_until_ready(fn(params, batch, keys(2)))
  start = time.perf_counter()
  for i in range(repeats):
    jax.block_until_ready(fn(params, batch, keys(3 + i)))
  row['seconds'] = (time.perf_counter() - start) / repeats
  row['peak_rss_mb'] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
  stats = jax.devices()[0].memory_stats() or {}  # GPU/TPU: the allocator's peak
  if 'peak_bytes_in_use' in stats:
    row['peak_device_gib'] = stats['peak_bytes_in_use'] / 2**30
  return row


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
  parser.add_argument('--shape', default='32,32,32')
  parser.add_argument('--samples', type=int, default=20)
  parser.add_argument('--repeats', type=int, default=3)
  parser.add_argument('--variants', nargs='+', default=list(VARIANTS), choices=list(VARIANTS))
  parser.add_argument('--compile-only', nargs='*', default=[], choices=list(VARIANTS),
                      help='variants to compile (memory plan) but not run')
  parser.add_argument('--no-warmup', action='store_true',
                      help='time the first run after compiling (for full-resolution volumes)')
  parser.add_argument('--conv-impl', default='auto', help="model.conv_impl ('auto': 'fold' on "
                      "the CPU, 'xla' elsewhere)")
  parser.add_argument('--variant', help=argparse.SUPPRESS)
  args = parser.parse_args()
  shape = tuple(int(s) for s in args.shape.split(','))
  if args.variant:
    row = run_variant(args.variant, shape, args.samples, args.repeats,
                      args.variant in args.compile_only, not args.no_warmup, args.conv_impl)
    print(json.dumps(row))
    return
  root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # this checkout's rsnet_jax
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL='3',
             PYTHONPATH=os.pathsep.join(filter(None, [root, os.environ.get('PYTHONPATH')])))
  rows = []
  for name in args.variants:
    cmd = [sys.executable, __file__, '--variant', name, '--shape', args.shape,
           '--samples', str(args.samples), '--repeats', str(args.repeats),
           '--conv-impl', args.conv_impl]
    if name in args.compile_only:
      cmd += ['--compile-only', name]
    if args.no_warmup:
      cmd.append('--no-warmup')
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, env=env)
    rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
    print(f'  {rows[-1]}', file=sys.stderr, flush=True)
  base = next((r['seconds'] for r in rows if r['seconds']), None)
  device = any('peak_device_gib' in r for r in rows)
  print(f'MC dropout, N={args.samples}, shape {shape}, RS-Net k=4, conv_impl {args.conv_impl}:')
  print('| variant | s per case | vs first timed | peak RSS (MB) | XLA temp (GiB) |' +
        (' peak device memory (GiB) |' if device else ''))
  print('|---|---|---|---|---|' + ('---|' if device else ''))
  for r in rows:
    if r['seconds'] is None:
      cells = ['not run', '-', '-']
    else:
      cells = [f"{r['seconds']:.2f}", f"{r['seconds'] / base:.2f}x", f"{r['peak_rss_mb']:.0f}"]
    print(f"| {r['variant']} | " + ' | '.join(cells) + f" | {r['xla_temp_gib']:.2f} |" +
          (f" {r.get('peak_device_gib', float('nan')):.2f} |" if device else ''))

if __name__ == '__main__':
  main()
