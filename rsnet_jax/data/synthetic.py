"""Realistic synthetic multi-contrast brain MRI cases with tumours, written in BraTS layouts.

Each case is a skull-stripped head: white matter, a folded grey-matter ribbon, a CSF rim, ventricles,
and a glioma (necrotic core, enhancing rim, surrounding edema) at a random place and size. Four
modalities get the contrasts these tissues have in real scans (T1: WM > GM > CSF, tumour dark; T1ce:
T1 with a bright enhancing rim; T2: CSF and edema bright; FLAIR: like T2 but CSF dark), with
per-case tissue intensities (so no modality is a fixed per-voxel function of the others), a smooth
multiplicative bias field per modality, partial-volume blur and Rician noise. Background is 0.
``variability`` picks the ranges (`VARIABILITY`); ``physics`` draws each case's contrasts from MR
signal equations over one set of tissue parameters shared by its sequences (`RELAXATION_RANGES`,
`PROTOCOLS`).

The field of view is always BraTS-sized (240 x 240 x 155 mm); ``shape`` sets the voxel grid, so a
small grid means coarse voxels. Deterministic by seed.

CLI: ``python -m rsnet_jax.data.synthetic --out DIR --num-cases N --seed S
[--layout brats2021|brats2023|brats2015] [--shape X,Y,Z] [--pathology glioma|ms]
[--variability classic|wide] [--drop-one-sequence]`` (``brats2015``
writes ``.mha`` files in VSD folders and needs SimpleITK: ``pip install 'rsnet_jax[mha]'``; ``ms``
writes T1, T2, FLAIR and PD with white-matter lesions labelled 1, in the brats2021 naming).
"""

from __future__ import annotations

import argparse
import dataclasses
import os

import numpy as np
from scipy import ndimage

from rsnet_jax.data import itk
from rsnet_jax.data import layouts
from rsnet_jax.data import nifti
from rsnet_jax.data import resample
from rsnet_jax.errors import UserError

FIELD_OF_VIEW_MM = (240.0, 240.0, 155.0)
BRATS_SHAPE = (240, 240, 155)
# MS cases (Sec. III-C): an MNI-like box; the default grid gives the paper's 1 x 1 x 3 mm voxels.
MS_FIELD_OF_VIEW_MM = (180.0, 216.0, 180.0)
MS_SHAPE = (180, 216, 60)
PATHOLOGIES = {'glioma': ('t1', 't1ce', 't2', 'flair'), 'ms': ('t1', 't2', 'flair', 'pd')}

# Tissue classes of the anatomical model (not the BraTS labels).
BG, CSF, GM, WM, NECROSIS, EDEMA, ENHANCING, LESION = range(8)

# Mean intensity of each tissue per modality, arbitrary units ~[0, 1]
# (BG, CSF, GM, WM, NEC, ED, ET, MS lesion).
_CONTRAST = {
    't1': (0.0, 0.22, 0.55, 0.80, 0.20, 0.45, 0.50, 0.55),
    't1ce': (0.0, 0.20, 0.55, 0.78, 0.22, 0.47, 1.00, 0.57),
    't2': (0.0, 1.00, 0.60, 0.38, 0.90, 0.82, 0.62, 0.80),
    'flair': (0.0, 0.10, 0.55, 0.40, 0.55, 0.95, 0.75, 0.90),
    'pd': (0.0, 0.80, 0.78, 0.62, 0.85, 0.85, 0.80, 0.92),
}
# The ranges each case's anatomy and contrasts are drawn from: ``classic`` (the demo's cohort) and
# ``wide`` (cohorts that vary as real ones do: head size, ventricles, tumour place and size,
# contrasts, bias, noise and resolution). The same seed draws the same numbers in the same order.
_CLASSIC = {'brain_scale': (0.9, 1.05), 'ventricle_scale': (0.8, 1.3), 'core_radius': (10.0, 22.0),
            'tumour_offset': (0.15, 0.55), 'edema_extent': (1.5, 2.4), 'contrast': (0.85, 1.15),
            'bias': 0.1, 'noise': 0.02, 'blur': 0.0}
