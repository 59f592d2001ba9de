"""Case folder layouts: where each file of a case is, label conventions, discovery and validation.

Built in, recognised automatically (``data.layout = 'auto'``), relative to each case folder:
  ``brats2021`` (BraTS 2017-2021): ``<case>_{t1,t1ce,t2,flair,seg}.nii.gz``, labels 0/1/2/4 (and
      ``<case>_pd.nii.gz`` for PD-weighted images, as the synthetic MS cases have).
  ``brats2023`` (BraTS 2023+ / BraSyn): ``<case>-{t1n,t1c,t2w,t2f,seg}.nii.gz``, labels 0/1/2/3.
  ``brats2015``: ``VSD.Brain.XX.O.MR_{T1,T1c,T2,Flair}.<id>/*.mha`` and ``VSD.Brain_*.XX.O.OT.<id>/
      *.mha``, labels 0-4, where 3 (non-enhancing core) is read as 1, as BraTS 2017 merged them.
      Reading ``.mha`` needs SimpleITK: ``pip install 'rsnet_jax[mha]'``.
and ``custom``: one pattern per file from the config (``data.custom_files``), for users' own data.

Pattern syntax: a path relative to the case folder; ``{case}`` stands for the case ID (without it the
case ID is the folder's name), ``*`` for any characters but ``/``, and a name ending in ``.nii.gz``
also matches ``.nii`` (and the reverse). Label meaning: 1 necrotic / non-enhancing core, 2 edema, 4
(or 3) enhancing tumour. Data folders are searched up to three folder levels deep (e.g.
``BRATS2015_Training/HGG/<case>``); a folder may hold one case or, flat, several.
"""

from __future__ import annotations

import collections
import dataclasses
import os
import re

from absl import logging
import ml_collections
import numpy as np

from rsnet_jax.data import itk
from rsnet_jax.data import nifti
from rsnet_jax.errors import UserError

MODALITIES = ('t1', 't1ce', 't2', 'flair')  # BraTS's four
MS_MODALITIES = ('t1', 't2', 'flair', 'pd')  # the MS protocol's (Sec. III-C), pd = PD-weighted
KEYS = MODALITIES + ('pd', 'seg')
# BraTS regions as sets of class indices (0 bg, 1 necrotic/non-enhancing core, 2 edema,
# 3 enhancing), the same for the 0/1/2/4 and 0/1/2/3 label conventions after index mapping.
REGIONS = {'WT': (1, 2, 3), 'TC': (1, 3), 'ET': (3,)}
AFFINE_TOLERANCE_MM = 1e-3
SEARCH_DEPTH = 3
VSD_NAMES = {'t1': 'MR_T1', 't1ce': 'MR_T1c', 't2': 'MR_T2', 'flair': 'MR_Flair', 'seg': 'OT'}


@dataclasses.dataclass(frozen=True)
class Layout:
  """Naming and label convention of one dataset layout."""
  name: str
  patterns: dict[str, str]  # our modality name (and 'seg') -> file pattern (see the module doc)
  labels: tuple[int, ...]  # label values, ordered as class indices 0..C-1
  merged: dict[int, int] = dataclasses.field(default_factory=dict)  # other values read as these

  def filename(self, case_id: str, key: str) -> str:
    """The name under which outputs for ``key`` are written: the layout's own file name where its
    pattern is a plain NIfTI name, BraTS 2021's (``<case>_<key>.nii.gz``) otherwise."""
    pattern = self.patterns.get(key, '')
    if pattern.endswith(nifti.SUFFIXES) and not any(c in pattern for c in '*?[/'):
      return pattern.replace('{case}', case_id)
    return f'{case_id}_{key}.nii.gz'

  def labels_from_brats2021(self, seg: np.ndarray) -> np.ndarray:
    """Maps 0/1/2/4 label values to this layout's values."""
    lut = np.zeros(5, np.uint8)
    lut[[0, 1, 2, 4]] = self.labels
    return lut[seg]

  def accepted_labels(self) -> set[int]:
    return set(self.labels) | set(self.merged)

  def label_to_index(self, seg: np.ndarray) -> np.ndarray:
    """Label values ``[X, Y, Z]`` -> class indices ``0..C-1`` (int32). Values must be accepted."""
    lut = np.zeros(max(self.accepted_labels()) + 1, np.int32)
    lut[list(self.labels)] = np.arange(len(self.labels))
    for value, same_as in self.merged.items():
      lut[value] = lut[same_as]
    return lut[seg.astype(np.int64)]

  def index_to_label(self, index: np.ndarray) -> np.ndarray:
    """Class indices -> this layout's label values (uint8)."""
    return np.asarray(self.labels, np.uint8)[index]


