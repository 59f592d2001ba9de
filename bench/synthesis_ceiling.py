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

and one baseline that is not an oracle, to show what the inputs alone give:

- ``voxel regression``: a cubic polynomial of each voxel's normalised inputs (the target's other
  sequences) and of the same inputs smoothed by a Gaussian of 1 voxel, fitted by least squares on
  the brain voxels of the cases not in ``--test`` (no network, no case's draws).

Brain PSNR (eq. 6), as `evaluate` scores it. A network can beat ``anatomy`` only by reading a
case's draws off correlated evidence, which the generator does not put in the inputs.

With ``--ood N``, the same questions on N cases of the independent family
(`synthetic_relaxometry`, the generalization check's out-of-family cases), whose contrasts are
signal equations with per-case scanner and sequence jitter:

- ``tissue map, family levels``: each tissue's mean normalised intensity over the other N - 1
  cases, on the case's true tissue map (partial-volume blurred): the best guess that knows the
  anatomy exactly but not the case's draws;
- ``tissue map, case levels``: each tissue's mean over the case itself (knows its draws too);
- ``tissue map, our levels``: each tissue's mean normalised intensity over our generator's cases
  (deep grey nuclei as grey matter), on the case's true tissue map: what a network trained on our
  cases could reach if it read the family's anatomy exactly;
- ``voxel regression (ours)``: the regression fitted on our generator's cases, as a network
  trained on them would be (no case of the family seen);
- ``voxel regression (family)``: the same fitted on the other N - 1 cases of the family.

  python bench/synthesis_ceiling.py --test 2,11                  # the demo's 16 cases and test split
  python bench/synthesis_ceiling.py --cases 24 --shape 40,40,36 --target flair
  python bench/synthesis_ceiling.py --ood 8                      # the generalization check's family
  python bench/synthesis_ceiling.py --ood 8 --cases 48 --variability physics  # its training cohort
"""

import argparse
import itertools

import numpy as np
from scipy import ndimage

from rsnet_jax.data import preprocess
from rsnet_jax.data import synthetic
from rsnet_jax.data import synthetic_relaxometry
from rsnet_jax.evaluation import metrics


SEQUENCES = ('t1', 't1ce', 't2', 'flair')


def voxel_features(case: synthetic.Case, target: str, normalization: str,
                   degree: int = 3) -> tuple[np.ndarray, np.ndarray]:
  """``([brain voxels, features], [brain voxels])``: every monomial up to ``degree`` of the
  normalised inputs and their 1-voxel Gaussian smoothing, and the normalised target."""
  brain = case.tissue != synthetic.BG
  inputs = [preprocess.normalize(case.images[m], brain, normalization)
            for m in SEQUENCES if m != target]
  inputs += [ndimage.gaussian_filter(x, 1.0) for x in inputs]
  x = np.stack([v[brain] for v in inputs], 1).astype(np.float64)
  columns = [np.ones(len(x))]
  for d in range(1, degree + 1):
    columns += [np.prod(x[:, c], 1) for c in itertools.combinations_with_replacement(
        range(x.shape[1]), d)]
  truth = preprocess.normalize(case.images[target], brain, normalization)
  return np.stack(columns, 1), truth[brain]


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


# The independent family's tissue classes as ours (deep grey nuclei: grey matter).
_FAMILY_TO_OURS = {
    synthetic_relaxometry.CSF: synthetic.CSF, synthetic_relaxometry.GM: synthetic.GM,
    synthetic_relaxometry.WM: synthetic.WM, synthetic_relaxometry.DEEP_GM: synthetic.GM,
    synthetic_relaxometry.NECROSIS: synthetic.NECROSIS, synthetic_relaxometry.EDEMA: synthetic.EDEMA,
    synthetic_relaxometry.ENHANCING: synthetic.ENHANCING}


def tissue_levels(cases: list[synthetic.Case], target: str, normalization: str) -> np.ndarray:
  """``[LESION + 1]``: each of our tissue classes' mean normalised ``target`` over ``cases``."""
  truths = [preprocess.normalize(c.images[target], c.tissue != synthetic.BG, normalization)
            for c in cases]
  levels = np.zeros(synthetic.LESION + 1)
  for t in range(1, synthetic.LESION + 1):
    values = [x[c.tissue == t].mean() for c, x in zip(cases, truths) if (c.tissue == t).any()]
    levels[t] = np.mean(values) if values else 0.0
  return levels


def out_of_family(cases: list[synthetic.Case], coef_ours: np.ndarray, levels_ours: np.ndarray,
                  target: str, normalization: str) -> list[dict[str, float]]:
  """Brain PSNR (dB) per case of the independent family: the mean, the three tissue-map oracles
  and the two voxel regressions (each case left out of what is fitted on the family)."""
  truths = []
  for case in cases:
    brain = case.tissue != synthetic_relaxometry.BG
    truths.append(preprocess.normalize(case.images[target], brain, normalization))
  features = [voxel_features(case, target, normalization) for case in cases]
  tissues = range(int(max(c.tissue.max() for c in cases)) + 1)
  rows = []
  for i, (case, truth) in enumerate(zip(cases, truths)):
    brain = case.tissue != synthetic_relaxometry.BG
    others = [j for j in range(len(cases)) if j != i]
    family = np.array([np.mean(np.concatenate([truths[j][cases[j].tissue == t] for j in others]))
                       if any((cases[j].tissue == t).any() for j in others) else 0.0
                       for t in tissues])
    own = np.array([truth[case.tissue == t].mean() if (case.tissue == t).any() else 0.0
                    for t in tissues])
    coef_family = np.linalg.lstsq(np.concatenate([features[j][0] for j in others]),
                                  np.concatenate([features[j][1] for j in others]), rcond=None)[0]
    guesses = {
        'mean': np.full(truth.shape, truth[brain].mean()),
        'tissue map, family levels': ndimage.gaussian_filter(family[case.tissue], 0.6),
        'tissue map, case levels': own[case.tissue],
        'tissue map, our levels': ndimage.gaussian_filter(
            np.array([levels_ours[_FAMILY_TO_OURS.get(t, 0)] for t in tissues])[case.tissue], 0.6),
    }
    for name, coef in (('voxel regression (ours)', coef_ours),
                       ('voxel regression (family)', coef_family)):
      guesses[name] = np.zeros(truth.shape)
      guesses[name][brain] = features[i][0] @ coef
    rows.append({name: metrics.psnr(truth, np.where(brain, g, 0.0), brain)
                 for name, g in guesses.items()})
  return rows


def _print_table(rows: list[dict[str, float]], test: set[int]) -> None:
  names = list(rows[0])
  print('| case | ' + ' | '.join(names) + ' |\n|---' * 1 + '|---' * len(names) + '|')
  for i, row in enumerate(rows):
    print(f'| {i}{"*" * (i in test)} | ' + ' | '.join(f'{row[n]:.2f}' for n in names) + ' |')
  for stat, fn in (('mean', np.mean), ('min', np.min), ('max', np.max)):
    print(f'| **{stat}** | ' + ' | '.join(f'{fn([r[n] for r in rows]):.2f}' for n in names) + ' |')
  if test:
    print('| **mean of * ** | ' + ' | '.join(
        f'{np.mean([rows[i][n] for i in sorted(test)]):.2f}' for n in names) + ' |')


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
  parser.add_argument('--cases', type=int, default=16)
  parser.add_argument('--seed', type=int, default=0, help='the config\'s seed (case i: seed * '
                      '100003 + i, as generate_dataset)')
  parser.add_argument('--shape', default='40,40,36', help='the voxel grid (demo: 40,40,36)')
  parser.add_argument('--target', default='flair', choices=('t1', 't1ce', 't2', 'flair'))
  parser.add_argument('--normalization', default='brats2017')
  parser.add_argument('--variability', default='classic', choices=sorted(synthetic.VARIABILITY),
                      help='our generator\'s ranges (the oracles need classic\'s tissue table)')
  parser.add_argument('--ood', type=int, default=0, help='also N cases of the independent family '
                      '(the generalization check\'s: seed + 1)')
  parser.add_argument('--test', default='', help='cases left out of the voxel regression\'s fit, '
                      'e.g. 2,11 (the demo\'s test split); default: fitted on every case')
  args = parser.parse_args()
  shape = tuple(int(s) for s in args.shape.split(','))
  cases = [synthetic.generate_case(args.seed * 100003 + i, shape, variability=args.variability)
           for i in range(args.cases)]
  test = {int(i) for i in args.test.split(',') if i}
  rows = [oracles(case, args.target, args.normalization) if args.variability == 'classic' else {}
          for case in cases]
  features = [voxel_features(case, args.target, args.normalization) for case in cases]
  fit = [i for i in range(args.cases) if i not in test]
  coef = np.linalg.lstsq(np.concatenate([features[i][0] for i in fit]),
                         np.concatenate([features[i][1] for i in fit]), rcond=None)[0]
  for case, (x, truth), row in zip(cases, features, rows):
    brain = case.tissue != synthetic.BG
    volume, guess = np.zeros(brain.shape), np.zeros(brain.shape)
    volume[brain], guess[brain] = truth, x @ coef
    row['voxel regression'] = metrics.psnr(volume, guess, brain)
  print(f'{args.cases} cases of {shape}, target {args.target}, {args.normalization}; brain PSNR '
        f'(dB); * = left out of the voxel regression\'s fit\n')
  _print_table(rows, test)
  if args.ood:
    seed = (args.seed + 1) * 100003  # as the generalization check writes its cases
    family = [synthetic_relaxometry.generate_case(seed + i, shape) for i in range(args.ood)]
    print(f'\n{args.ood} cases of the independent family (synthetic_relaxometry), same grid; the '
          'family\'s fits leave the case out\n')
    levels = tissue_levels([cases[i] for i in fit], args.target, args.normalization)
    _print_table(out_of_family(family, coef, levels, args.target, args.normalization), set())


if __name__ == '__main__':
  main()