VARIABILITY = {
    'classic': _CLASSIC,
    'wide': {'brain_scale': (0.8, 1.15), 'ventricle_scale': (0.6, 1.9), 'core_radius': (6.0, 28.0),
             'tumour_offset': (0.05, 0.75), 'edema_extent': (1.2, 3.0), 'contrast': (0.7, 1.3),
             'bias': 0.25, 'noise': 0.05, 'blur': 1.0},
    # classic's anatomy; each case's contrasts from MR physics (`RELAXATION_RANGES`,
    # `_physics_levels`): one set of tissue parameters per case shared by its sequences, each
    # sequence's protocol drawn per case.
    'physics': {**_CLASSIC, 'physics': 1.0, 'bias': 0.2, 'noise': 0.04, 'blur': 0.5},
    # physics' ranges, half the cases with classic's contrast table instead (drawn per case).
    'mixed': {**_CLASSIC, 'physics': 0.5, 'bias': 0.2, 'noise': 0.04, 'blur': 0.5},
}
# The 'physics' contrasts: per tissue (proton density, T1 ms, T2 ms), each a range from 1.5 T (low
# end of T1) to 3 T (high end), as reported for adult brain and glioma tissues; a case draws its
# place in each range (the T1 one: its field strength), shared by its tissues so that their order
# holds, and jitters each tissue's PD by +-3 %, T1 by +-10 % and T2 by +-8 %.
RELAXATION_RANGES = {
    CSF: ((0.97, 1.00), (3000.0, 4500.0), (1400.0, 2500.0)),
    GM: ((0.74, 0.86), (950.0, 1800.0), (80.0, 115.0)),
    WM: ((0.62, 0.74), (550.0, 1100.0), (60.0, 90.0)),
    NECROSIS: ((0.85, 1.00), (1800.0, 3500.0), (250.0, 1000.0)),
    EDEMA: ((0.80, 0.95), (1100.0, 2000.0), (130.0, 300.0)),
    ENHANCING: ((0.78, 0.92), (1100.0, 1800.0), (90.0, 160.0)),
    LESION: ((0.78, 0.92), (900.0, 1600.0), (100.0, 200.0)),
}
# Gadolinium's T1 in the enhancing rim (ms), and the protocols a case's sequences are drawn from
# (ms): T1 by spin echo or inversion-prepared gradient echo (MPRAGE-like), PD-weighted and
# T2-weighted spin echo, FLAIR by inversion recovery with CSF roughly nulled.
GADOLINIUM_T1 = (250.0, 600.0)
PROTOCOLS = {
    't1_spin_echo': {'tr': (400.0, 700.0), 'te': (8.0, 20.0), 'ti': (0.0, 0.0)},
    't1_inversion': {'tr': (1800.0, 2500.0), 'te': (2.0, 5.0), 'ti': (800.0, 1100.0)},
    't2': {'tr': (2500.0, 6000.0), 'te': (80.0, 120.0), 'ti': (0.0, 0.0)},
    'pd': {'tr': (2500.0, 4000.0), 'te': (10.0, 30.0), 'ti': (0.0, 0.0)},
    'flair': {'tr': (6000.0, 11000.0), 'te': (80.0, 140.0), 'ti': (2000.0, 2800.0)},
}
# MS lesion sizes drawn per lesion: (probability, voxels low, voxels high), the paper's size bins.
_LESION_SIZES = ((0.5, 3, 10), (0.3, 11, 50), (0.2, 51, 300))
# BraTS labels of the tumour tissues in the 2017-2021 convention (2023 maps 4 -> 3).
_TISSUE_TO_LABEL = {NECROSIS: 1, EDEMA: 2, ENHANCING: 4}


@dataclasses.dataclass(frozen=True)
class Case:
  """One synthetic case: ``images[modality]: [X, Y, Z] float32``, ``seg: [X, Y, Z] uint8`` (0/1/2/4),
  ``tissue: [X, Y, Z] uint8`` the anatomical classes (BG, CSF, GM, WM, NECROSIS, EDEMA, ENHANCING)."""
  images: dict[str, np.ndarray]
  seg: np.ndarray
  tissue: np.ndarray
  affine: np.ndarray


