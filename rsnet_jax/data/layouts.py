"""BraTS folder layouts: file naming, label conventions, case discovery and validation.

Supported layouts:
  ``brats2021`` (BraTS 2017-2021): ``<case>/<case>_{t1,t1ce,t2,flair,seg}.nii.gz``, labels 0/1/2/4.
  ``brats2023`` (BraTS 2023+ / BraSyn): ``<case>/<case>-{t1n,t1c,t2w,t2f,seg}.nii.gz``, labels 0/1/2/3.
Label meaning in both: 1 necrotic / non-enhancing core, 2 edema, 4 (or 3) enhancing tumour.
"""

from __future__ import annotations

import dataclasses
import os

import numpy as np

from rsnet_jax.data import nifti
from rsnet_jax.errors import UserError

MODALITIES = ('t1', 't1ce', 't2', 'flair')
AFFINE_TOLERANCE_MM = 1e-3


@dataclasses.dataclass(frozen=True)
class Layout:
  """Naming and label convention of one BraTS release."""
  name: str
  separator: str
  suffixes: dict[str, str]  # our modality name (and 'seg') -> the file suffix of this layout
  labels: tuple[int, ...]  # label values, ordered as class indices 0..C-1

  def filename(self, case_id: str, key: str, ext: str = '.nii.gz') -> str:
    return f'{case_id}{self.separator}{self.suffixes[key]}{ext}'

  def labels_from_brats2021(self, seg: np.ndarray) -> np.ndarray:
    """Maps 0/1/2/4 label values to this layout's values."""
    lut = np.zeros(5, np.uint8)
    lut[[0, 1, 2, 4]] = self.labels
    return lut[seg]

  def label_to_index(self, seg: np.ndarray) -> np.ndarray:
    """Label values ``[X, Y, Z]`` -> class indices ``0..C-1`` (int32). Values must be valid."""
    lut = np.zeros(max(self.labels) + 1, np.int32)
    lut[list(self.labels)] = np.arange(len(self.labels))
    return lut[seg.astype(np.int64)]

  def index_to_label(self, index: np.ndarray) -> np.ndarray:
    """Class indices -> this layout's label values (uint8)."""
    return np.asarray(self.labels, np.uint8)[index]


LAYOUTS = {
    'brats2021': Layout('brats2021', '_', {'t1': 't1', 't1ce': 't1ce', 't2': 't2',
                                           'flair': 'flair', 'seg': 'seg'}, (0, 1, 2, 4)),
    'brats2023': Layout('brats2023', '-', {'t1': 't1n', 't1ce': 't1c', 't2': 't2w',
                                           'flair': 't2f', 'seg': 'seg'}, (0, 1, 2, 3)),
}


@dataclasses.dataclass(frozen=True)
class CaseFiles:
  """Where one case's files are. ``files`` holds the keys whose file exists."""
  case_id: str
  folder: str
  layout: str
  files: dict[str, str]

  def path(self, key: str) -> str:
    """The existing file for ``key``, or the path it would have (for error messages)."""
    return self.files.get(key) or os.path.join(
        self.folder, LAYOUTS[self.layout].filename(self.case_id, key))


def _match_case(folder: str) -> CaseFiles | None:
  """The case in ``folder`` if its files follow one of the layouts (the layout matching most files)."""
  try:
    names = set(os.listdir(folder))
  except OSError:
    return None
  best = None
  for layout in LAYOUTS.values():
    for name in names:
      for ext in nifti.SUFFIXES:
        for key, suffix in layout.suffixes.items():
          tail = f'{layout.separator}{suffix}{ext}'
          if not name.endswith(tail):
            continue
          case_id = name[:-len(tail)]
          files = {k: os.path.join(folder, layout.filename(case_id, k, e))
                   for k in layout.suffixes for e in nifti.SUFFIXES
                   if layout.filename(case_id, k, e) in names}
          if best is None or len(files) > len(best.files):
            best = CaseFiles(case_id, folder, layout.name, files)
  return best


def discover(data_dir: str) -> list[CaseFiles]:
  """All cases under ``data_dir`` (a case folder itself, or a folder of case folders), sorted by id.

  Raises:
    UserError: when ``data_dir`` does not exist or holds no case of a known layout.
  """
  if not os.path.isdir(data_dir):
    raise UserError(f'{data_dir}: data folder not found')
  own = _match_case(data_dir)
  if own is not None:
    return [own]
  cases = []
  for name in sorted(os.listdir(data_dir)):
    sub = os.path.join(data_dir, name)
    if os.path.isdir(sub):
      case = _match_case(sub)
      if case is not None:
        cases.append(case)
  if not cases:
    raise UserError(f'{data_dir}: no BraTS case found (expected folders of '
                    f'<case>_{{t1,t1ce,t2,flair,seg}}.nii.gz or <case>-{{t1n,t1c,t2w,t2f,seg}}.nii.gz)')
  return sorted(cases, key=lambda c: c.case_id)


def validate(case: CaseFiles, keys: tuple[str, ...]) -> list[str]:
  """Checks the files ``keys`` (modalities and/or 'seg') of ``case``; returns one line per problem.

  Checked: presence, readability, 3D shape, equal shapes and affines across the case's files, finite
  values, a non-empty brain in each image, and segmentation labels in the layout's set.
  """
  layout = LAYOUTS[case.layout]
  problems, ref = [], None
  for key in keys:
    path = case.path(key)
    if key not in case.files:
      problems.append(f'{path}: missing {key} file')
      continue
    try:
      data, affine = nifti.load(path)
    except UserError as e:
      problems.extend(e.problems)
      continue
    if ref is None:
      ref = (path, data.shape, affine)
    elif data.shape != ref[1]:
      problems.append(f'{path}: shape {data.shape} differs from {ref[1]} of {ref[0]}')
      continue
    elif not np.allclose(affine, ref[2], atol=AFFINE_TOLERANCE_MM):
      problems.append(f'{path}: affine differs from that of {ref[0]}')
    if not np.isfinite(data).all():
      problems.append(f'{path}: {int((~np.isfinite(data)).sum())} NaN/Inf voxels')
    elif key == 'seg':
      bad = sorted(set(np.unique(data).astype(int).tolist()) - set(layout.labels))
      if bad or not np.array_equal(data, np.round(data)):
        problems.append(f'{path}: labels {bad or "non-integer"} outside the {layout.name} set '
                        f'{list(layout.labels)}')
    elif not (data != 0).any():
      problems.append(f'{path}: empty image (all voxels 0)')
  return problems


def validate_all(cases: list[CaseFiles], keys: tuple[str, ...],
                 skip_invalid: bool) -> tuple[list[CaseFiles], list[str]]:
  """Validates every case. Returns ``(valid cases, problems)``.

  Raises:
    UserError: listing every problem of every case, unless ``skip_invalid``.
  """
  valid, problems = [], []
  for case in cases:
    p = validate(case, keys)
    problems.extend(p)
    if not p:
      valid.append(case)
  if problems and not skip_invalid:
    raise UserError(problems + [f'{len(cases) - len(valid)} of {len(cases)} cases invalid; fix '
                                'them or set --config.data.skip_invalid=True to leave them out'])
  return valid, problems