LAYOUTS = {
    'brats2021': Layout('brats2021', {k: f'{{case}}_{k}.nii.gz' for k in KEYS}, (0, 1, 2, 4)),
    'brats2023': Layout('brats2023', {k: f'{{case}}-{s}.nii.gz' for k, s in zip(
        MODALITIES + ('seg',), ('t1n', 't1c', 't2w', 't2f', 'seg'))}, (0, 1, 2, 3)),
    'brats2015': Layout('brats2015', {k: f'*.{v}.*/*.{v}.*.mha' for k, v in VSD_NAMES.items()},
                        (0, 1, 2, 4), merged={3: 1}),
}


def custom_layout(files: dict[str, str], labels: tuple[int, ...]) -> Layout:
  """The ``custom`` layout of the config: ``files`` maps keys of `KEYS` to patterns ('' = absent).

  Raises:
    UserError: for unknown keys, no pattern, unknown ``{placeholders}`` or bad labels.
  """
  patterns = {k: v for k, v in files.items() if v}
  problems = [f'data.custom_files.{k}: unknown key (expected one of {list(KEYS)})'
              for k in patterns if k not in KEYS]
  if not patterns:
    problems.append("data.layout='custom' needs data.custom_files, e.g. "
                    "--config.data.custom_files.t1='{case}_T1w.nii.gz'")
  for key, pattern in patterns.items():
    unknown = set(re.findall(r'\{([^}]*)\}', pattern)) - {'case'}
    if unknown:
      problems.append(f'data.custom_files.{key}={pattern!r}: unknown placeholder(s) '
                      f'{sorted(unknown)}; only {{case}} is known')
  labels = tuple(int(v) for v in labels)
  if len(labels) < 2 or labels[0] != 0 or len(set(labels)) != len(labels) or min(labels) < 0:
    problems.append(f'data.custom_labels={labels}: expected distinct values starting with 0 '
                    '(background)')
  if problems:
    raise UserError(problems)
  return Layout('custom', patterns, labels)


def from_config(data: ml_collections.ConfigDict) -> tuple[Layout, ...]:
  """The layouts `discover` tries for ``data.layout``: all built-in ones for 'auto'."""
  name = data.get('layout', 'auto')
  if name == 'auto':
    return tuple(LAYOUTS.values())
  if name == 'custom':
    return (custom_layout(dict(data.custom_files), tuple(data.custom_labels)),)
  if name not in LAYOUTS:
    raise UserError(f"data.layout must be 'auto', 'custom' or one of {sorted(LAYOUTS)}, "
                    f'got {name!r}')
  return (LAYOUTS[name],)


@dataclasses.dataclass(frozen=True)
class CaseFiles:
  """Where one case's files are. ``files`` holds the keys found; ``problems`` what discovery
  already knows is wrong (ambiguous files, a case ID seen twice)."""
  case_id: str
  folder: str
  layout: Layout
  files: dict[str, str]
  problems: tuple[str, ...] = ()

  def path(self, key: str) -> str:
    """The existing file for ``key``, or where it was looked for (for error messages)."""
    return self.files.get(key) or os.path.join(
        self.folder, self.layout.patterns.get(key, f'<no pattern for {key}>').replace(
            '{case}', self.case_id))