def _smooth_noise(rng: np.random.Generator, shape: tuple[int, ...], sigma_vox: float) -> np.ndarray:
  """Zero-mean, unit-std smooth random field ``[X, Y, Z]``."""
  field = ndimage.gaussian_filter(rng.standard_normal(shape), sigma_vox, mode='wrap')
  return (field - field.mean()) / (field.std() + 1e-8)


def _ellipsoid_distance(grid: np.ndarray, center: np.ndarray, radii: np.ndarray) -> np.ndarray:
  """Normalised ellipsoid radius at each voxel (1 on the surface). grid: ``[3, X, Y, Z]`` in mm."""
  d = (grid - center[:, None, None, None]) / radii[:, None, None, None]
  return np.sqrt((d**2).sum(0))


def _add_lesions(rng: np.random.Generator, tissue: np.ndarray) -> None:
  """Scatters 8-19 MS lesions (ellipsoids in voxel units, so their voxel counts span the paper's
  size bins on any grid) over the white matter of ``tissue``, in place."""
  wm = np.argwhere(tissue == WM)
  index = np.stack(np.meshgrid(*[np.arange(n) for n in tissue.shape], indexing='ij'), -1)
  for _ in range(int(rng.integers(8, 20))):
    p = np.array([b[0] for b in _LESION_SIZES])
    _, low, high = _LESION_SIZES[rng.choice(len(p), p=p)]
    volume = rng.uniform(low, high)
    radii = (3 * volume / (4 * np.pi))**(1 / 3) * rng.uniform(0.75, 1.3, 3)
    center = wm[rng.integers(len(wm))] + rng.uniform(-0.5, 0.5, 3)
    inside = (((index - center) / radii)**2).sum(-1) < 1.0
    tissue[inside & (tissue != BG) & (tissue != CSF)] = LESION


def generate_case(seed: int, shape: tuple[int, int, int] = BRATS_SHAPE,
                  pathology: str = 'glioma', variability: str = 'classic') -> Case:
  """Generates one case on a ``shape`` voxel grid covering the BraTS field of view (``glioma``: a
  tumour, BraTS's four sequences) or an MNI-like box (``ms``: white-matter lesions labelled 1, T1,
  T2, FLAIR and PD), its anatomy and contrasts drawn from ``VARIABILITY[variability]`` (``wide``:
  each sequence also blurred by up to ``blur`` voxels more along a random axis, as thicker slices
  are)."""
  if pathology not in PATHOLOGIES:
    raise ValueError(f'pathology must be one of {sorted(PATHOLOGIES)}, got {pathology!r}')
  if variability not in VARIABILITY:
    raise UserError(f'synthetic variability must be one of {sorted(VARIABILITY)}, got '
                    f'{variability!r}')
  v = VARIABILITY[variability]
  rng = np.random.default_rng(seed)
  shape = tuple(int(s) for s in shape)
  fov = FIELD_OF_VIEW_MM if pathology == 'glioma' else MS_FIELD_OF_VIEW_MM
  spacing = np.array(fov) / np.array(shape)
  axes = [(np.arange(n) + 0.5) * s - f / 2 for n, s, f in zip(shape, spacing, fov)]
  grid = np.stack(np.meshgrid(*axes, indexing='ij'))  # [3, X, Y, Z] mm from the centre
  noise_sigma = 12.0 / spacing.mean()  # ~12 mm correlation length

  # Brain: an ellipsoid with a bumpy surface; a grey-matter ribbon folded by smooth noise.
  brain_radii = np.array([68.0, 85.0, 60.0]) * rng.uniform(*v['brain_scale'], 3)
  brain_center = rng.normal(0, 3, 3)
  r = _ellipsoid_distance(grid, brain_center, brain_radii)
  r = r + 0.04 * _smooth_noise(rng, shape, noise_sigma)
  tissue = np.full(shape, BG, np.uint8)
  folds = 0.05 * _smooth_noise(rng, shape, noise_sigma / 3)
  tissue[r < 1.0] = CSF
  tissue[r < 0.96] = GM
  tissue[r < 0.84 + folds] = WM
  # Ventricles: two lateral ellipsoids near the centre.
  for side in (-1, 1):
    c = brain_center + np.array([side * 9.0, rng.normal(5, 3), rng.normal(8, 2)])
    vr = np.array([6.0, 22.0, 9.0]) * rng.uniform(*v['ventricle_scale'])
    tissue[_ellipsoid_distance(grid, c, vr) < 1.0] = CSF

  if pathology == 'ms':
    _add_lesions(rng, tissue)
  else:
    _add_tumour(rng, tissue, grid, r, brain_center, brain_radii, noise_sigma, v)
  seg = np.zeros(shape, np.uint8)
  for t, label in (_TISSUE_TO_LABEL if pathology == 'glioma' else {LESION: 1}).items():
    seg[tissue == t] = label

  texture = 0.04 * _smooth_noise(rng, shape, noise_sigma / 4)  # shared anatomy texture
  brain = tissue != BG
  physics = None  # (classic and wide draw no number here: their cases stay as they were)
  if v.get('physics', 0.0) and (v['physics'] == 1.0 or rng.random() < v['physics']):
    physics = _relaxation(rng)
  images = {}
  for modality in PATHOLOGIES[pathology]:
    if physics is not None:
      levels = _physics_levels(rng, modality, *physics)
    else:
      contrast = _CONTRAST[modality][:LESION + (pathology == 'ms')]  # (glioma: as it always did)
      levels = np.array(contrast) * rng.uniform(*v['contrast'], len(contrast))  # per-case contrast
    img = levels[tissue] * (1.0 + texture)
    blur = 0.6  # partial volume
    if variability != 'classic':  # and a thicker acquisition along one axis, drawn per sequence
      axis, extra = rng.integers(3), rng.uniform(0, v['blur'])
      blur = [0.6 + extra * (a == axis) for a in range(3)]
    img = ndimage.gaussian_filter(img, blur)
    bias = np.exp(v['bias'] * _smooth_noise(rng, shape, 3 * noise_sigma))
    img = img * bias
    sigma = (v['noise'] if variability == 'classic' else rng.uniform(0.01, v['noise'])) * img[
        brain].mean()
    img = np.sqrt((img + rng.normal(0, sigma, shape))**2 + rng.normal(0, sigma, shape)**2)
    img[~brain] = 0.0
    images[modality] = (img * rng.uniform(600, 1400)).astype(np.float32)

  # BraTS volumes are stored with a diagonal LPS-like affine (x and y flipped).
  affine = np.diag([-spacing[0], -spacing[1], spacing[2], 1.0])
  affine[:3, 3] = [spacing[0] * (shape[0] - 1), spacing[1] * (shape[1] - 1), 0.0]
  return Case(images=images, seg=seg, tissue=tissue, affine=affine)


