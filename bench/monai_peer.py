"""MONAI's BasicUNet as a peer of RS-Net on the generalization check's cases (a benchmark, never a
dependency of the package).

Reads a finished `configs/experiments/generalization.py` run (its training split, its held-out
cases of both families, the config of its ``augmentation`` model), trains a multitask BasicUNet on
the same training stream (our Grain pipeline: the same crops, the same order, the same augmented
examples with --augment) for the same number of steps with the same schedule (Adam, warm-up and
cosine decay), and scores it exactly as the run scored RS-Net (`generalization.scores`, outputs
outside the brain set to background and 0 as for RS-Net). Output channels: the segmentation's C
logits and the synthesis; loss: MONAI's DiceCE on the logits + the MSE over the brain on the
synthesis.

  python bench/monai_peer.py --workdir runs/gen               # without augmentation
  python bench/monai_peer.py --workdir runs/gen --augment

Needs torch and monai beside the package (`pip install torch monai` in a separate venv, then
`pip install -e .` there).
"""

import argparse
import json
import math
import os
import sys
import time

import numpy as np


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
  parser.add_argument('--workdir', required=True, help='a finished generalization run')
  parser.add_argument('--augment', action='store_true', help="the run's augmentation settings")
  parser.add_argument('--features', default='8,16,32,64,128,8', help="BasicUNet's features")
  parser.add_argument('--threads', type=int, default=2)
  parser.add_argument('--ood-dir', default='', help="the run's experiment.ood_data_dir, if set")
  parser.add_argument('--steps', type=int, default=0, help='0: as many as the run trained')
  args = parser.parse_args()
  sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
  import ml_collections  # pylint: disable=g-import-not-at-top
  from monai.losses import DiceCELoss  # pylint: disable=g-import-not-at-top
  from monai.networks.nets import BasicUNet  # pylint: disable=g-import-not-at-top
  import torch  # pylint: disable=g-import-not-at-top
  from rsnet_jax.data import layouts  # pylint: disable=g-import-not-at-top
  from rsnet_jax.data import orientation  # pylint: disable=g-import-not-at-top
  from rsnet_jax.data import pipeline  # pylint: disable=g-import-not-at-top
  from rsnet_jax.evaluation import report  # pylint: disable=g-import-not-at-top
  from rsnet_jax.experiments import common  # pylint: disable=g-import-not-at-top
  from rsnet_jax.experiments import generalization  # pylint: disable=g-import-not-at-top
  from rsnet_jax.inference import predict  # pylint: disable=g-import-not-at-top

  torch.manual_seed(0)
  torch.set_num_threads(args.threads)
  with open(os.path.join(args.workdir, 'augmentation', 'config.json')) as f:
    config = ml_collections.ConfigDict(json.load(f))
  if not args.augment:
    config = generalization.without_augmentation(config)
  task = pipeline.Task.from_config(config)
  splits = pipeline.dataset_splits(config, args.workdir, task)
  c = config.model.num_classes
  net = BasicUNet(spatial_dims=3, in_channels=len(task.inputs), out_channels=c + 1,
                  features=tuple(int(f) for f in args.features.split(',')))
  params = sum(p.numel() for p in net.parameters())
  print(f'BasicUNet features {args.features}: {params:,} parameters', file=sys.stderr, flush=True)
  steps = args.steps or len(splits['train']) * config.train.num_epochs
  o = config.optim
  opt = torch.optim.Adam(net.parameters(), lr=o.learning_rate, betas=(o.b1, o.b2), eps=o.eps)
  warm = o.warmup_steps
  schedule = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: (s + 1) / warm if s < warm else
                                               0.5 * (1 + math.cos(math.pi * (s - warm) /
                                                                   max(steps - warm, 1))))
  dice_ce = DiceCELoss(to_onehot_y=True, softmax=True)
  stream = pipeline.to_iterator(pipeline.train_dataset(
      splits['train'], task, 1, config.train.num_epochs, config.seed, config=config), 0)
  start = time.perf_counter()
  net.train()
  for step, batch in zip(range(steps), stream):
    x = torch.from_numpy(np.moveaxis(batch['inputs'], -1, 1))
    out = net(x)
    labels = torch.from_numpy(batch['labels'][:, None].astype(np.int64))
    brain = torch.from_numpy(batch['brain'][:, None])
    target = torch.from_numpy(np.moveaxis(batch['target'], -1, 1))
    mse = ((out[:, c:] - target)**2 * brain).sum() / brain.sum().clamp(min=1)
    loss = dice_ce(out[:, :c], labels) + mse
    opt.zero_grad()
    loss.backward()
    opt.step()
    schedule.step()
    if (step + 1) % 120 == 0:
      print(f'step {step + 1}/{steps}: loss {loss.item():.4f} (mse {mse.item():.4f})',
            file=sys.stderr, flush=True)
  seconds = time.perf_counter() - start

  net.eval()
  split_name, home = common.held_out(splits)
  ood = layouts.discover(args.ood_dir or os.path.join(args.workdir, 'relaxometry'),
                         layouts.from_config(config.data))
  families = {f'same family ({split_name})': home, 'independent family': ood}
  rows = []
  for family, cases in families.items():
    per_case = []
    for case in cases:
      example, meta = pipeline.load_case(case, task)
      with torch.no_grad():
        out = net(torch.from_numpy(np.moveaxis(example['inputs'], -1, 0)[None]))[0].numpy()
      out = np.moveaxis(out, 0, -1)
      logits = out[..., :c]
      probabilities = np.exp(logits - logits.max(-1, keepdims=True))
      probabilities /= probabilities.sum(-1, keepdims=True)
      outputs = predict.outside_brain_as_background(
          {'probabilities': probabilities, 'synthesis': out[..., c:]}, example['brain'])
      per_case.append(generalization.scores(example, outputs, orientation.spacing(meta.affine)))
    cells = []
    for k, _ in generalization.COLUMNS:
      m, s = report.mean_std([r[k] for r in per_case])
      cells.append(f'{m:.2f} +- {s:.2f}')
    rows.append(f'| BasicUNet{" + augmentation" if args.augment else ""} | {family} | '
                + ' | '.join(cells) + ' |')
  print(f'BasicUNet features {args.features}: {params:,} parameters, {steps} steps in '
        f'{seconds:.0f} s ({args.threads} threads)')
  print('| model | cases | ' + ' | '.join(label for _, label in generalization.COLUMNS) + ' |')
  print('|---' * (len(generalization.COLUMNS) + 2) + '|')
  print('\n'.join(rows))


if __name__ == '__main__':
  main()
