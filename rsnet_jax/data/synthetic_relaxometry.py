"""A second, independent family of synthetic glioma cases, for out-of-distribution tests only.

It shares nothing with `synthetic` but the BraTS field of view, layouts and label convention:
  anatomy: a brain whose surface radius is a sum of random low-order spherical harmonics (not an
    ellipsoid), two hemispheres split by a CSF fissure, a cortex whose thickness and folds are
    plane waves over the surface depth, deep grey nuclei inside the white matter, butterfly-shaped
    lateral ventricles (bent tubes) and a third ventricle; head size varies +-15 %;
  tumour: two to four merged lobes, oedema that spreads along the white matter further than into
    grey matter (a geodesic-like distance), and mass effect: the anatomy around it pushed outwards
    by a radial displacement that decays with distance;
  contrast: each tissue has proton density, T1 and T2 (ms, 1.5-3 T values with per-case and
    per-scanner jitter), and each sequence is its signal equation (spin echo for T1 and T2,
    inversion recovery for FLAIR, T1 shortened by gadolinium in the enhancing rim for T1ce) with
    per-case repetition, echo and inversion times; a polynomial bias field, Rician noise and an
    optional thick-slice blur along the last axis.
The family's ranges are documented in `RELAXATION` and `SEQUENCES`. Deterministic by seed.

CLI: ``python -m rsnet_jax.data.synthetic_relaxometry --out DIR --num-cases N --seed S
[--layout brats2021|brats2023] [--shape X,Y,Z]``.
"""

from __future__ import annotations

import argparse
import os

import numpy as np
from scipy import ndimage
from scipy import special

from rsnet_jax.data import synthetic

BG, CSF, GM, WM, DEEP_GM, NECROSIS, EDEMA, ENHANCING = range(8)
# (proton density, T1 ms, T2 ms) per tissue at ~1.5-3 T; enhancing T1 is pre-contrast.
RELAXATION = {
    CSF: (1.00, 4000.0, 2000.0), GM: (0.80, 1300.0, 100.0), WM: (0.70, 800.0, 80.0),
    DEEP_GM: (0.78, 1150.0, 90.0), NECROSIS: (0.95, 2500.0, 600.0), EDEMA: (0.90, 1500.0, 200.0),
    ENHANCING: (0.85, 1400.0, 120.0),
}
ENHANCING_T1_WITH_GADOLINIUM = 400.0  # ms
# Sequence parameters (ms): TR, TE, TI (0: spin echo).
SEQUENCES = {'t1': (500.0, 15.0, 0.0), 't1ce': (500.0, 15.0, 0.0), 't2': (4000.0, 100.0, 0.0),
             'flair': (9000.0, 120.0, 2500.0)}
_TISSUE_TO_LABEL = {NECROSIS: 1, EDEMA: 2, ENHANCING: 4}


def _surface_radius(rng: np.random.Generator, theta: np.ndarray, phi: np.ndarray) -> np.ndarray:
  """1 + a sum of real spherical harmonics of degree 1-4 with random small weights."""
  r = np.ones_like(theta)
  for degree in range(1, 5):
    for order in range(-degree, degree + 1):
      y = special.sph_harm_y(degree, abs(order), theta, phi)
      r += rng.normal(0, 0.06 / degree) * (y.real if order >= 0 else y.imag)
  return r


