"""The independent synthetic family: BraTS layouts, every tumour region, the signal equations'
contrasts, determinism, and an anatomy that is not our first generator's."""

import numpy as np
import pytest

from rsnet_jax.data import layouts
from rsnet_jax.data import synthetic
from rsnet_jax.data import synthetic_relaxometry as relax

SHAPE = (48, 48, 40)


@pytest.mark.parametrize('seed', range(3))
def test_every_tumour_region_and_the_physics_contrasts(seed):
  case = relax.generate_case(seed, SHAPE)
  assert set(np.unique(case.seg)) == {0, 1, 2, 4}
  mean = lambda m, t: float(case.images[m][case.tissue == t].mean())
  # Spin echo / inversion recovery at the documented parameters: T1 WM > GM > CSF; T2 CSF bright;
  # FLAIR: CSF dark, oedema brighter than white matter; gadolinium brightens the enhancing rim.
  assert mean('t1', relax.WM) > mean('t1', relax.GM) > mean('t1', relax.CSF)
  assert mean('t2', relax.CSF) > mean('t2', relax.GM) > mean('t2', relax.WM)
  assert mean('flair', relax.CSF) < mean('flair', relax.WM) < mean('flair', relax.EDEMA)
  ratio = lambda m: mean(m, relax.ENHANCING) / mean(m, relax.WM)
  assert ratio('t1ce') > 1.5 * ratio('t1')
  assert all((img[case.tissue == relax.BG] == 0).all() for img in case.images.values())


def test_deterministic_and_not_the_first_generator():
  a, b = relax.generate_case(4, SHAPE), relax.generate_case(4, SHAPE)
  np.testing.assert_array_equal(a.images['flair'], b.images['flair'])
  other = synthetic.generate_case(4, SHAPE)
  assert not np.array_equal(a.seg > 0, other.seg > 0)
  assert (a.tissue == relax.DEEP_GM).any()  # deep grey nuclei: a tissue the first family lacks


def test_written_in_a_brats_layout_that_validates(tmp_path):
  relax.generate_dataset(str(tmp_path), 2, seed=0, layout='brats2023', shape=(24, 24, 20))
  cases = layouts.discover(str(tmp_path))
  assert [c.case_id for c in cases] == ['RELAX-GLI-00000-000', 'RELAX-GLI-00001-000']
  valid, problems = layouts.validate_all(cases, ('t1', 't1ce', 't2', 'flair', 'seg'), False)
  assert len(valid) == 2 and not problems
