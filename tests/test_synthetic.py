"""The synthetic case generator: BraTS layouts, labels, contrasts, determinism, non-trivial synthesis."""

import os
import zlib

import nibabel as nib
import numpy as np
import pytest

from rsnet_jax.data import layouts
from rsnet_jax.data import synthetic

SHAPE = (24, 24, 20)


@pytest.mark.parametrize('layout,names,labels', [
    ('brats2021', ['_t1', '_t1ce', '_t2', '_flair', '_seg'], {0, 1, 2, 4}),
    ('brats2023', ['-t1n', '-t1c', '-t2w', '-t2f', '-seg'], {0, 1, 2, 3}),
])
def test_layouts_and_labels(tmp_path, layout, names, labels):
  dirs = synthetic.generate_dataset(str(tmp_path), 2, seed=1, layout=layout, shape=SHAPE)
  assert len(dirs) == 2
  for d in dirs:
    case_id = os.path.basename(d)
    assert sorted(os.listdir(d)) == sorted(f'{case_id}{n}.nii.gz' for n in names)
    seg = nib.load(os.path.join(d, f'{case_id}{names[-1]}.nii.gz'))
    assert seg.shape == SHAPE
    values = set(np.unique(np.asarray(seg.dataobj)).tolist())
    assert values <= labels and {1, 2} <= values or {2} <= values
    assert max(values) == max(labels)  # an enhancing rim in every case
  cases = layouts.discover(str(tmp_path))
  assert [c.layout.name for c in cases] == [layout] * 2
  assert all(not layouts.validate(c, layouts.MODALITIES + ('seg',)) for c in cases)


def test_deterministic_by_seed():
  a, b = synthetic.generate_case(3, SHAPE), synthetic.generate_case(3, SHAPE)
  c = synthetic.generate_case(4, SHAPE)
  for m in a.images:
    np.testing.assert_array_equal(a.images[m], b.images[m])
  np.testing.assert_array_equal(a.seg, b.seg)
  assert not np.array_equal(a.seg, c.seg)




@pytest.mark.parametrize('seed', [11, 12, 13])
def test_contrasts_are_those_of_real_sequences(seed):
  case = synthetic.generate_case(seed, (48, 48, 40))
  s = synthetic
  med = {m: {t: np.median(img[case.tissue == t]) for t in range(1, 7) if (case.tissue == t).any()}
         for m, img in case.images.items()}
  t1, t1ce, t2, flair = med['t1'], med['t1ce'], med['t2'], med['flair']
  assert t1[s.WM] > t1[s.GM] > t1[s.CSF]  # T1: WM > GM > CSF
  assert t1[s.EDEMA] < t1[s.GM] and t1[s.NECROSIS] < t1[s.GM]  # tumour dark in T1
  assert t1ce[s.ENHANCING] > max(t1ce[t] for t in (s.CSF, s.GM, s.WM, s.EDEMA))  # bright rim
  assert t1ce[s.ENHANCING] > 1.4 * t1[s.ENHANCING] * t1ce[s.WM] / t1[s.WM]
  assert t2[s.CSF] > t2[s.GM] > t2[s.WM] and t2[s.EDEMA] > t2[s.GM]  # T2: fluid and edema bright
  assert flair[s.CSF] < 0.5 * flair[s.WM] and flair[s.EDEMA] > flair[s.GM]  # FLAIR: CSF dark
  assert (case.images['t1'][case.tissue == s.BG] == 0).all()  # skull-stripped background


def test_synthesis_is_not_a_fixed_function_of_the_other_sequences():
  # The FLAIR/T2 intensity ratio of edema differs between cases (per-case contrasts).
  ratios = []
  for seed in range(4):
    case = synthetic.generate_case(seed, SHAPE)
    ed = case.seg == 2
    ratios.append(np.median(case.images['flair'][ed]) / np.median(case.images['t2'][ed]))
  assert np.std(ratios) / np.mean(ratios) > 0.05


def test_cli_writes_cases(tmp_path):
  synthetic.main(['--out', str(tmp_path), '--num-cases', '1', '--shape', '16,16,16',
                  '--layout', 'brats2023'])
  assert os.listdir(tmp_path) == ['BraTS-GLI-00000-000']


