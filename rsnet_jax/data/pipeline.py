"""Grain input pipeline: case folders -> preprocessed, batched network inputs.

One example (numpy, channels last, on the network grid ``[D, H, W]``):
  ``inputs [D, H, W, Cin] float32``   the acquired sequences, in ``Task.inputs`` order
  ``complementary [D, H, W, 1]``      rsnet only: the regression block's extra input
  ``target [D, H, W, 1]``             rnet/rsnet, when the case has the target file
  ``labels [D, H, W] int32``          class indices, when the case has a segmentation
  ``valid [D, H, W] float32``         1 on the input grid, 0 on padding
  ``brain [D, H, W] float32``         1 inside the brain (non-zero in any input)
"""

from __future__ import annotations

import dataclasses
import os

from absl import logging
import grain
import jax
from jax.experimental import multihost_utils
import ml_collections
import nibabel as nib
import numpy as np

from rsnet_jax.data import augment
from rsnet_jax.data import layouts
from rsnet_jax.data import nifti
from rsnet_jax.data import orientation
from rsnet_jax.data import preprocess
from rsnet_jax.data import resample
from rsnet_jax.errors import UserError

# The paper's choice (Sec. III-B): T1 <- T1ce, T2 <- FLAIR, T1ce <- T1, FLAIR <- T2.
DEFAULT_COMPLEMENTARY = {'t1': 't1ce', 't2': 'flair', 't1ce': 't1', 'flair': 't2'}

# Table I's baselines (`rsnet_jax.baselines`), and the models that synthesize and do not segment.
BASELINES = ('replica', 'lsdn', 'cnn2d')
SYNTHESIS_ONLY = ('rnet',) + BASELINES


@dataclasses.dataclass(frozen=True)
class Task:
  """What the network reads and predicts."""
  variant: str
  target: str | None  # None for snet
  inputs: tuple[str, ...]
  complementary: str | None  # rsnet only
  normalization: str
  crop_shape: tuple[int, ...] | None
  multiple: int  # 2 ** num_levels
  spacing: tuple[float, ...] | None = None  # the network grid (mm); None: each case's own
  resample_order: int = 3  # spline order of the images' resampling to ``spacing``

  @property
  def in_channels(self) -> int:
    """The network's input channels: one per input, and for ``anyseq`` one availability channel
    per input too."""
    return len(self.inputs) * (2 if self.variant == 'anyseq' else 1)

  @property
  def segments(self) -> bool:
    """Whether the model segments (all but the synthesis-only R-Net and Table I's baselines)."""
    return self.variant not in SYNTHESIS_ONLY

  @property
  def has_complementary(self) -> bool:
    return self.complementary is not None or self.variant == 'anyseq'

  @classmethod
  def from_config(cls, config: ml_collections.ConfigDict) -> Task:
    """For ``anyseq``: no fixed target, every sequence an input (`rsnet_jax.data.anyseq`)."""
    variant = config.model.variant
    modalities = tuple(config.data.get('modalities', layouts.MODALITIES))
    crop, multiple = tuple(config.data.crop_shape) or None, 2**config.model.num_levels
    grid = {'spacing': tuple(config.data.get('target_spacing', ())) or None,
            'resample_order': int(config.data.get('resample_order', 3))}
    if variant == 'anyseq':
      return cls(variant, None, modalities, None, config.data.normalization, crop, multiple, **grid)
    target = None if variant == 'snet' else config.data.target
    if target is not None and target not in modalities:
      raise UserError(f'data.target must be one of data.modalities {modalities}, got {target!r}')
    inputs = tuple(config.data.inputs) or tuple(m for m in modalities if m != target)
    if target in inputs:
      raise UserError(f'data.inputs {inputs} must not contain the target {target!r}')
    complementary = None
    if variant == 'rsnet':
      complementary = config.data.complementary or DEFAULT_COMPLEMENTARY[target]
      if complementary not in inputs:
        raise UserError(f'data.complementary {complementary!r} must be one of the inputs {inputs}')
    return cls(variant, target, inputs, complementary, config.data.normalization, crop, multiple,
               **grid)

  def required_files(self, with_target: bool = True, with_seg: bool = True) -> tuple[str, ...]:
    keys = list(self.inputs)
    if with_target and self.target is not None:
      keys.append(self.target)
    if with_seg:
      keys.append('seg')
    return tuple(keys)