def _relaxation(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray, bool]:
  """One case's tissue parameters ``(pd, t1 ms, t2 ms)``, each ``[LESION + 1]`` indexed by tissue
  class (background 0), from `RELAXATION_RANGES`, and whether its T1 protocol is the inversion
  one."""
  where = rng.uniform(size=3)  # where in the PD, T1 (0: 1.5 T, 1: 3 T) and T2 ranges
  jitter = (0.03, 0.1, 0.08)
  values = np.zeros((3, LESION + 1))  # pd, t1, t2
  for t, ranges in RELAXATION_RANGES.items():
    for k, (low, high) in enumerate(ranges):
      values[k, t] = (low + where[k] * (high - low)) * rng.uniform(1 - jitter[k], 1 + jitter[k])
  pd, t1, t2 = values
  return pd, t1, t2, bool(rng.random() < 0.5)


def _physics_levels(rng: np.random.Generator, modality: str, pd: np.ndarray, t1: np.ndarray,
                    t2: np.ndarray, t1_inversion: bool) -> np.ndarray:
  """Each tissue's signal ``[LESION + 1]`` (background 0) in ``modality`` under a protocol drawn
  from `PROTOCOLS`: ``pd * |1 - 2 exp(-TI/T1) + exp(-TR/T1)| * exp(-TE/T2)`` (inversion recovery)
  or ``pd * (1 - exp(-TR/T1)) * exp(-TE/T2)`` (TI = 0); gadolinium shortens the enhancing rim's
  T1 in ``t1ce``."""
  t1 = t1.copy()
  if modality in ('t1', 't1ce'):
    protocol = PROTOCOLS['t1_inversion' if t1_inversion else 't1_spin_echo']
  else:
    protocol = PROTOCOLS[modality]
  tr, te, ti = (rng.uniform(*protocol[k]) for k in ('tr', 'te', 'ti'))
  if modality == 't1ce':
    t1[ENHANCING] = rng.uniform(*GADOLINIUM_T1)
  t1, t2 = np.maximum(t1, 1.0), np.maximum(t2, 1.0)  # background entries: no division by 0
  recovery = np.exp(-tr / t1)
  longitudinal = np.abs(1 - 2 * np.exp(-ti / t1) + recovery) if ti else 1 - recovery
  levels = pd * longitudinal * np.exp(-te / t2)
  levels[BG] = 0.0
  return levels / levels[1:].max()


