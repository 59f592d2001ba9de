"""Case folders -> NIfTI outputs on each input's grid and affine.

Per case, in ``OUT/<case>/`` and named as the case's own layout names its files:
  ``<case>_<target>.nii.gz``           the synthesized sequence (float32, in the network's normalised
                                       intensity space, e.g. [0, 1] for ``brats2017``)
  ``<case>_seg.nii.gz``                the segmentation, labels in the layout's convention (with MC
                                       dropout: the argmax of the mean softmax)
and with samples (MC dropout ``num_mc_samples > 0``, test-time augmentation ``tta``, an ensemble):
  ``<case>_<target>_variance.nii.gz``, ``_std.nii.gz``  per-voxel variance and standard deviation
  ``<case>_seg_probabilities.nii.gz``  the mean softmax, ``[X, Y, Z, C]`` in class-index order
  ``<case>_seg_entropy.nii.gz``,       predictive entropy and mutual information (BALD) of the
  ``<case>_seg_mutual_information.nii.gz``  segmentation, in nats
  ``<case>_unc_{whole,core,enhance}.nii.gz``  QU-BraTS's uncertainty maps of WT, TC, ET (uint8,
                                       0-100: the binary entropy of the region's mean probability)
So ``OUT`` is itself a BraTS folder in which the synthesized file stands in for the missing one.
For an ``anyseq`` model the target is each case's own missing sequence (`_case_task`).
"""

from __future__ import annotations

import dataclasses
import os
import zlib
from typing import Callable

from absl import logging
import jax
import ml_collections
import numpy as np
import tqdm

from rsnet_jax.data import anyseq
from rsnet_jax.data import layouts
from rsnet_jax.data import nifti
from rsnet_jax.data import orientation
from rsnet_jax.data import pipeline
from rsnet_jax.data import preprocess
from rsnet_jax.data import resample
from rsnet_jax.errors import UserError
from rsnet_jax.inference import forward_pass
from rsnet_jax.inference import sliding_window
from rsnet_jax.inference import tta
from rsnet_jax.inference import uncertainty
from rsnet_jax.runtime import files
from rsnet_jax.runtime import manifest

Array = jax.Array


def case_key(key: Array, case_id: str) -> Array:
  """A case's own key: the same samples for a case whatever else is predicted with it."""
  return jax.random.fold_in(key, zlib.crc32(case_id.encode()) & 0x7FFFFFFF)


def predict_example(fn, params, example: dict[str, np.ndarray], key: Array | None = None,
                    window: tuple[int, ...] = (), overlap: float = 0.5,
                    tta_mode: str = 'none') -> dict[str, np.ndarray]:
  """``fn`` (a jitted `forward`) on one example of `pipeline.load_case` with its case key (None
  without MC dropout); numpy outputs without the batch axis.

  ``window``: ``(d, h, w)`` voxels, each a multiple of ``2 ** num_levels``: run on overlapping
  windows blended with Gaussian weights (`sliding_window`), window ``i`` with MC key
  ``fold_in(key, i)``; ``()`` or a window covering the volume: one pass. ``tta_mode``: the
  mirrored views of `tta` pooled with the MC samples; view ``v > 0`` takes its samples from
  ``fold_in(fold_in(key, TTA_STREAM), v)``."""

  def one_view(view: dict[str, np.ndarray], v: int) -> dict[str, np.ndarray]:
    view_key = key if key is None or v == 0 else jax.random.fold_in(
        jax.random.fold_in(key, TTA_STREAM), v)
    inputs = pipeline.network_inputs(view)
    shape = inputs['inputs'].shape[1:4]
    if window and any(w < s for w, s in zip(window, shape)):
      def run(x, index):
        return fn(params, x, None if view_key is None else
                  jax.random.fold_in(view_key, index)[None])
      out = sliding_window.predict(run, inputs, tuple(window), overlap)
    else:
      out = fn(params, inputs, None if view_key is None else view_key[None])
    return jax.tree.map(lambda a: np.asarray(a[0]), out)

  return outside_brain_as_background(tta.pooled(one_view, example, tta_mode), example['brain'])


TTA_STREAM = 0x747461  # 'tta': mirrored views' MC keys, apart from the windows' fold_in(key, i)


def tta_mode(config: ml_collections.ConfigDict) -> str:
  """``predict.tta``, checked."""
  mode = config.predict.get('tta', 'none')
  if mode not in tta.MODES:
    raise UserError(f'predict.tta must be one of {tta.MODES}, got {mode!r}')
  return mode