def test_ms_cases_have_lesions_of_every_size_bin_bright_in_flair_t2_pd(tmp_path):
  from scipy import ndimage  # pylint: disable=g-import-not-at-top
  sizes = []
  for seed in range(4):
    case = synthetic.generate_case(seed, (90, 108, 30), 'ms')
    assert list(case.images) == ['t1', 't2', 'flair', 'pd']
    assert set(np.unique(case.seg)) == {0, 1}
    np.testing.assert_allclose(np.abs(np.diag(case.affine))[:3], [2.0, 2.0, 6.0])
    lesion, wm = case.tissue == synthetic.LESION, case.tissue == synthetic.WM
    for modality in ('flair', 't2', 'pd'):
      assert case.images[modality][lesion].mean() > 1.1 * case.images[modality][wm].mean()
    assert case.images['t1'][lesion].mean() < case.images['t1'][wm].mean()
    labels, _ = ndimage.label(case.seg, ndimage.generate_binary_structure(3, 2))
    sizes += np.bincount(labels.ravel())[1:].tolist()
  sizes = np.array(sizes)
  assert ((sizes >= 3) & (sizes <= 10)).any() and ((sizes >= 11) & (sizes <= 50)).any()
  assert (sizes >= 51).any()
  dirs = synthetic.generate_dataset(str(tmp_path), 1, seed=0, shape=(24, 24, 16), pathology='ms')
  assert sorted(os.listdir(dirs[0])) == [f'MS_00000_{k}.nii.gz' for k in
                                         ('flair', 'pd', 'seg', 't1', 't2')]
  (case,) = layouts.discover(str(tmp_path))
  assert not layouts.validate(case, layouts.MS_MODALITIES + ('seg',))


def test_wide_cohort_varies_more_and_classic_stays_the_demos():
  seeds = range(6)
  sizes = {v: [int((synthetic.generate_case(s, SHAPE, variability=v).seg > 0).sum()) for s in seeds]
           for v in ('classic', 'wide')}
  brains = {v: [int((synthetic.generate_case(s, SHAPE, variability=v).tissue > 0).sum())
                for s in seeds] for v in ('classic', 'wide')}
  assert np.std(sizes['wide']) > np.std(sizes['classic'])
  assert np.ptp(brains['wide']) > np.ptp(brains['classic'])
  # 'classic' (the default) draws the same numbers in the same order as the generator did before
  # the option existed: CRC-32 of a case made by that code (3b747b9), so the demo keeps its cases.
  case = synthetic.generate_case(5, (40, 40, 36))
  assert (zlib.crc32(case.seg.tobytes()), zlib.crc32(case.images['t2'].tobytes())) == (
      1544147235, 3472540533)
  with pytest.raises(Exception, match='variability'):
    synthetic.generate_case(0, SHAPE, variability='huge')


def test_physics_contrasts_follow_the_signal_equations_and_vary_per_case():
  """'physics': tissue orders as MR physics gives them in every case (T1: WM > GM > CSF; T2: CSF >
  GM > WM; FLAIR: CSF nulled, oedema brightest; gadolinium brightens the rim), while the levels
  relative to white matter vary across cases more than 'classic's +-15 % table does."""
  ratios = {'classic': [], 'physics': []}
  for seed in range(6):
    for variability in ratios:
      case = synthetic.generate_case(seed, (40, 40, 36), variability=variability)
      level = {m: {t: float(img[case.tissue == t].mean()) for t in (
          synthetic.CSF, synthetic.GM, synthetic.WM, synthetic.EDEMA, synthetic.ENHANCING)}
               for m, img in case.images.items()}
      ratios[variability].append(level['t2'][synthetic.GM] / level['t2'][synthetic.WM])
      if variability == 'classic':
        continue
      t1, t2, flair = level['t1'], level['t2'], level['flair']
      assert t1[synthetic.WM] > t1[synthetic.GM] > t1[synthetic.CSF]
      assert t2[synthetic.CSF] > t2[synthetic.GM] > t2[synthetic.WM]
      assert flair[synthetic.EDEMA] > flair[synthetic.GM] > flair[synthetic.CSF]
      rim = {m: level[m][synthetic.ENHANCING] / level[m][synthetic.WM] for m in ('t1', 't1ce')}
      assert rim['t1ce'] > 1.2 * rim['t1']  # (a thin rim: partial volume with its neighbours)
  assert np.std(ratios['physics']) > np.std(ratios['classic'])


def test_physics_levels_are_the_signal_equation():
  """`_physics_levels` on a known tissue table: spin echo, inversion recovery (CSF nulled at TI =
  T1 ln 2 with TR >> T1) and gadolinium's T1 in t1ce."""
  pd, t1, t2 = np.zeros(8), np.full(8, 1000.0), np.full(8, 100.0)
  pd[1:] = 1.0
  t1[synthetic.CSF] = 2500.0 / np.log(2)  # FLAIR's TI range starts at 2000 ms
  rng = np.random.default_rng(0)
  flair = synthetic._physics_levels(rng, 'flair', pd, t1, t2, False)
  assert flair[synthetic.BG] == 0 and flair[synthetic.CSF] < 0.15 * flair[synthetic.GM]
  spin = synthetic._physics_levels(np.random.default_rng(1), 't1', pd, t1, t2, False)
  np.testing.assert_allclose(spin[2:], 1.0)  # identical tissues but CSF, normalised by the brightest
  t1ce = synthetic._physics_levels(np.random.default_rng(1), 't1ce', pd, t1, t2, False)
  assert t1ce[synthetic.ENHANCING] == 1.0 and t1ce[synthetic.GM] < 0.9
  with pytest.raises(Exception, match='variability'):
    synthetic.generate_case(0, SHAPE, variability='physic')