def _regex(pattern: str) -> re.Pattern:
  """A pattern of the module doc as a regular expression over relative paths."""
  tail = ''
  if pattern.endswith('.nii.gz'):
    pattern, tail = pattern[:-3], r'(?:\.gz)?'
  elif pattern.endswith('.nii'):
    tail = r'(?:\.gz)?'
  parts = {'{case}': r'(?P<case>[^/]+?)', '*': r'[^/]*', '?': r'[^/]'}
  body = ''.join(parts.get(p, re.escape(p)) for p in re.split(r'(\{case\}|\*|\?)', pattern))
  return re.compile(body + tail)


def _relative_files(folder: str, depth: int) -> list[str]:
  """Files under ``folder`` at most ``depth`` levels down, as sorted relative paths."""
  out = []
  for root, dirs, files in os.walk(folder):
    rel = os.path.relpath(root, folder)
    level = 0 if rel == '.' else rel.count(os.sep) + 1
    dirs[:] = sorted(d for d in dirs if not d.startswith('.')) if level + 1 < depth else []
    out += [f if rel == '.' else os.path.join(rel, f) for f in files if not f.startswith('.')]
  return sorted(out)


def _match_layout(folder: str, layout: Layout, names: list[str]) -> list[CaseFiles]:
  """The cases whose files ``layout`` finds among ``names`` (relative to ``folder``). A file that
  several patterns match (``{case}_T1w`` also matches ``sub-01_ce-gd_T1w``) goes to the case ID
  that the most keys find."""
  matches = collections.defaultdict(list)  # case ID -> [(key, path)]
  for key, pattern in layout.patterns.items():
    regex = _regex(pattern)
    for name in names:
      m = regex.fullmatch(name.replace(os.sep, '/'))
      if m:
        case_id = m.groupdict().get('case') or os.path.basename(os.path.abspath(folder))
        matches[case_id].append((key, os.path.join(folder, name)))
  found, claimed = {}, set()
  for case_id in sorted(matches, key=lambda c: (-len({k for k, _ in matches[c]}), c)):
    keys = collections.defaultdict(list)
    for key, path in matches[case_id]:
      if path not in claimed:
        keys[key].append(path)
    claimed.update(p for paths in keys.values() for p in paths)
    if keys:
      found[case_id] = keys
  cases = []
  for case_id, keys in sorted(found.items()):
    problems = tuple(f'{os.path.join(folder, layout.patterns[k].replace("{case}", case_id))}: '
                     f'{len(paths)} files match the {k} pattern ({", ".join(paths)})'
                     for k, paths in keys.items() if len(paths) > 1)
    cases.append(CaseFiles(case_id, folder, layout,
                           {k: paths[0] for k, paths in keys.items()}, problems))
  return cases


def _match_folder(folder: str, candidates: tuple[Layout, ...]) -> list[CaseFiles]:
  """The cases in ``folder`` under the candidate layout that finds the most files there."""
  depth = 1 + max(p.count('/') for layout in candidates for p in layout.patterns.values())
  names = _relative_files(folder, depth)
  best = []
  for layout in candidates:
    cases = _match_layout(folder, layout, names)
    if sum(len(c.files) for c in cases) > sum(len(c.files) for c in best):
      best = cases
  return best


def _search(folder: str, candidates: tuple[Layout, ...], depth: int) -> list[CaseFiles]:
  cases = _match_folder(folder, candidates)
  if cases or depth == 0:
    return cases
  subs = sorted(d for d in os.listdir(folder)
                if not d.startswith('.') and os.path.isdir(os.path.join(folder, d)))
  return [c for d in subs for c in _search(os.path.join(folder, d), candidates, depth - 1)]