def _anatomy(rng: np.random.Generator, grid: np.ndarray, spacing: np.ndarray) -> np.ndarray:
  """Tissue classes ``[X, Y, Z] uint8`` of a healthy brain on ``grid`` (``[3, X, Y, Z]`` mm)."""
  size = rng.uniform(0.85, 1.15)
  radii = np.array([66.0, 84.0, 58.0]) * size * rng.uniform(0.93, 1.07, 3)
  center = rng.normal(0, 4, 3)
  d = (grid - center[:, None, None, None]) / radii[:, None, None, None]
  rho = np.sqrt((d**2).sum(0))
  theta = np.arccos(np.clip(d[2] / np.maximum(rho, 1e-9), -1, 1))
  phi = np.arctan2(d[1], d[0])
  depth = 1.0 - rho / _surface_radius(rng, theta, phi)  # 0 on the surface, 1 at the centre
  tissue = np.full(rho.shape, BG, np.uint8)
  brain = depth > 0
  tissue[brain] = CSF
  # Cortex: thickness 0.08-0.14 of the radius, folded by plane waves.
  folds = np.zeros_like(depth)
  for _ in range(6):
    k = rng.standard_normal(3)
    k *= rng.uniform(0.15, 0.35) / np.linalg.norm(k)  # rad/mm: gyri 18-40 mm apart
    folds += np.cos(np.einsum('i,i...->...', k, grid) + rng.uniform(0, 2 * np.pi))
  folds /= 6
  thickness = rng.uniform(0.08, 0.14)
  tissue[brain & (depth > 0.025)] = GM
  tissue[brain & (depth > 0.025 + thickness * (1 + 0.6 * folds))] = WM
  # Sulcal CSF where the folds are deepest.
  tissue[brain & (depth > 0.025) & (depth < 0.025 + thickness) & (folds > 0.55)] = CSF
  # Interhemispheric fissure: CSF in a thin slab at the midline, above the ventricles.
  midline = np.abs(grid[0] - center[0]) < max(spacing[0] * 0.6, 1.5)
  tissue[brain & midline & (grid[2] > center[2] + 0.15 * radii[2]) & (depth < 0.45)] = CSF
  # Deep grey nuclei: four ellipsoids around the centre.
  for side in (-1, 1):
    for dy in (-8.0, 10.0):
      c = center + np.array([side * rng.uniform(14, 20), dy + rng.normal(0, 2), rng.normal(-4, 2)])
      dist = synthetic._ellipsoid_distance(grid, c, np.array([7.0, 11.0, 8.0]) * size)
      tissue[brain & (dist < 1.0)] = DEEP_GM
  # Lateral ventricles: bent tubes (a parabola in y-z), plus a thin third ventricle.
  bend = rng.uniform(0.004, 0.012)
  for side in (-1, 1):
    x0 = center[0] + side * rng.uniform(5, 9)
    zc = center[2] + 10 - bend * (grid[1] - center[1])**2
    width = rng.uniform(3.0, 6.0) * size
    tube = (np.abs(grid[0] - x0) < width) & (np.abs(grid[2] - zc) < width * 0.8) & (
        np.abs(grid[1] - center[1]) < 28 * size)
    tissue[brain & tube] = CSF
  third = (np.abs(grid[0] - center[0]) < 1.5) & (np.abs(grid[1] - center[1]) < 12) & (
      np.abs(grid[2] - center[2]) < 8)
  tissue[brain & third] = CSF
  return tissue


def _tumour(rng: np.random.Generator, tissue: np.ndarray, grid: np.ndarray,
            spacing: np.ndarray) -> np.ndarray:
  """The tumour grown into ``tissue`` with mass effect; returns the new tissue map."""
  wm = np.argwhere(tissue == WM)
  seed_voxel = wm[rng.integers(len(wm))]
  center = grid[(slice(None),) + tuple(seed_voxel)]
  lobes = [center + rng.normal(0, 6, 3) for _ in range(int(rng.integers(2, 5)))]
  radius = rng.uniform(8.0, 18.0)
  core = np.zeros(tissue.shape, bool)
  for lobe in lobes:
    core |= synthetic._ellipsoid_distance(grid, lobe, radius * rng.uniform(0.6, 1.1, 3)) < 1.0
  # Mass effect: the anatomy is read from closer to the centre, pushing it outwards.
  offset = grid - center[:, None, None, None]
  dist = np.sqrt((offset**2).sum(0)) + 1e-6
  push = rng.uniform(3.0, 8.0) * np.exp(-dist / (2 * radius))
  source = grid - offset / dist * push
  index = (source - grid[:, :1, :1, :1]) / spacing[:, None, None, None]
  moved = ndimage.map_coordinates(tissue, index, order=0, mode='nearest').astype(np.uint8)
  moved[tissue == BG] = BG
  brain = moved != BG
  # Oedema: within a distance of the core that counts 2.5x in grey matter, 1x in white matter.
  outside = ndimage.distance_transform_edt(~core, sampling=spacing)
  reach = outside * np.where(moved == WM, 1.0, 2.5)
  edema = brain & ~core & (reach < rng.uniform(10.0, 25.0)) & (moved != CSF)
  rim = max(rng.uniform(0.25, 0.5) * radius, 1.5 * spacing.max())  # >= one voxel of rim
  inner = ndimage.distance_transform_edt(core, sampling=spacing)
  out = moved.copy()
  out[edema] = EDEMA
  out[core & brain] = ENHANCING
  if rng.random() < 0.8:  # most have a necrotic centre
    out[core & brain & (inner > rim)] = NECROSIS
  return out