@dataclasses.dataclass(frozen=True)
class CaseMeta:
  """How to map network outputs back onto a case's grid: undo the window (``starts`` on the
  canonical grid of ``shape``), the resampling (onto ``case_shape`` when not None), then the
  orientation (``from_canonical``); ``affine``, ``file_shape`` (with any trailing singleton axes)
  and ``header`` (None unless NIfTI) are those of the case's first input file."""
  case: layouts.CaseFiles
  shape: tuple[int, int, int]  # the network's grid, in the canonical orientation
  affine: np.ndarray
  starts: tuple[int, ...]
  from_canonical: np.ndarray
  file_shape: tuple[int, ...] = ()
  header: nib.Nifti1Header | None = None
  spacing: tuple[float, ...] = ()  # the case's own (mm, canonical axes)
  grid_spacing: tuple[float, ...] = ()  # the network grid's (mm): ``spacing`` unless resampled
  case_shape: tuple[int, int, int] | None = None  # canonical shape before resampling (None: not)
  case_brain: np.ndarray | None = None  # ``[case_shape] bool`` the brain there (resampled only)
  resample_order: int = 3  # the synthesis goes back with this spline order

  @property
  def resampled(self) -> bool:
    return self.case_shape is not None


# A brain narrower than MIN_BRAIN_VOXELS on the network grid, or wider than MAX_CROPS crops, is not
# a head at the model's scale.
MIN_BRAIN_VOXELS = 4
MAX_CROPS = 8


def _read_canonical(path: str) -> tuple[np.ndarray, np.ndarray]:
  """``(volume, affine)`` of one file, the volume in the canonical orientation."""
  volume, affine = nifti.load(path)
  return orientation.apply(volume, orientation.to_canonical(affine)), affine


def _check_head(path: str, brain: np.ndarray, task: Task, spacing: tuple[float, ...]) -> None:
  """Refuses a brain too small or too large to be a head at the network's ``spacing``."""
  extent = preprocess.brain_extent(brain)
  grid = ' x '.join(f'{s:g}' for s in spacing)
  if extent and min(extent) < MIN_BRAIN_VOXELS:
    raise UserError(f'{path}: the brain spans only {extent} voxels at {grid} mm, far from a '
                    'head\'s field of view at the model\'s scale (check the voxel size in the '
                    'header)')
  if extent and task.crop_shape and any(e > MAX_CROPS * c
                                        for e, c in zip(extent, task.crop_shape)):
    raise UserError(f'{path}: the brain spans {extent} voxels at {grid} mm, more than '
                    f'{MAX_CROPS}x the {tuple(task.crop_shape)} crop: far from a head\'s field of '
                    'view at the model\'s scale (check the voxel size in the header)')


def load_case(case: layouts.CaseFiles, task: Task, references: bool = True,
              whole_brain: bool = False) -> tuple[dict[str, np.ndarray], CaseMeta]:
  """Reads, reorients (`orientation.CANONICAL`), resamples to ``task.spacing`` (`resample`; images
  with a spline of ``task.resample_order``, the segmentation nearest), normalises and windows one
  case. Target and segmentation are included if present and ``references`` (prediction reads only
  the inputs).

  ``whole_brain``: when the brain does not fit in ``task.crop_shape``, the window is the whole
  (padded) volume instead, for a sliding window of crops to cover it (prediction, evaluation).

  Raises:
    UserError: naming the file: unreadable, or a brain far from a head's size on the network grid.
  """
  raw, brain, affine = {}, None, None
  extra = (task.target, 'seg') if references else ()
  for key in task.inputs + tuple(k for k in extra if k in case.files):
    path = case.path(key)
    volume, file_affine = _read_canonical(path)
    if key in task.inputs:  # the brain on the case's own grid: one full-size volume at a time
      if brain is None:
        brain = volume != 0
      elif brain.shape != volume.shape:
        raise UserError(f'{path}: grid {volume.shape} differs from the case\'s first input\'s '
                        f'{brain.shape}')
      else:
        brain |= volume != 0
    affine = file_affine if affine is None else affine
    spacing = orientation.spacing(file_affine)
    if resample.differs(spacing, task.spacing):
      order = 0 if key == 'seg' else task.resample_order
      volume = resample.resample(volume, resample.shape_at(volume.shape, spacing, task.spacing),
                                 order)
    raw[key] = volume
  own = orientation.spacing(affine)
  case_shape = brain.shape
  resampled = resample.differs(own, task.spacing)
  case_brain = brain
  if resampled:
    brain = resample.resample(brain.astype(np.float32), raw[task.inputs[0]].shape, 1) > 0.5
  grid_spacing = tuple(task.spacing) if resampled else own
  _check_head(case.path(task.inputs[0]), brain, task, grid_spacing)
  shape = brain.shape
  crop = task.crop_shape
  if whole_brain and crop and not preprocess.fits(brain, crop, task.multiple):
    crop = None
  starts, sizes = preprocess.window(shape, brain, crop, task.multiple)
  norm = {m: preprocess.normalize(raw.pop(m), brain, task.normalization)
          for m in list(raw) if m != 'seg'}
  example = {'inputs': np.stack([preprocess.extract(norm[m], starts, sizes) for m in task.inputs],
                                -1)}
  if task.complementary is not None:
    example['complementary'] = example['inputs'][..., [task.inputs.index(task.complementary)]]
  if task.target in norm:
    example['target'] = preprocess.extract(norm[task.target], starts, sizes)[..., None]
  if 'seg' in raw:
    labels = case.layout.label_to_index(np.round(raw['seg']))
    example['labels'] = preprocess.extract(labels.astype(np.int32), starts, sizes)
  example['valid'] = preprocess.extract(np.ones(shape, np.float32), starts, sizes)
  example['brain'] = preprocess.extract(brain.astype(np.float32), starts, sizes)
  header = nifti.header(case.path(task.inputs[0]))
  file_shape = tuple(header.get_data_shape()) if header is not None else tuple(case_shape)
  return example, CaseMeta(case, tuple(shape), affine, starts, orientation.from_canonical(affine),
                           file_shape, header, own, grid_spacing,
                           tuple(case_shape) if resampled else None,
                           case_brain if resampled else None, task.resample_order)