def discover(data_dir: str, candidates: tuple[Layout, ...] = tuple(LAYOUTS.values())
             ) -> list[CaseFiles]:
  """All cases under ``data_dir`` (a case folder, or folders of them), sorted by case ID.

  A case ID found in two places is a problem of its second case. Raises:
    UserError: when ``data_dir`` does not exist or holds no case, or holds ``.mha`` cases and
      SimpleITK is not installed.
  """
  if not os.path.isdir(data_dir):
    raise UserError(f'{data_dir}: data folder not found')
  cases = sorted(_search(data_dir, candidates, SEARCH_DEPTH), key=lambda c: (c.case_id, c.folder))
  if not cases:
    expected = ', '.join(f'{layout.name} ({next(iter(layout.patterns.values()))}, ...)'
                         for layout in candidates)
    hint = ("; for other file names set data.layout='custom' and data.custom_files"
            if any(layout.name != 'custom' for layout in candidates) else '')
    raise UserError(f'{data_dir}: no case found up to {SEARCH_DEPTH} folder levels down (looked '
                    f'for {expected}){hint}')
  needs_itk = [c for c in cases if any(p.endswith(itk.SUFFIXES) for p in c.files.values())]
  if needs_itk and not itk.available():
    raise UserError(f'{data_dir}: {len(needs_itk)} case(s) stored as .mha/.mhd (e.g. '
                    f'{needs_itk[0].folder}) need SimpleITK: {itk.INSTALL}')
  seen = {}
  for i, case in enumerate(cases):
    if case.case_id in seen:
      cases[i] = dataclasses.replace(case, problems=case.problems + (
          f'{case.folder}: case ID {case.case_id} also in {seen[case.case_id]}',))
    seen.setdefault(case.case_id, case.folder)
  return cases


def validate(case: CaseFiles, keys: tuple[str, ...]) -> list[str]:
  """Checks the files ``keys`` (modalities and/or 'seg') of ``case``; returns one line per problem.

  Checked: what discovery found wrong, presence, readability, 3D shape, equal shapes and affines
  across the case's files, finite values, a non-empty brain in each image, and segmentation labels in
  the layout's set. An image that does not look skull-stripped is flagged (one warning per case).
  """
  layout = case.layout
  problems, ref, flagged = list(case.problems), None, False
  for key in keys:
    path = case.path(key)
    if key not in case.files:
      problems.append(f'{path}: missing {key} file')
      continue
    peeked = nifti.peek(path)
    if peeked is not None and len(peeked[0]) != 3:  # refused from its header, before reading
      problems.append(nifti.not_3d(path, peeked[0]))
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
      problems.append(f'{path}: affine differs from that of {ref[0]} (by up to '
                      f'{np.abs(affine - ref[2]).max():.3g} mm)')
    if not np.isfinite(data).all():
      problems.append(f'{path}: {int((~np.isfinite(data)).sum())} NaN/Inf voxels')
    elif key == 'seg':
      bad = sorted(set(np.unique(data).astype(int).tolist()) - layout.accepted_labels())
      if bad or not np.array_equal(data, np.round(data)):
        problems.append(f'{path}: labels {bad or "non-integer"} outside the {layout.name} set '
                        f'{sorted(layout.accepted_labels())}')
    elif not (data != 0).any():
      problems.append(f'{path}: empty image (all voxels 0)')
    elif not flagged:
      flagged = _flag_unstripped(path, data)
  return problems


# A volume more than this fraction non-zero does not look skull-stripped (BraTS brains fill ~15 %).
SKULL_STRIPPED_MAX_FRACTION = 0.5


def _flag_unstripped(path: str, image: np.ndarray) -> bool:
  """Warns in one line, and says so, when ``image`` does not look skull-stripped."""
  fraction = float(np.count_nonzero(image)) / image.size
  if fraction <= SKULL_STRIPPED_MAX_FRACTION:
    return False
  logging.warning('%s: %.0f %% of the volume is non-zero: it does not look skull-stripped, and the '
                  'model expects skull-stripped inputs (BraTS brains fill ~15 %%)', path,
                  100 * fraction)
  return True


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
