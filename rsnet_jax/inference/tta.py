"""Test-time augmentation (Wang et al., Neurocomputing 2019): the inputs mirrored, predicted, and
the outputs mirrored back, pooled with any MC-dropout samples into one predictive distribution.

``predict.tta``: ``'none'`` (the identity only), ``'lr'`` (left-right mirror: 2 views) or
``'flips'`` (every combination of mirroring the three axes: 8 views, nnU-Net's test-time
mirroring). View 0 is the identity and keeps the case's MC key, so ``'none'`` is exactly the
prediction without TTA; view ``v`` draws its MC samples from its own key (`predict.TTA_STREAM`).

Pooling treats every (view, MC sample) pair as one equally weighted sample: the synthesis' mean and
its variance by the law of total variance (the mean of the views' variances plus the variance of
their means), the mean softmax, its entropy ``H[E p]`` and the mutual information
``H[E p] - E H[p]`` (with ``E H[p]`` of each view recovered as its entropy minus its mutual
information).
"""

from __future__ import annotations

import itertools
from typing import Callable

import numpy as np

MODES = ('none', 'lr', 'flips')


def views(mode: str) -> list[tuple[int, ...]]:
  """The spatial axes each view mirrors (canonical ``D, H, W`` = L-R, P-A, S-I), identity first."""
  if mode == 'none':
    return [()]
  if mode == 'lr':
    return [(), (0,)]
  if mode == 'flips':
    return [axes for n in range(4) for axes in itertools.combinations(range(3), n)]
  raise ValueError(f'predict.tta must be one of {MODES}, got {mode!r}')


def mirror(example: dict[str, np.ndarray], axes: tuple[int, ...]) -> dict[str, np.ndarray]:
  """Every array of one example (spatial axes first, no batch axis) mirrored along ``axes``."""
  if not axes:
    return example
  return {k: np.flip(v, axes) for k, v in example.items()}


def _entropy(p: np.ndarray) -> np.ndarray:
  with np.errstate(divide='ignore', invalid='ignore'):
    return -np.sum(np.where(p > 0, p * np.log(p), 0.0), -1).astype(np.float32)


def pooled(predict_view: Callable[[dict[str, np.ndarray], int], dict[str, np.ndarray]],
           example: dict[str, np.ndarray], mode: str) -> dict[str, np.ndarray]:
  """Runs ``predict_view(mirrored example, view index)`` on each view of ``mode``, mirrors its
  outputs back and pools them (module docstring). With one view, its outputs as they are; with
  more, ``synthesis_variance``, ``entropy`` and ``mutual_information`` always."""
  axes_list = views(mode)
  if len(axes_list) == 1:
    return predict_view(example, 0)
  sums: dict[str, np.ndarray] = {}

  def add(name: str, value: np.ndarray) -> None:
    sums[name] = sums[name] + value if name in sums else value.astype(np.float64)

  for v, axes in enumerate(axes_list):
    out = mirror(predict_view(mirror(example, axes), v), axes)
    if 'synthesis' in out:  # Welford over the views' means: no E[x^2] - E[x]^2 cancellation
      mean = out['synthesis'].astype(np.float64)
      delta = mean - sums.get('synthesis', 0.0)
      sums['synthesis'] = sums.get('synthesis', 0.0) + delta / (v + 1)
      add('between', delta * (mean - sums['synthesis']))
      add('within', np.asarray(out.get('synthesis_variance', np.zeros_like(mean))))
    if 'probabilities' in out:
      add('probabilities', out['probabilities'])
      sample_entropy = (out['entropy'] - out['mutual_information'] if 'entropy' in out
                        else _entropy(out['probabilities']))
      add('sample_entropy', sample_entropy)
  n = len(axes_list)
  result = {}
  if 'synthesis' in sums:
    result['synthesis'] = sums['synthesis'].astype(np.float32)
    result['synthesis_variance'] = ((sums['within'] + sums['between']) / n).astype(np.float32)
  if 'probabilities' in sums:
    probabilities = (sums['probabilities'] / n).astype(np.float32)
    result['probabilities'] = probabilities
    result['entropy'] = _entropy(probabilities)
    result['mutual_information'] = np.maximum(
        result['entropy'] - sums['sample_entropy'] / n, 0).astype(np.float32)
  return result
