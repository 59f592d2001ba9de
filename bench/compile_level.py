"""XLA's backend optimisation level on the CPU: compile time and run time of the demo's train step
and MC-dropout forward (the figures behind `rsnet_jax/compile_options.py`).

Each level is compiled from the same lowered program in one process, so read the ratios. Run
without XLA_FLAGS setting the level:

  python bench/compile_level.py                 # the demo config, levels: default (3), 2, 1, 0
  python bench/compile_level.py --steps 20 --levels 3 2
"""

import argparse
import functools
import sys
import tempfile
import time

import jax
import numpy as np

from configs import demo
from rsnet_jax import losses
from rsnet_jax import predict
from rsnet_jax import train
from rsnet_jax.data import layouts
from rsnet_jax.data import pipeline
from rsnet_jax.data import synthetic


def _median_time(fn, repeats: int) -> float:
  times = []
  for _ in range(repeats + 1):  # the first call is left out
    start = time.perf_counter()
    jax.block_until_ready(fn())
    times.append(time.perf_counter() - start)
  return float(np.median(times[1:]))


def main(argv: list[str]) -> None:
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--levels', type=int, nargs='+', default=[3, 2, 1, 0])
  parser.add_argument('--steps', type=int, default=10, help='timed calls per level')
  args = parser.parse_args(argv)
  config = demo.get_config()
  task = pipeline.Task.from_config(config)
  with tempfile.TemporaryDirectory() as data:
    synthetic.generate_dataset(data, 2, seed=0, shape=tuple(config.data.synthetic_shape))
    cases = layouts.discover(data)
    example, _ = pipeline.load_case(cases[0], task)
    ratios = losses.class_frequency_ratios(pipeline.label_voxel_counts(cases, 4))
  state = train.create_train_state(config, task, jax.random.key(0), num_steps=1000)
  batch = jax.tree.map(lambda a: a[None], example)
  inputs = pipeline.network_inputs(example)
  keys = jax.random.split(jax.random.key(0), 1)
  step = jax.jit(functools.partial(train.train_step, config=config, class_ratios=ratios,
                                   steps_per_epoch=12)).lower(state, batch, jax.random.key(1))
  forward = jax.jit(functools.partial(
      predict.forward, apply_fn=state.apply_fn,
      num_mc_samples=config.predict.num_mc_samples)).lower(state.params, inputs, keys)
  print(f'demo config, {tuple(config.data.crop_shape)} voxels, k={config.model.base_filters}, '
        f'{config.predict.num_mc_samples} MC samples, jax {jax.__version__}\n')
  print('| level | train step: compile | run | MC forward: compile | run |')
  print('|---|---|---|---|---|')
  for level in args.levels:
    options = {'xla_backend_optimization_level': level}
    start = time.perf_counter()
    step_fn = step.compile(options)
    step_compile = time.perf_counter() - start
    start = time.perf_counter()
    forward_fn = forward.compile(options)
    forward_compile = time.perf_counter() - start
    step_run = _median_time(lambda: step_fn(state, batch, jax.random.key(1)), args.steps)
    forward_run = _median_time(lambda: forward_fn(state.params, inputs, keys), args.steps)
    print(f'| {level} | {step_compile:.1f} s | {step_run:.3f} s | {forward_compile:.1f} s | '
          f'{forward_run:.3f} s |', flush=True)


if __name__ == '__main__':
  main(sys.argv[1:])
