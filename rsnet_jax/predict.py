"""Case folders -> NIfTI outputs on each input's grid and affine.

Per case, in ``OUT/<case>/`` and named as the case's own layout names its files:
  ``<case>_<target>.nii.gz``           the synthesized sequence (float32, in the network's normalised
                                       intensity space, e.g. [0, 1] for ``brats2017``)
  ``<case>_seg.nii.gz``                the segmentation, labels in the layout's convention
  ``<case>_<target>_variance.nii.gz``  MC-dropout per-voxel variance (``num_mc_samples > 0``)
  ``<case>_seg_entropy.nii.gz``,       MC-dropout predictive entropy and mutual information (BALD)
  ``<case>_seg_mutual_information.nii.gz``  of the segmentation, in nats (``num_mc_samples > 0``)
So ``OUT`` is itself a BraTS folder in which the synthesized file stands in for the missing one.
"""

from __future__ import annotations

import functools
import os
import zlib

import jax
import ml_collections
import numpy as np
import tqdm

from rsnet_jax.data import layouts
from rsnet_jax.data import nifti
from rsnet_jax.data import pipeline
from rsnet_jax import uncertainty
from rsnet_jax.data import preprocess

Array = jax.Array


def forward(params, batch: dict[str, Array], key: Array, *, apply_fn, num_mc_samples: int,
            mc_chunk_size: int | None = None, share_prefix: bool = True) -> dict[str, Array]:
  """Deterministic (``num_mc_samples == 0``) or MC-dropout prediction for ``batch``.

  With ``share_prefix`` the layers before the first dropout run once for all MC samples.

  Returns, for the heads the model has: ``synthesis [B, D, H, W, 1]`` (the MC mean),
  ``probabilities [B, D, H, W, C]`` (mean softmax) and, with MC dropout, ``synthesis_variance``
  ``[B, D, H, W, 1]``, ``entropy`` and ``mutual_information`` ``[B, D, H, W]`` (nats).
  """
  def once(k, train, prefix=None):
    out = apply_fn({'params': params}, batch['inputs'], batch.get('complementary'), train=train,
                   rngs={'dropout': k} if train else {}, prefix=prefix)
    if 'logits' in out:
      out['probabilities'] = jax.nn.softmax(out.pop('logits'), axis=-1)
    return out

  if num_mc_samples == 0:
    return once(None, False)

  prefix = (apply_fn({'params': params}, batch['inputs'], method='prefix') if share_prefix
            else None)

  def sample(k):
    out = once(k, True, prefix)
    if 'probabilities' in out:
      out['sample_entropy'] = uncertainty.entropy(out['probabilities'])
    return out

  stats = uncertainty.mc_dropout(sample, key, num_mc_samples, mc_chunk_size,
                                 variance_of=('synthesis',))
  result = dict(stats['mean'])
  if 'synthesis' in result:
    result['synthesis_variance'] = stats['variance']['synthesis']
  if 'probabilities' in result:
    result.update(uncertainty.segmentation_uncertainty(result['probabilities'],
                                                       result.pop('sample_entropy')))
  return result


def case_key(key: Array, case_id: str) -> Array:
  """A case's own key: the same samples for a case whatever else is predicted with it."""
  return jax.random.fold_in(key, zlib.crc32(case_id.encode()) & 0x7FFFFFFF)


def predict_cases(config: ml_collections.ConfigDict, params, apply_fn, task: pipeline.Task,
                  cases: list[layouts.CaseFiles], out_dir: str, key: Array,
                  overwrite: bool = False) -> list[str]:
  """Predicts ``cases`` into ``out_dir``; returns the paths written. A case whose outputs all
  exist is skipped unless ``overwrite``."""
  fn = jax.jit(functools.partial(forward, apply_fn=apply_fn,
                                 num_mc_samples=config.predict.num_mc_samples,
                                 mc_chunk_size=config.predict.mc_chunk_size or None))
  written = []
  for case in tqdm.tqdm(cases, desc='predict', unit='case'):
    layout = layouts.LAYOUTS[case.layout]
    case_dir = os.path.join(out_dir, case.case_id)
    paths = {}
    if task.target is not None:
      paths['synthesis'] = os.path.join(case_dir, layout.filename(case.case_id, task.target))
      if config.predict.num_mc_samples > 0:
        paths['synthesis_variance'] = paths['synthesis'].replace('.nii.gz', '_variance.nii.gz')
    if task.variant != 'rnet':
      paths['probabilities'] = os.path.join(case_dir, layout.filename(case.case_id, 'seg'))
      if config.predict.num_mc_samples > 0:
        for name in ('entropy', 'mutual_information'):
          paths[name] = paths['probabilities'].replace('.nii.gz', f'_{name}.nii.gz')
    if not overwrite and all(os.path.exists(p) for p in paths.values()):
      continue
    example, meta = pipeline.load_case(case, task)
    outputs = jax.tree.map(lambda a: np.asarray(a[0]), fn(params, pipeline.network_inputs(example),
                                                          case_key(key, case.case_id)))
    desc = f'rsnet_jax {config.model.variant} k={config.model.base_filters}'
    for name, path in paths.items():
      if name == 'probabilities':
        volume = layout.index_to_label(np.argmax(outputs[name], -1))
      else:
        volume = outputs[name].reshape(outputs[name].shape[:3]).astype(np.float32)
      nifti.save(path, preprocess.restore(volume, meta.starts, meta.shape), meta.affine,
                 description=f'{desc} {name}')
      written.append(path)
  return written