def _signal(tissue: np.ndarray, modality: str, rng: np.random.Generator,
            scanner: dict[str, float]) -> np.ndarray:
  """The sequence's signal equation per voxel from jittered tissue parameters, ``float64``."""
  tr, te, ti = (p * rng.uniform(0.9, 1.1) for p in SEQUENCES[modality])
  pd, t1, t2 = (np.zeros(8) for _ in range(3))
  for t, (p, r1, r2) in RELAXATION.items():
    pd[t] = p * rng.uniform(0.95, 1.05)
    t1[t] = r1 * scanner['t1_scale'] * rng.uniform(0.92, 1.08)
    t2[t] = r2 * scanner['t2_scale'] * rng.uniform(0.92, 1.08)
  if modality == 't1ce':
    t1[ENHANCING] = ENHANCING_T1_WITH_GADOLINIUM * rng.uniform(0.8, 1.2)
  e1 = np.exp(-tr / t1[1:])
  if ti:
    s = pd[1:] * np.abs(1 - 2 * np.exp(-ti / t1[1:]) + e1) * np.exp(-te / t2[1:])
  else:
    s = pd[1:] * (1 - e1) * np.exp(-te / t2[1:])
  levels = np.concatenate([[0.0], s])
  return levels[tissue]


def _bias(rng: np.random.Generator, grid: np.ndarray, strength: float) -> np.ndarray:
  """A smooth multiplicative field: exp of a random quadratic polynomial of the position."""
  x = grid / 100.0
  field = sum(rng.normal(0, strength) * x[i] for i in range(3))
  field = field + sum(rng.normal(0, strength / 2) * x[i] * x[j] for i in range(3)
                      for j in range(i, 3))
  return np.exp(field)


def generate_case(seed: int, shape: tuple[int, int, int] = synthetic.BRATS_SHAPE,
                  thick_slices: bool | None = None) -> synthetic.Case:
  """One case of this family on a ``shape`` grid over the BraTS field of view. ``thick_slices``:
  blur along the last axis as a 2-3x thicker acquisition would (None: drawn, one case in three)."""
  rng = np.random.default_rng([seed, 0x72656C61])
  shape = tuple(int(s) for s in shape)
  fov = synthetic.FIELD_OF_VIEW_MM
  spacing = np.array(fov) / np.array(shape)
  axes = [(np.arange(n) + 0.5) * s - f / 2 for n, s, f in zip(shape, spacing, fov)]
  grid = np.stack(np.meshgrid(*axes, indexing='ij'))
  tissue = _tumour(rng, _anatomy(rng, grid, spacing), grid, spacing)
  brain = tissue != BG
  scanner = {'t1_scale': rng.uniform(0.85, 1.2), 't2_scale': rng.uniform(0.9, 1.1)}
  thick = rng.random() < 1 / 3 if thick_slices is None else thick_slices
  images = {}
  for modality in ('t1', 't1ce', 't2', 'flair'):
    img = _signal(tissue, modality, rng, scanner)
    img = ndimage.gaussian_filter(img, [0.5, 0.5, 1.2 if thick else 0.5])
    img = img * _bias(rng, grid, rng.uniform(0.05, 0.25))
    sigma = rng.uniform(0.01, 0.04) * img[brain].mean()
    img = np.sqrt((img + rng.normal(0, sigma, shape))**2 + rng.normal(0, sigma, shape)**2)
    img[~brain] = 0.0
    images[modality] = (img / img[brain].mean() * rng.uniform(300, 900)).astype(np.float32)
  seg = np.zeros(shape, np.uint8)
  for t, label in _TISSUE_TO_LABEL.items():
    seg[tissue == t] = label
  affine = np.diag([-spacing[0], -spacing[1], spacing[2], 1.0])
  affine[:3, 3] = [spacing[0] * (shape[0] - 1), spacing[1] * (shape[1] - 1), 0.0]
  return synthetic.Case(images=images, seg=seg, tissue=tissue, affine=affine)


def generate_dataset(out_dir: str, num_cases: int, seed: int, layout: str = 'brats2021',
                     shape: tuple[int, int, int] = synthetic.BRATS_SHAPE) -> list[str]:
  """Writes ``num_cases`` cases of this family under ``out_dir`` (IDs ``RELAX_<i>`` in the
  layout's naming); returns their folders."""
  names = {'brats2021': 'RELAX{:05d}', 'brats2023': 'RELAX-GLI-{:05d}-000'}
  dirs = []
  for i in range(num_cases):
    case_id = names[layout].format(i)
    case_dir = os.path.join(out_dir, case_id)
    synthetic.write_case(generate_case(seed * 100003 + i, shape), case_dir, case_id, layout)
    dirs.append(case_dir)
  return dirs


def main(argv: list[str] | None = None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
  parser.add_argument('--out', required=True, help='output folder (created)')
  parser.add_argument('--num-cases', type=int, default=10)
  parser.add_argument('--seed', type=int, default=0)
  parser.add_argument('--layout', choices=['brats2021', 'brats2023'], default='brats2021')
  parser.add_argument('--shape', type=synthetic._parse_shape, default=synthetic.BRATS_SHAPE)
  args = parser.parse_args(argv)
  for d in generate_dataset(args.out, args.num_cases, args.seed, args.layout, args.shape):
    print(d)


if __name__ == '__main__':
  main()
