"""How well can any model synthesize the target of the synthetic cases? PSNR of two oracles.

The generator draws, per case and sequence, its own tissue intensities (+-15 %), a smooth bias
field (~10 %), texture and noise, and the BraTS 2017 normalisation rescales each volume by its own
extreme voxels: none of this is a function of the other sequences. The oracles know each case's
anatomy exactly (its tissue map, which a network can at best read from the inputs) and nothing of
those draws:

- ``anatomy``: the generator's mean intensity of each tissue, partial-volume blurred, normalised as
  the data are (``data.normalization``): the best guess without the case's draws;
- ``anatomy + scale``: the same, then the affine map (gain, offset) that best fits the case's
  truth, i.e. an oracle that also knows the case's global scale.

Brain PSNR (eq. 6), as `evaluate` scores it. A network can beat ``anatomy`` only by reading a
case's draws off correlated evidence, which the generator does not put in the inputs.

  python bench/synthesis_ceiling.py                              # the demo's 16 cases
  python bench/synthesis_ceiling.py --cases 24 --shape 40,40,36 --target flair
"""

import argparse

import numpy as np
from scipy import ndimage

from rsnet_jax import metrics
from rsnet_jax.data import preprocess
from rsnet_jax.data import synthetic


def oracles(case: synthetic.Case, target: str, normalization: str) -> dict[str, float]:
  """Brain PSNR (dB) of the two oracles for one case."""
  brain = case.tissue != synthetic.BG
  truth = preprocess.normalize(case.images[target], brain, normalization)
  levels = np.array(synthetic._CONTRAST[target][:synthetic.LESION])  # pylint: disable=protected-access
  guess = preprocess.normalize(ndimage.gaussian_filter(levels[case.tissue], 0.6), brain,
                               normalization)
  design = np.stack([guess[brain], np.ones(int(brain.sum()))], 1)
  gain, offset = np.linalg.lstsq(design, truth[brain], rcond=None)[0]
  scaled = np.where(brain, gain * guess + offset, 0.0)
  return {'anatomy': metrics.psnr(truth, guess, brain),
          'anatomy + scale': metrics.psnr(truth, scaled, brain)}


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
  parser.add_argument('--cases', type=int, default=16)
  parser.add_argument('--seed', type=int, default=0, help='the config\'s seed (case i: seed * '
                      '100003 + i, as generate_dataset)')
  parser.add_argument('--shape', default='40,40,36', help='the voxel grid (demo: 40,40,36)')
  parser.add_argument('--target', default='flair', choices=('t1', 't1ce', 't2', 'flair'))
  parser.add_argument('--normalization', default='brats2017')
  args = parser.parse_args()
  shape = tuple(int(s) for s in args.shape.split(','))
  rows = [oracles(synthetic.generate_case(args.seed * 100003 + i, shape), args.target,
                  args.normalization) for i in range(args.cases)]
  names = list(rows[0])
  print(f'{args.cases} cases of {shape}, target {args.target}, {args.normalization}; brain PSNR '
        '(dB)\n')
  print('| case | ' + ' | '.join(names) + ' |\n|---' * 1 + '|---' * len(names) + '|')
  for i, row in enumerate(rows):
    print(f'| {i} | ' + ' | '.join(f'{row[n]:.2f}' for n in names) + ' |')
  for stat, fn in (('mean', np.mean), ('min', np.min), ('max', np.max)):
    print(f'| **{stat}** | ' + ' | '.join(f'{fn([r[n] for r in rows]):.2f}' for n in names) + ' |')


if __name__ == '__main__':
  main()