def network_inputs(example: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
  """The arrays the network reads (``inputs``, ``complementary``) of one example, batch of 1."""
  return {k: v[None] for k, v in example.items() if k in ('inputs', 'complementary')}


def split(cases: list[layouts.CaseFiles], val_fraction: float, test_fraction: float,
          seed: int) -> dict[str, list[layouts.CaseFiles]]:
  """Deterministic random split into ``train``/``val``/``test`` (each non-empty fraction >= 1 case)."""
  n = len(cases)
  perm = np.random.default_rng(seed).permutation(n)

  def count(frac):
    return 0 if frac <= 0 else max(1, int(round(frac * n)))

  n_test, n_val = count(test_fraction), count(val_fraction)
  if n - n_test - n_val < 1:
    raise UserError(f'{n} cases cannot be split into val {n_val}, test {n_test} and >= 1 train')
  pick = lambda idx: sorted((cases[i] for i in idx), key=lambda c: c.case_id)
  return {'test': pick(perm[:n_test]), 'val': pick(perm[n_test:n_test + n_val]),
          'train': pick(perm[n_test + n_val:])}


def label_voxel_counts(cases: list[layouts.CaseFiles], num_classes: int) -> np.ndarray:
  """``m_l``: voxels of each class index over the cases' segmentations, ``[C] int64``."""
  counts = np.zeros(num_classes, np.int64)
  for case in cases:
    seg, _ = nifti.load(case.path('seg'))
    idx = case.layout.label_to_index(np.round(seg))
    counts += np.bincount(idx.ravel(), minlength=num_classes)[:num_classes]
  return counts


def case_order(cases: list[layouts.CaseFiles], num_epochs: int, seed: int) -> grain.MapDataset:
  """The training cases in the order they are read: element ``i`` is the ``i``-th case seen. Each
  epoch is a fresh seeded permutation (grain's ``shuffle`` draws a new order per repeat) that does not
  depend on ``num_epochs``."""
  return grain.MapDataset.source(cases).shuffle(seed=seed).repeat(num_epochs)


class _ShardCase(grain.transforms.Map):
  """Grain transform: index ``j`` of a process's stream -> ``(g, case)``, its index ``g`` in the
  global stream and its case ``order[g]``.

  Row ``r`` of that process's part of global batch ``s`` is element ``g = s * batch + index * local
  + r``: the processes' parts, in process order, make up the global batch."""

  def __init__(self, order: grain.MapDataset, batch: int, local: int, index: int):
    self.order, self.batch, self.local, self.index = order, batch, local, index

  def map(self, j: int) -> tuple[int, layouts.CaseFiles]:
    step, row = divmod(j, self.local)
    g = step * self.batch + self.index * self.local + row
    return g, self.order[g]


class LoadTrainingExample(grain.transforms.Map):
  """Grain transform: ``(g, case)`` -> the example of element ``g`` of the training stream,
  augmented by ``config.augment`` with `augment.example_rng(seed, g)` (as read when it is all
  off)."""

  def __init__(self, task: Task, config: ml_collections.ConfigDict | None, seed: int):
    self.config, self.seed = config, seed
    if config is not None and config.get('augment') is not None:
      augment.validate(config)
    self.on = config is not None and augment.enabled(config)
    self.random_crop = self.on and config.augment.random_crop
    # A random crop draws its window from the whole (padded) volume.
    self.task = dataclasses.replace(task, crop_shape=None) if self.random_crop else task
    self.crop = task.crop_shape
    self.complementary = (task.inputs.index(task.complementary)
                          if task.complementary is not None else None)

  def map(self, element: tuple[int, layouts.CaseFiles]) -> dict[str, np.ndarray]:
    g, case = element
    example = load_case(case, self.task)[0]
    if not self.on:
      return example
    rng = augment.example_rng(self.seed, g)
    if self.random_crop:
      shape = example['brain'].shape
      sizes = tuple(-(-min(int(c), n) // self.task.multiple) * self.task.multiple
                    for c, n in zip(self.crop, shape))
      example = augment.crop_around(example, sizes, self.config.augment.foreground_share, rng)
    return augment.augment(example, self.config, rng, self.complementary)


def train_dataset(cases: list[layouts.CaseFiles], task: Task, batch_size: int, num_epochs: int,
                  seed: int, shard: tuple[int, int] = (0, 1),
                  config: ml_collections.ConfigDict | None = None) -> grain.MapDataset:
  """The whole training stream as one random-access dataset: element ``s`` is the batch of step
  ``s`` (cases ``case_order[s * batch_size:(s + 1) * batch_size]``), so a resumed run slices
  ``[step:]`` and sees exactly the batches an uninterrupted run sees.

  ``shard=(index, count)``: this process loads only its ``batch_size // count`` rows of each global
  batch (process ``index``'s part, as `parallel.global_batch` places them). ``config``: augments
  each example by ``config.augment`` (`LoadTrainingExample`); None, or augmentation all off: as
  read."""
  index, count = shard
  if batch_size % count:
    raise UserError(f'global batch {batch_size} does not split over {count} processes')
  local = batch_size // count
  order = case_order(cases, num_epochs, seed)
  steps = len(order) // batch_size
  return (grain.MapDataset.range(steps * local).map(_ShardCase(order, batch_size, local, index))
          .map(LoadTrainingExample(task, config, seed)).batch(local, drop_remainder=True))


def to_iterator(dataset: grain.MapDataset, worker_count: int, prefetch_threads: int = 2):
  """Iterates ``dataset`` with background threads and, if ``worker_count > 0``, worker processes."""
  it = dataset.to_iter_dataset(grain.ReadOptions(num_threads=prefetch_threads, prefetch_buffer_size=2))
  if worker_count > 0:
    it = it.mp_prefetch(grain.MultiprocessingOptions(num_workers=worker_count))
  return iter(it)


def dataset_cases(config: ml_collections.ConfigDict, workdir: str, task: Task,
                  with_target: bool = True, with_seg: bool = True) -> list[layouts.CaseFiles]:
  """The valid cases of ``config.data.data_dir`` (or of synthetic cases generated once into
  ``WORKDIR/data`` when it is empty). Invalid cases are refused, or listed and left out when
  ``config.data.skip_invalid``."""
  data_dir = config.data.data_dir
  if not data_dir:
    from rsnet_jax.data import synthetic  # pylint: disable=g-import-not-at-top
    data_dir = os.path.join(workdir, 'data')
    done = os.path.join(data_dir, '.complete')
    if not os.path.exists(done) and jax.process_index() == 0:  # the others wait, then read them
      logging.info('generating %d synthetic cases %s into %s', config.data.synthetic_cases,
                   tuple(config.data.synthetic_shape), data_dir)
      synthetic.generate_dataset(data_dir, config.data.synthetic_cases, config.seed,
                                 config.data.synthetic_layout, tuple(config.data.synthetic_shape),
                                 config.data.get('synthetic_pathology', 'glioma'),
                                 variability=config.data.get('synthetic_variability', 'classic'))
      open(done, 'w').close()
    if jax.process_count() > 1:
      multihost_utils.sync_global_devices('rsnet_jax: synthetic cases written')
  cases = layouts.discover(data_dir, layouts.from_config(config.data))
  valid, problems = layouts.validate_all(cases, task.required_files(with_target, with_seg),
                                         config.data.skip_invalid)
  if problems:
    logging.warning('data.skip_invalid: left out %d of %d cases of %s:', len(cases) - len(valid),
                    len(cases), data_dir)
  for line in problems:
    logging.warning('skipped: %s', line)
  return valid


def dataset_splits(config: ml_collections.ConfigDict, workdir: str,
                   task: Task) -> dict[str, list[layouts.CaseFiles]]:
  """``dataset_cases`` split into train/val/test by ``config.data.*_fraction`` and ``split_seed``."""
  return split(dataset_cases(config, workdir, task), config.data.val_fraction,
               config.data.test_fraction, config.data.split_seed)
