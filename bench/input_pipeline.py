"""Grain input pipeline: cases/s delivered from .nii.gz files with 0, 1 and 2 worker processes,
as read and augmented (``config.augment``).

Synthetic cases at the BraTS size (240x240x155, four sequences and a segmentation, gzipped NIfTI)
are generated once into --data; then for each worker count the training stream of
`rsnet_jax.data.pipeline.train_dataset` (read, reorient, normalise, crop to 184x200x152 around the
brain) is iterated, after a warm-up of two batches (worker start-up), for --cases cases. The
consumption rate to compare against is a training step's (`bench/train_step.py`): the loader is
the bottleneck only if it delivers fewer cases/s than the step consumes.

--augment: ``off`` (as read), ``typical`` (`TYPICAL`: nnU-Net's probabilities for the transforms
it shares with us, plus a random crop) and ``all`` (every transform at probability 1, the worst
case).

  python bench/input_pipeline.py --data /tmp/bench_brats --num-cases 8 --cases 16
  python bench/input_pipeline.py --data /tmp/bench_demo --shape 40,40,36 --crop 32,32,32 \
      --workers 0 --augment off typical all
"""

SPATIAL = ('mirror', 'rotate', 'scale', 'elastic')
INTENSITY = ('gamma', 'contrast', 'bias_field', 'noise', 'blur')
TYPICAL = {'mirror': 0.5, 'rotate': 0.2, 'scale': 0.2, 'elastic': 0.2, 'gamma': 0.3,
           'contrast': 0.15, 'bias_field': 0.1, 'noise': 0.1, 'blur': 0.2}

import argparse
import os
import sys
import time


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--data', default='/tmp/rsnet_bench_brats')
  parser.add_argument('--num-cases', type=int, default=8, help='cases generated')
  parser.add_argument('--cases', type=int, default=16, help='cases read per measurement')
  parser.add_argument('--workers', type=int, nargs='+', default=[0, 1, 2])
  parser.add_argument('--shape', default='240,240,155')
  parser.add_argument('--crop', default='', help="X,Y,Z; '' = the default config's crop")
  parser.add_argument('--augment', nargs='+', default=['off'], choices=['off', 'typical', 'all'])
  args = parser.parse_args()
  sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
  from absl import flags  # pylint: disable=g-import-not-at-top
  from configs import paper  # pylint: disable=g-import-not-at-top
  from rsnet_jax.data import layouts  # pylint: disable=g-import-not-at-top
  from rsnet_jax.data import pipeline  # pylint: disable=g-import-not-at-top
  from rsnet_jax.data import synthetic  # pylint: disable=g-import-not-at-top
  flags.FLAGS.mark_as_parsed()  # grain's worker processes read absl flags

  shape = tuple(int(s) for s in args.shape.split(','))
  if not os.path.exists(os.path.join(args.data, '.complete')):
    t = time.perf_counter()
    synthetic.generate_dataset(args.data, args.num_cases, 0, 'brats2021', shape)
    open(os.path.join(args.data, '.complete'), 'w').close()
    print(f'generated {args.num_cases} cases {shape} in {time.perf_counter() - t:.0f} s',
          file=sys.stderr)
  cases = layouts.discover(args.data)
  size = sum(os.path.getsize(p) for c in cases for p in c.files.values()) / len(cases) / 2**20
  config = paper.get_config()
  if args.crop:
    config.data.crop_shape = tuple(int(s) for s in args.crop.split(','))
  task = pipeline.Task.from_config(config)
  epochs = (args.cases + 2) // len(cases) + 1
  print(f'{len(cases)} cases of {shape}, {size:.1f} MiB of .nii.gz each, crop {task.crop_shape}, '
        f'{os.cpu_count()} CPUs')
  print('| augment | workers | cases/s | s per case |\n|---|---|---|---|')
  for name in args.augment:
    for key in SPATIAL + INTENSITY:
      config.augment[f'{key}_probability'] = {'off': 0.0, 'all': 1.0}.get(name, TYPICAL[key])
    config.augment.random_crop = name != 'off'
    for workers in args.workers:
      it = pipeline.to_iterator(pipeline.train_dataset(cases, task, 1, epochs, seed=0,
                                                       config=config), workers)
      for _ in range(2):
        next(it)
      t = time.perf_counter()
      for _ in range(args.cases):
        next(it)
      rate = args.cases / (time.perf_counter() - t)
      print(f'| {name} | {workers} | {rate:.2f} | {1 / rate:.3f} |', flush=True)


if __name__ == '__main__':
  main()
