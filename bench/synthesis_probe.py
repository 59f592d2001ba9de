"""Trains a config's model for N steps and prints brain PSNR (and masked Dice WT) on training and
held-out cases as it goes: does the synthesis underfit, or memorise the training cases?

A plain loop over the config's train split (no validation, checkpoints or montages), the same
`train.train_step` as a run, cases in a fresh random order each epoch; every N/4 steps it scores the
first 3 training cases and every test case deterministically, on the network's window, as
`evaluate` scores what `predict` writes (brain PSNR; Dice WT, the voxels outside the brain background).
The data are the config's synthetic cases, generated once into WORKDIR/data.

  python bench/synthesis_probe.py --workdir /tmp/probe --steps 720 --config.model.variant=rnet
  python bench/synthesis_probe.py --workdir /tmp/probe --steps 2160 --config.model.variant=rnet
"""

import functools
import time

from absl import app
from absl import flags
import jax
import jax.numpy as jnp
from ml_collections import config_flags
import numpy as np

from rsnet_jax.data import pipeline
from rsnet_jax.evaluation import evaluate
from rsnet_jax.inference import forward_pass
from rsnet_jax.inference import predict
from rsnet_jax.model import losses
from rsnet_jax.training import train

_CONFIG = config_flags.DEFINE_config_file('config', 'configs/demo.py', 'the run\'s config file')
_WORKDIR = flags.DEFINE_string('workdir', None, 'where the synthetic cases go', required=True)
_STEPS = flags.DEFINE_integer('steps', 720, 'training steps (the learning-rate schedule spans them)')


def _scores(forward, params, examples) -> tuple[list[float], list[float]]:
  """Brain PSNR and Dice WT per example, as `evaluate` scores a prediction."""
  psnr, dice = [], []
  for example in examples:
    out = forward(params, jax.tree.map(lambda a: jnp.asarray(a)[None], example), None)
    row = evaluate.score(example, predict.outside_brain_as_background(
        {k: np.asarray(v[0]) for k, v in out.items()}, example['brain']))
    psnr += [round(row['psnr_brain'], 2)] if 'psnr_brain' in row else []
    dice += [round(row['dice_WT'], 2)] if 'dice_WT' in row else []
  return psnr, dice


def main(argv) -> None:
  del argv
  config, num_steps = _CONFIG.value, _STEPS.value
  task = pipeline.Task.from_config(config)
  splits = pipeline.dataset_splits(config, _WORKDIR.value, task)
  print({split: [c.case_id for c in cases] for split, cases in splits.items()}, flush=True)
  examples = {s: [pipeline.load_case(c, task)[0] for c in splits[s]] for s in ('train', 'test')}
  ratios = losses.class_frequency_ratios(pipeline.label_voxel_counts(splits['train'],
                                                                     config.model.num_classes))
  step = jax.jit(functools.partial(train.train_step, config=config, class_ratios=ratios,
                                   steps_per_epoch=len(examples['train'])))
  state = train.create_train_state(config, task, jax.random.key(config.seed), num_steps=num_steps)
  forward = jax.jit(functools.partial(forward_pass.forward, apply_fn=state.apply_fn,
                                      num_mc_samples=0))
  batches = [jax.tree.map(lambda a: jnp.asarray(a)[None], e) for e in examples['train']]
  rng, order, start = np.random.default_rng(config.seed), [], time.time()
  for i in range(1, num_steps + 1):
    if not order:
      order = list(rng.permutation(len(batches)))
    state, parts = step(state, batches[order.pop()], jax.random.key(config.seed + 1))
    if i % max(num_steps // 4, 1) == 0 or i == num_steps:
      (train_psnr, train_dice), (test_psnr, test_dice) = (
          _scores(forward, state.params, examples['train'][:3]),
          _scores(forward, state.params, examples['test']))
      print(f'step {i} ({time.time() - start:.0f} s) loss {float(parts["loss"]):.4f} | brain PSNR '
            f'train {train_psnr} test {test_psnr} | Dice WT train {train_dice} test {test_dice}',
            flush=True)


if __name__ == '__main__':
  app.run(main)
