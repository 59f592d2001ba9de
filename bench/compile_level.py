"""XLA's backend optimisation level and XLA:CPU's fusion emitters: compile time and run time of the
demo's train step and MC-dropout forward (the figures behind `rsnet_jax/runtime/compile_options.py`).

Each combination is compiled from the same lowered program in one process, so read the ratios. Run
without XLA_FLAGS setting either option:

  python bench/compile_level.py                 # the demo config, levels: default (3), 2, 1, 0
  python bench/compile_level.py --steps 20 --levels 3 2
  python bench/compile_level.py --levels 2 0 --emitters on off   # XLA:CPU's MLIR fusion emitters
                                                                 # (on: XLA's default) or its loop
                                                                 # emitters (off)
  python bench/compile_level.py --levels 2 --emitters on off --steps 1 --diverge-steps 20
"""

import argparse
import functools
import itertools
import sys
import tempfile
import time

import jax
import numpy as np

from configs import demo
from rsnet_jax.data import layouts
from rsnet_jax.data import pipeline
from rsnet_jax.data import synthetic
from rsnet_jax.inference import forward_pass
from rsnet_jax.model import losses
from rsnet_jax.training import train


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
  parser.add_argument('--emitters', nargs='+', default=['on'], choices=['on', 'off'],
                      help="xla_cpu_use_fusion_emitters for each level (on: XLA's default)")
  parser.add_argument('--steps', type=int, default=10, help='timed calls per level')
  parser.add_argument('--diverge-steps', type=int, default=0,
                      help='then train this many steps from the same state with the fusion '
                           'emitters on and off (at the first level) and print how far the '
                           'parameters drift apart')
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
      forward_pass.forward, apply_fn=state.apply_fn,
      num_mc_samples=config.predict.num_mc_samples)).lower(state.params, inputs, keys)
  print(f'demo config, {tuple(config.data.crop_shape)} voxels, k={config.model.base_filters}, '
        f'{config.predict.num_mc_samples} MC samples, jax {jax.__version__}\n')
  print('| level | fusion emitters | train step: compile | run | MC forward: compile | run |')
  print('|---|---|---|---|---|---|')
  step_fns = {}  # (level, fusion emitters on): the compiled train step, for --diverge-steps
  for level, emitters in itertools.product(args.levels, args.emitters):
    options = {'xla_backend_optimization_level': level,
               'xla_cpu_use_fusion_emitters': emitters == 'on'}
    start = time.perf_counter()
    step_fn = step_fns[level, emitters == 'on'] = step.compile(options)
    step_compile = time.perf_counter() - start
    start = time.perf_counter()
    forward_fn = forward.compile(options)
    forward_compile = time.perf_counter() - start
    step_run = _median_time(lambda: step_fn(state, batch, jax.random.key(1)), args.steps)
    forward_run = _median_time(lambda: forward_fn(state.params, inputs, keys), args.steps)
    print(f'| {level} | {emitters} | {step_compile:.1f} s | {step_run:.3f} s | '
          f'{forward_compile:.1f} s | {forward_run:.3f} s |', flush=True)
  if args.diverge_steps:
    level = args.levels[0]
    fns = [step_fns.get((level, on)) or step.compile(
        {'xla_backend_optimization_level': level, 'xla_cpu_use_fusion_emitters': on})
           for on in (True, False)]
    _divergence(fns, state, batch, level, args.diverge_steps)


def _divergence(fns, state, batch, level: int, num_steps: int) -> None:
  """Trains ``num_steps`` from ``state`` with ``fns``, the train step compiled with the fusion
  emitters on and off; prints the largest parameter difference after each step."""
  print(f'\nlevel {level}, fusion emitters on vs off, the same state and batch:\n')
  print('| step | loss on | loss off | max abs parameter difference |')
  print('|---|---|---|---|')
  states = [state, state]
  for i in range(1, num_steps + 1):
    outs = [fn(s, batch, jax.random.key(1)) for fn, s in zip(fns, states)]
    states = [s for s, _ in outs]
    diff = max(float(np.max(np.abs(a - b))) for a, b in zip(
        jax.tree.leaves(states[0].params), jax.tree.leaves(states[1].params)))
    print(f'| {i} | {float(outs[0][1]["loss"]):.6f} | {float(outs[1][1]["loss"]):.6f} | '
          f'{diff:.2e} |', flush=True)


if __name__ == '__main__':
  main(sys.argv[1:])