def has_samples(config: ml_collections.ConfigDict) -> bool:
  """Whether predictions pool several samples (MC dropout, TTA views, ensemble members): then the
  variance, entropy, mutual information and QU-BraTS maps are written."""
  return (config.predict.num_mc_samples > 0 or tta_mode(config) != 'none'
          or forward_pass.ensemble_size(config) > 1)


def outside_brain_as_background(outputs: dict[str, np.ndarray],
                                brain: np.ndarray) -> dict[str, np.ndarray]:
  """``outputs`` of one example (no batch axis) with the voxels outside ``brain [D, H, W]`` (zero in
  every input) set to what skull-stripped BraTS volumes hold there: background with probability 1,
  a synthesized intensity of 0, no uncertainty."""
  inside = np.asarray(brain) > 0
  masked = {}
  for name, value in outputs.items():
    value = np.array(value)
    if name == 'probabilities':
      value[~inside] = np.eye(value.shape[-1], dtype=value.dtype)[0]
    else:
      value[~inside] = 0
    masked[name] = value
  return masked


def window_shape(config: ml_collections.ConfigDict, task: pipeline.Task) -> tuple[int, ...]:
  """``predict.window_shape``, checked: 3 sizes, each a positive multiple of ``2 ** num_levels``."""
  window = tuple(config.predict.get('window_shape', ()))
  if window and (len(window) != 3 or any(w <= 0 or w % task.multiple for w in window)):
    raise UserError(f'predict.window_shape {window}: give 3 sizes, each a multiple of '
                    f'{task.multiple} (2 ** model.num_levels), or () for one pass')
  return window


