"""Case discovery and validation: every bad case is reported with its file and the reason."""

import gzip
import os

import nibabel as nib
import numpy as np
import pytest

from rsnet_jax.data import layouts
from rsnet_jax.data import synthetic
from rsnet_jax.errors import UserError

ALL = layouts.MODALITIES + ('seg',)


def _write(path, data, affine=np.eye(4)):
  nib.save(nib.Nifti1Image(data, affine), path)


@pytest.fixture
def dataset(tmp_path):
  synthetic.generate_dataset(str(tmp_path), 5, seed=2, shape=(16, 16, 16))
  return tmp_path


def _case_file(root, i, key):
  case_id = f'BraTS2021_{i:05d}'
  return os.path.join(root, case_id, f'{case_id}_{key}.nii.gz')


def test_discovers_case_folder_and_folder_of_cases(dataset):
  cases = layouts.discover(str(dataset))
  assert [c.case_id for c in cases] == [f'BraTS2021_{i:05d}' for i in range(5)]
  one = layouts.discover(os.path.join(dataset, 'BraTS2021_00003'))
  assert [c.case_id for c in one] == ['BraTS2021_00003']


def test_no_cases_is_a_clear_error(tmp_path):
  with pytest.raises(UserError, match='no case found'):
    layouts.discover(str(tmp_path))
  with pytest.raises(UserError, match='not found'):
    layouts.discover(str(tmp_path / 'nope'))


def test_bad_cases_are_reported_with_file_and_reason(dataset):
  os.remove(_case_file(dataset, 0, 't2'))  # missing file
  flair1 = _case_file(dataset, 1, 'flair')
  _write(flair1, np.ones((16, 16, 12), np.float32))  # shape mismatch
  t1_2 = _case_file(dataset, 2, 't1')
  img = nib.load(t1_2)
  data = np.asarray(img.dataobj).astype(np.float32)
  data[3, 3, 3] = np.nan
  _write(t1_2, data, img.affine)  # NaN
  seg3 = _case_file(dataset, 3, 'seg')
  seg = nib.load(seg3)
  labels = np.asarray(seg.dataobj).copy()
  labels[0, 0, 0] = 7
  _write(seg3, labels, seg.affine)  # unexpected label
  cases = layouts.discover(str(dataset))
  with pytest.raises(UserError) as err:
    layouts.validate_all(cases, ALL, skip_invalid=False)
  problems = err.value.problems
  assert any(_case_file(dataset, 0, 't2') in p and 'missing' in p for p in problems)
  assert any(flair1 in p and 'shape (16, 16, 12)' in p for p in problems)
  assert any(t1_2 in p and 'NaN' in p for p in problems)
  assert any(seg3 in p and '[7]' in p for p in problems)
  assert '4 of 5 cases invalid' in problems[-1]
  valid, listed = layouts.validate_all(cases, ALL, skip_invalid=True)
  assert [c.case_id for c in valid] == ['BraTS2021_00004'] and len(listed) == 4


def test_truncated_file_is_unreadable_not_a_crash(dataset):
  path = _case_file(dataset, 4, 't1ce')
  with open(path, 'rb') as f:
    raw = gzip.decompress(f.read())
  with gzip.open(path, 'wb') as f:
    f.write(raw[: len(raw) // 2])
  problems = layouts.validate(layouts.discover(os.path.join(dataset, 'BraTS2021_00004'))[0], ALL)
  assert len(problems) == 1 and path in problems[0] and 'unreadable' in problems[0]


def test_affine_mismatch_and_empty_image(dataset):
  t2 = _case_file(dataset, 0, 't2')
  img = nib.load(t2)
  _write(t2, np.asarray(img.dataobj), img.affine @ np.diag([1, 1, 1.5, 1]))
  t1 = _case_file(dataset, 1, 't1')
  _write(t1, np.zeros((16, 16, 16), np.int16), nib.load(t1).affine)
  cases = layouts.discover(str(dataset))
  assert any('affine differs' in p and t2 in p for p in layouts.validate(cases[0], ALL))
  assert any('empty image' in p and t1 in p for p in layouts.validate(cases[1], ALL))


def test_label_mapping_round_trip():
  for layout in layouts.LAYOUTS.values():
    values = np.array(layout.labels)
    idx = layout.label_to_index(values)
    np.testing.assert_array_equal(idx, [0, 1, 2, 3])
    np.testing.assert_array_equal(layout.index_to_label(idx), values)