def _add_tumour(rng, tissue, grid, r, brain_center, brain_radii, noise_sigma, v) -> None:
  """A glioma in ``tissue`` (in place): edema > enhancing rim > necrotic core, irregular, at a
  fraction ``v['tumour_offset']`` of the brain's radii from its centre (``r``: the normalised brain
  radius per voxel; ``v``: the `VARIABILITY` ranges)."""
  shape = tissue.shape
  core_radius = rng.uniform(*v['core_radius'])
  direction = rng.standard_normal(3)
  offset = direction / np.linalg.norm(direction) * rng.uniform(*v['tumour_offset'])
  tc = brain_center + offset * brain_radii
  tumour_r = _ellipsoid_distance(grid, tc, core_radius * rng.uniform(0.75, 1.25, 3))
  tumour_r = tumour_r + 0.15 * _smooth_noise(rng, shape, noise_sigma / 2)
  inside_brain = r < 0.98
  edema_extent = rng.uniform(*v['edema_extent'])
  tissue[(tumour_r < edema_extent) & inside_brain & (tissue != BG)] = EDEMA
  tissue[(tumour_r < 1.0) & inside_brain] = ENHANCING
  necrosis_frac = rng.uniform(0.0, 0.7)  # some low-grade-like cases have (almost) no necrosis
  tissue[(tumour_r < necrosis_frac) & inside_brain] = NECROSIS


