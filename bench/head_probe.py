"""Looks inside the segmentation head of a trained run: dead units and logits per class.

For the first case of a split, with the run's checkpoint (``best`` or ``latest``), prints per label
class the voxel count, the mean logits, the mean softmax and what the argmax predicts, and per hidden
layer of the segmentation head (``Conv_0..2``, after their ReLU) how many units are zero at every
voxel ("dead everywhere"), the share of tumour voxels where all units are zero, and the mean
activation at tumour voxels and outside the brain. This is how "Learning notes" in docs/training.md
measured the collapse of the head to background.

  python bench/head_probe.py runs/demo            # the test split's first case, best checkpoint
  python bench/head_probe.py runs/demo --split train --checkpoint latest
"""

import argparse
import json
import sys

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from rsnet_jax.data import pipeline
from rsnet_jax.training import checkpoints
from rsnet_jax.training import train


def saved_config(workdir: str) -> ml_collections.ConfigDict:
  """The run's config from ``WORKDIR/config.json`` (tuples restored from JSON lists)."""
  with open(f'{workdir}/config.json') as f:
    flat = json.load(f)
  config = ml_collections.ConfigDict()
  for key, value in flat.items():
    node = config
    *path, leaf = key.split('.')
    for p in path:
      node = node.setdefault(p, ml_collections.ConfigDict())
    node[leaf] = tuple(value) if isinstance(value, list) else value
  return config


def main(argv: list[str]) -> None:
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('workdir')
  parser.add_argument('--split', default='test', choices=('train', 'val', 'test'))
  parser.add_argument('--checkpoint', default='best', choices=('best', 'latest'))
  args = parser.parse_args(argv)
  config = saved_config(args.workdir)
  task = pipeline.Task.from_config(config)
  state = train.create_train_state(config, task, jax.random.key(0))
  state, step = checkpoints.restore_params(args.workdir, config, state, args.checkpoint)
  case = pipeline.dataset_splits(config, args.workdir, task)[args.split][0]
  example, _ = pipeline.load_case(case, task)
  batch = jax.tree.map(lambda a: jnp.asarray(a)[None], example)
  outputs, captured = state.apply_fn(
      {'params': state.params}, batch['inputs'], batch.get('complementary'), train=False,
      capture_intermediates=True, mutable=['intermediates'])
  logits = np.asarray(outputs['logits'][0])
  labels, brain = example['labels'], example['brain'] > 0
  probabilities = np.asarray(jax.nn.softmax(logits, -1))
  classes = logits.shape[-1]
  print(f'{args.workdir}, {args.checkpoint} checkpoint (step {step}), {args.split} case '
        f'{case.case_id}: {brain.sum()} brain voxels of {labels.size}')
  for c in range(classes):
    at = labels == c
    if at.any():
      print(f'  class {c}: {at.sum():6d} voxels, mean logits {np.round(logits[at].mean(0), 2)}, '
            f'mean softmax {np.round(probabilities[at].mean(0), 3)}, argmax counts '
            f'{np.bincount(logits[at].argmax(-1), minlength=classes)}')
  head = captured['intermediates']['segmentation']
  for name in ('Conv_0', 'Conv_1', 'Conv_2'):
    h = np.maximum(np.asarray(head[name]['__call__'][0][0]), 0)  # the layer's ReLU
    dead = int((h == 0).all(axis=(0, 1, 2)).sum())
    silent = float((h[labels > 0] == 0).all(-1).mean())
    print(f'  {name} ({h.shape[-1]} units): {dead} dead everywhere; all units 0 at '
          f'{100 * silent:.0f} % of tumour voxels; mean activation {h[labels > 0].mean():.2f} at '
          f'tumour voxels, {h[~brain].mean():.2f} outside the brain')


if __name__ == '__main__':
  main(sys.argv[1:])
