"""One trained model, the same anatomy at three voxel sizes, with and without resampling.

Generates cases of our generator on a fine grid (``--fine-shape``, default 80 x 80 x 72 = 3 x 3 x
2.2 mm) and makes, from each, the voxel sizes a model trained on the demo's 6 x 6 x 4.3 mm grid
meets: that grid (2 x 2 x 2 blocks averaged: partial volume, as a coarser acquisition), the fine
grid as generated (voxels half the model's), and thick slices (2 x 2 x 6 blocks: the model's
in-plane size, slices 3x thicker). Labels are taken by the nearest voxel. Each set is scored by
`evaluate.evaluate_cases` (on the ground truth's own grid, every brain voxel predicted) with the
model's grid from ``WORKDIR/grid.json`` (``predict.resample='auto'``) and as stored (``'never'``).

  python -m rsnet_jax.main --config configs/demo.py --workdir runs/demo     # the model
  python bench/voxel_size.py --workdir runs/demo --config configs/demo.py
"""

import argparse
import os
import sys
import tempfile
import time


sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from rsnet_jax.data import grid  # pylint: disable=g-import-not-at-top,wrong-import-position
from rsnet_jax.data import layouts  # pylint: disable=wrong-import-position
from rsnet_jax.data import pipeline  # pylint: disable=wrong-import-position
from rsnet_jax.data import synthetic  # pylint: disable=wrong-import-position
from rsnet_jax.evaluation import evaluate  # pylint: disable=wrong-import-position
from rsnet_jax.training import checkpoints  # pylint: disable=wrong-import-position
from rsnet_jax.training import train  # pylint: disable=wrong-import-position

# name -> the block of fine voxels one voxel of the set averages
VARIANTS = {'model grid (1x)': (2, 2, 2), 'voxels half as large (2x finer)': (1, 1, 1),
            'thick slices (1 x 1 x 3)': (2, 2, 6)}


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
  parser.add_argument('--workdir', required=True, help='a trained run (with grid.json)')
  parser.add_argument('--config', default='configs/demo.py', help='the run\'s config file')
  parser.add_argument('--cases', type=int, default=4)
  parser.add_argument('--seed', type=int, default=77)
  parser.add_argument('--fine-shape', default='80,80,72')
  args = parser.parse_args()
  import importlib.util  # pylint: disable=g-import-not-at-top
  spec = importlib.util.spec_from_file_location('run_config', args.config)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  config = module.get_config()
  task = pipeline.Task.from_config(config)
  state = train.abstract_train_state(config, task)
  state, step = checkpoints.restore_params(args.workdir, config, state, config.predict.checkpoint)
  fine = tuple(int(s) for s in args.fine_shape.split(','))
  cases = [synthetic.generate_case(args.seed * 100003 + i, fine) for i in range(args.cases)]
  print(f'model: {args.workdir} ({config.predict.checkpoint} checkpoint, step {step}), grid '
        f'{grid.read(args.workdir)["spacing_mm"]} mm; {args.cases} cases generated at {fine}\n')
  print('| voxel size | grid | resampling | Dice WT | Dice TC | Dice ET | PSNR brain (dB) | s |')
  print('|---|---|---|---|---|---|---|---|')
  with tempfile.TemporaryDirectory() as tmp:
    for name, block in VARIANTS.items():
      folder = os.path.join(tmp, name.split()[0] + name.split()[-1].strip('()'))
      for i, case in enumerate(cases):
        made = synthetic.block_average(case, block)
        synthetic.write_case(made, os.path.join(folder, f'Case_{i:03d}'), f'Case_{i:03d}',
                             'brats2021')
      found = layouts.discover(folder)
      spacing = grid.case_spacing(found[0].path('t1'))
      for mode in ('auto', 'never'):
        config.predict.resample = mode
        on_grid = grid.on_model_grid(config, args.workdir, task)
        start = time.time()
        summary = evaluate.evaluate_cases(config, state.params, state.apply_fn, on_grid, found,
                                          os.path.join(tmp, 'scores'), f'{name}_{mode}')
        cells = [f'{summary[k]["mean"]:.2f} +- {summary[k]["std"]:.2f}'
                 for k in ('dice_WT', 'dice_TC', 'dice_ET', 'psnr_brain')]
        size = ' x '.join(f'{s:.1f}' for s in spacing)
        shape = 'x'.join(str(n) for n in made.seg.shape)
        print(f'| {name}: {size} mm | {shape} | {mode} | ' + ' | '.join(cells) +
              f' | {time.time() - start:.0f} |', flush=True)


if __name__ == '__main__':
  main()