def block_average(case: Case, block: tuple[int, int, int]) -> Case:
  """``case`` on a grid ``block`` times coarser over the same field of view, as a coarser
  acquisition of the same anatomy: images averaged over each block (partial volume), the brain
  where more than half a block is brain, labels by the nearest voxel. The affine keeps the world
  position of every voxel's centre."""
  block = tuple(int(b) for b in block)
  if block == (1, 1, 1):
    return case
  shape = tuple(n // b for n, b in zip(case.seg.shape, block))

  def average(volume: np.ndarray) -> np.ndarray:
    cut = volume[:shape[0] * block[0], :shape[1] * block[1], :shape[2] * block[2]]
    return cut.reshape(shape[0], block[0], shape[1], block[1], shape[2],
                       block[2]).mean((1, 3, 5)).astype(np.float32)

  brain = average((case.tissue != BG).astype(np.float32)) > 0.5
  images = {m: np.where(brain, average(v), 0).astype(np.float32) for m, v in case.images.items()}
  seg = np.where(brain, resample.resample(case.seg, shape, 0), 0).astype(case.seg.dtype)
  tissue = resample.resample(case.tissue, shape, 0)
  tissue[~brain] = BG
  affine = case.affine.copy()
  affine[:3, :3] = case.affine[:3, :3] * np.array(block)[None, :]
  affine[:3, 3] = case.affine[:3, 3] + case.affine[:3, :3] @ ((np.array(block) - 1) / 2)
  return Case(images=images, seg=seg, tissue=tissue, affine=affine)


def write_case(case: Case, case_dir: str, case_id: str, layout: str, vsd_id: int = 0,
               leave_out: str | None = None) -> None:
  """Writes ``case`` in ``layout`` (images int16, as BraTS ships them): NIfTI files, or for
  ``brats2015`` ``.mha`` files in ``VSD.Brain*.XX.O.<name>.<vsd_id + i>/`` folders; all but the
  sequence ``leave_out``."""
  os.makedirs(case_dir, exist_ok=True)
  spec = layouts.LAYOUTS[layout]
  volumes = {m: np.round(img).astype(np.int16) for m, img in case.images.items() if m != leave_out}
  volumes['seg'] = spec.labels_from_brats2021(case.seg)
  for i, (key, data) in enumerate(volumes.items()):
    if layout == 'brats2015':
      stem = (f'VSD.Brain{"_3more" if key == "seg" else ""}.XX.O.'
              f'{layouts.VSD_NAMES[key]}.{vsd_id + i}')
      os.makedirs(os.path.join(case_dir, stem), exist_ok=True)
      itk.write(os.path.join(case_dir, stem, stem + '.mha'), data, case.affine)
    else:
      nifti.save(os.path.join(case_dir, spec.filename(case_id, key)), data, case.affine)


def generate_dataset(out_dir: str, num_cases: int, seed: int, layout: str = 'brats2021',
                     shape: tuple[int, int, int] = BRATS_SHAPE,
                     pathology: str = 'glioma', drop_one_sequence: bool = False,
                     variability: str = 'classic') -> list[str]:
  """Writes ``num_cases`` cases under ``out_dir``; returns their folders. Case ``i`` uses seed
  ``seed * 100003 + i``, so a dataset is a prefix of any larger one with the same seed. MS cases
  (``pathology='ms'``) are written in the ``brats2021`` naming, with ``<case>_pd.nii.gz``.

  ``drop_one_sequence``: each case lacks one sequence, as in the BraSyn challenge's validation set
  (the segmentation stays, for scoring): a seeded random order of the four per four consecutive
  cases, so that each is missing equally often."""
  if pathology == 'ms' and layout != 'brats2021':
    raise UserError(f"synthetic MS cases are written in the brats2021 layout, not {layout!r}")
  names = {'brats2021': 'BraTS2021_{:05d}', 'brats2023': 'BraTS-GLI-{:05d}-000',
           'brats2015': 'brats_synth_pat{:04d}_1'}
  dirs = []
  for i in range(num_cases):
    case_id = names[layout].format(i) if pathology == 'glioma' else f'MS_{i:05d}'
    case_dir = os.path.join(out_dir, case_id)
    case = generate_case(seed * 100003 + i, shape, pathology, variability)
    leave_out = None
    if drop_one_sequence:  # a seeded order per four cases: each sequence missing equally often
      order = np.random.default_rng([seed, i // 4, 1]).permutation(4)
      leave_out = PATHOLOGIES[pathology][order[i % 4]]
    write_case(case, case_dir, case_id, layout, vsd_id=50000 + 5 * i, leave_out=leave_out)
    dirs.append(case_dir)
  return dirs


def _parse_shape(text: str) -> tuple[int, int, int]:
  parts = [int(p) for p in text.split(',')]
  if len(parts) != 3 or min(parts) < 8:
    raise argparse.ArgumentTypeError(f'--shape wants X,Y,Z with each >= 8, got {text!r}')
  return tuple(parts)


def main(argv: list[str] | None = None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
  parser.add_argument('--out', required=True, help='output folder (created)')
  parser.add_argument('--num-cases', type=int, default=10)
  parser.add_argument('--seed', type=int, default=0)
  parser.add_argument('--layout', choices=sorted(layouts.LAYOUTS), default='brats2021')
  parser.add_argument('--shape', type=_parse_shape, default=None,
                      help='voxel grid X,Y,Z (default 240,240,155 = BraTS at 1 mm; for ms '
                      '180,216,60 = 1 x 1 x 3 mm)')
  parser.add_argument('--pathology', choices=sorted(PATHOLOGIES), default='glioma')
  parser.add_argument('--variability', choices=sorted(VARIABILITY), default='classic',
                      help="the ranges anatomy and contrasts are drawn from (VARIABILITY)")
  parser.add_argument('--drop-one-sequence', action='store_true',
                      help='leave one sequence out of each case, at random (BraSyn validation)')
  args = parser.parse_args(argv)
  shape = args.shape or (BRATS_SHAPE if args.pathology == 'glioma' else MS_SHAPE)
  for d in generate_dataset(args.out, args.num_cases, args.seed, args.layout, shape,
                            args.pathology, args.drop_one_sequence, args.variability):
    print(d)


if __name__ == '__main__':
  main()