def crop_window(task: pipeline.Task) -> tuple[int, ...]:
  """The training crop rounded up to ``2 ** num_levels``: the sliding window that covers a brain
  larger than the crop (`pipeline.load_case` with ``whole_brain``); ``()`` without a crop."""
  if not task.crop_shape:
    return ()
  return tuple(-(-int(c) // task.multiple) * task.multiple for c in task.crop_shape)


def grid_record(meta: pipeline.CaseMeta) -> dict:
  """How a case was read, for the manifest: its spacing (mm), the network grid's, and whether and
  how it was resampled."""
  record = {'spacing_mm': [round(float(s), 6) for s in meta.spacing],
            'network_spacing_mm': [round(float(s), 6) for s in meta.grid_spacing],
            'resampled': meta.resampled, 'network_shape': list(meta.shape)}
  if meta.resampled:
    record.update(case_shape=list(meta.case_shape), image_order=meta.resample_order)
  return record


class UnreadableCases(UserError):
  """Cases whose inputs could not be read when predicting (``case_ids``); the rest were written."""

  def __init__(self, problems: list[str], case_ids: list[str]):
    super().__init__(problems)
    self.case_ids = case_ids


def predict_cases(config: ml_collections.ConfigDict, params, apply_fn, task: pipeline.Task,
                  cases: list[layouts.CaseFiles], out_dir: str, key: Array,
                  overwrite: bool = False) -> list[str]:
  """Predicts ``cases`` into ``out_dir`` with the network (`write_cases`); returns the paths
  written.

  Raises:
    UnreadableCases: after all other cases are written, for cases whose inputs could not be read.
  """
  fn = forward_pass.MCForward(config, apply_fn, config.predict.num_mc_samples)
  window = window_shape(config, task) or crop_window(task)
  mode = tta_mode(config)
  overlap = config.predict.get('window_overlap', 0.5)

  def predictor(example: dict[str, np.ndarray], case_id: str) -> dict[str, np.ndarray]:
    return predict_example(fn, params, example, case_key(key, case_id), window, overlap, mode)

  return write_cases(config, predictor, task, cases, out_dir, has_samples(config), overwrite,
                     lambda: {'mc_chunk_sizes': dict(fn.chunk_sizes)} if fn.chunk_sizes else {})


def write_cases(config: ml_collections.ConfigDict,
                predictor: Callable[[dict[str, np.ndarray], str], dict[str, np.ndarray]],
                task: pipeline.Task, cases: list[layouts.CaseFiles], out_dir: str,
                samples: bool, overwrite: bool = False,
                run_record: Callable[[], dict] = dict) -> list[str]:
  """Writes ``predictor(example, case_id)``'s outputs (one example of `anyseq.load_case`, no batch
  axis) for ``cases`` into ``out_dir``; returns the paths written. ``samples``: the outputs hold
  the variance and probabilities of pooled samples (their files are written too). A case whose
  outputs all exist is skipped unless ``overwrite``. Partial files a killed run left in ``out_dir``
  are removed first (the caller holds its lock). The run is recorded in ``out_dir/manifest.json``
  with ``run_record()``'s entries.

  Raises:
    UnreadableCases: after all other cases are written, for cases whose inputs could not be read.
  """
  stale = files.remove_temporaries(out_dir)
  if stale:
    logging.warning('removed %d partial file(s) an interrupted run left in %s', len(stale), out_dir)
  version = manifest.code_version()  # git subprocesses: once per run
  written, inputs, outputs, skipped, problems, unreadable = [], {}, {}, [], [], []
  grids = {}
  for case in tqdm.tqdm(cases, desc='predict', unit='case'):
    case_dir = os.path.join(out_dir, case.case_id)
    try:
      case_task, missing = _case_task(case, task)
    except UserError as e:  # anyseq: two or more sequences missing
      problems.extend(e.problems)
      unreadable.append(case.case_id)
      continue
    paths = output_paths(case, case_task, case_dir, samples)
    if not overwrite and all(os.path.exists(p) for p in paths.values()):
      skipped.append(case.case_id)
      continue
    try:
      example, meta = anyseq.load_case(case, task, missing, references=False, whole_brain=True)
    except UserError as e:  # e.g. a file changed since validation: the other cases go on
      problems.extend(e.problems)
      unreadable.append(case.case_id)
      continue
    inputs[case.case_id] = [case.files[k] for k in task.inputs if k in case.files]
    grids[case.case_id] = grid_record(meta)
    predicted = predictor(example, case.case_id)
    desc = description(config, case_task, version)
    cache = {}
    for name, path in paths.items():
      volume = output_volume(predicted, name, case.layout, meta, cache)
      nifti.save(path, volume, meta.affine, f'{desc} {name}', like=meta.header)
      written.append(path)
    outputs[case.case_id] = list(paths.values())
  manifest.record_run(out_dir, config, inputs, outputs, skipped, {'grids': grids, **run_record()})
  if unreadable:
    raise UnreadableCases(problems, unreadable)
  return written


def _case_task(case: layouts.CaseFiles, task: pipeline.Task) -> tuple[pipeline.Task, str | None]:
  """What is predicted for ``case``, and the sequence the network goes without (None but for
  ``anyseq``). An ``anyseq`` case lacking one sequence gets it synthesized (it is the case's
  target); one with every sequence gets the segmentation only, computed with its first sequence
  masked (the network always sees one missing).

  Raises:
    UserError: an ``anyseq`` case lacking two or more sequences.
  """
  if task.variant != 'anyseq':
    return task, None
  missing = anyseq.missing_in(case, task.inputs)
  return dataclasses.replace(task, target=missing), missing or task.inputs[0]


def description(config: ml_collections.ConfigDict, task: pipeline.Task,
                version: dict[str, str]) -> str:
  """What made an output, for its NIfTI ``descrip`` field (79 characters are kept), e.g.
  ``rsnet_jax 0.1.0 git 84b4e27 rsnet k=4 flair<-t1,t1ce,t2 MC20``; ``version`` is
  `manifest.code_version`'s."""
  commit = version.get('git', '')
  git = f' git {commit[:7]}{"+dirty" if commit.endswith("+dirty") else ""}' if commit else ''
  made = f'{task.target}<-' if task.target else 'seg<-'
  mc = f' MC{config.predict.num_mc_samples}' if config.predict.num_mc_samples else ''
  views = len(tta.views(tta_mode(config)))
  mc += f' TTA{views}' if views > 1 else ''
  members = forward_pass.ensemble_size(config)
  mc += f' ens{members}' if members > 1 else ''
  inputs = ','.join(m for m in task.inputs if m != task.target)
  width = '' if task.variant in pipeline.BASELINES else f'k={config.model.base_filters} '
  return f'rsnet_jax {version["rsnet_jax"]}{git} {config.model.variant} {width}{made}{inputs}{mc}'


def output_paths(case: layouts.CaseFiles, task: pipeline.Task, case_dir: str,
                 mc: bool) -> dict[str, str]:
  """``{output name: path}`` of the files `predict_cases` writes for ``case``."""
  layout = case.layout
  paths = {}
  if task.target is not None:
    synthesis = os.path.join(case_dir, layout.filename(case.case_id, task.target))
    paths['synthesis'] = synthesis
    if mc:
      paths['synthesis_variance'] = _suffixed(synthesis, '_variance')
      paths['synthesis_std'] = _suffixed(synthesis, '_std')
  if task.segments:
    seg = os.path.join(case_dir, layout.filename(case.case_id, 'seg'))
    paths['labels'] = seg
    if mc:
      for name in ('probabilities', 'entropy', 'mutual_information'):
        paths[name] = _suffixed(seg, f'_{name}')
      ext = next(e for e in nifti.SUFFIXES if seg.endswith(e))
      for region, word in uncertainty.QU_BRATS_FILES.items():  # the challenge's names
        paths[f'qu_{region}'] = os.path.join(case_dir, f'{case.case_id}_unc_{word}{ext}')
  return paths


def _suffixed(path: str, suffix: str) -> str:
  """``a/b.nii.gz`` -> ``a/b<suffix>.nii.gz`` (also for ``.nii``)."""
  ext = next(e for e in nifti.SUFFIXES if path.endswith(e))
  return path[:-len(ext)] + suffix + ext


def output_volume(outputs: dict[str, np.ndarray], name: str, layout: layouts.Layout,
                  meta: pipeline.CaseMeta, cache: dict[str, np.ndarray] | None = None
                  ) -> np.ndarray:
  """One output of `forward` (no batch axis) back on the case's own grid and orientation.

  Voxels outside the network's window get 0 (the background class for ``labels``, probability 1
  of the background for ``probabilities``). A resampled case (`pipeline.CaseMeta.resampled`) goes
  back onto its own grid: the synthesis with the case's spline order, the class probabilities and
  uncertainty maps linearly, the labels as the argmax of the resampled probabilities. ``cache``
  (one dict per case): the probabilities and the variance mapped back once for the outputs that
  share them.
  """
  cache = {} if cache is None else cache

  def shared(key: str, background: bool) -> np.ndarray:
    if key not in cache:
      value = outputs[key] if background else outputs[key][..., 0]
      cache[key] = on_case_grid(value.astype(np.float32), meta, 1, background)
    return cache[key]

  if name == 'labels':
    volume = layout.index_to_label(np.argmax(shared('probabilities', True), -1))
  elif name == 'probabilities':
    volume = shared('probabilities', True)
  elif name.startswith('qu_'):  # QU-BraTS: the region's uncertainty, 0-100
    region = uncertainty.region_uncertainty(shared('probabilities', True),
                                            layouts.REGIONS[name[3:]])
    volume = np.round(region).astype(np.uint8)
  elif name in ('synthesis_variance', 'synthesis_std'):
    volume = shared('synthesis_variance', False)
    if meta.resampled:
      volume = np.maximum(volume, 0)
    if name == 'synthesis_std':
      volume = np.sqrt(volume)
  else:
    volume = on_case_grid(outputs[name].reshape(outputs[name].shape[:3]).astype(np.float32), meta,
                          meta.resample_order if name == 'synthesis' else 1)
    if name != 'synthesis' and meta.resampled:
      volume = np.maximum(volume, 0)  # entropies: interpolation must not make them negative
  restored = orientation.apply(volume, meta.from_canonical)
  if restored.ndim == 3 and meta.file_shape[3:] and meta.file_shape[:3] == restored.shape:
    restored = restored.reshape(meta.file_shape)  # the input's trailing singleton axes
  return restored


def onto_reference(outputs: dict[str, np.ndarray], meta: pipeline.CaseMeta,
                   reference: pipeline.CaseMeta,
                   sizes: tuple[int, ...]) -> dict[str, np.ndarray]:
  """Outputs of a resampled case (network grid, `meta`) on the window (``reference.starts``,
  ``sizes``) of the same case read at its own spacing, where its ground truth is scored."""
  out = {}
  for name, value in outputs.items():
    order = meta.resample_order if name == 'synthesis' else 1
    on_case = on_case_grid(value.astype(np.float32), meta, order,
                           background=name == 'probabilities')
    out[name] = preprocess.extract(on_case, reference.starts, sizes)
  return out


def on_case_grid(volume: np.ndarray, meta: pipeline.CaseMeta, order: int,
                 background: bool = False) -> np.ndarray:
  """``volume [window, ...]`` on the network grid -> the case's canonical grid: the window put back
  (0 elsewhere; ``background``: class probabilities, probability 1 of class 0 elsewhere), then,
  for a resampled case, resampled onto its own shape with spline ``order`` and 0 (or background)
  outside its own brain."""
  restored = preprocess.restore(volume, meta.starts, meta.shape)
  if background:
    inside = preprocess.restore(np.ones(volume.shape[:3], np.float32), meta.starts, meta.shape)
    restored[..., 0] += 1 - inside
  if not meta.resampled:
    return restored
  restored = resample.resample(restored, meta.case_shape, order)
  outside = ~meta.case_brain
  restored[outside] = 0
  if background:
    restored[outside, 0] = 1
  return restored
