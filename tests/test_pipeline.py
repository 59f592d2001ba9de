"""Preprocessing windows and the Grain pipeline: exact round trips and a deterministic data order."""

import numpy as np
import pytest

from rsnet_jax.data import layouts
from rsnet_jax.data import pipeline
from rsnet_jax.data import preprocess
from tests.conftest import tiny_config


@pytest.mark.parametrize('crop', [None, (10, 12, 7), (40, 9, 6)])
def test_window_extract_restore_round_trip(crop):
  rng = np.random.default_rng(0)
  shape = (13, 17, 9)
  volume = rng.uniform(size=shape).astype(np.float32)
  brain = np.zeros(shape, bool)
  brain[3:11, 5:13, 2:8] = True
  starts, sizes = preprocess.window(shape, brain, crop, 8)
  assert all(s % 8 == 0 for s in sizes)
  cut = preprocess.extract(volume, starts, sizes)
  back = preprocess.restore(cut, starts, shape)
  if crop is None:  # pad only: exact everywhere
    np.testing.assert_array_equal(back, volume)
  else:  # cropped: exact inside the window, which holds the whole brain
    np.testing.assert_array_equal(back[brain], volume[brain])


def test_normalizations():
  rng = np.random.default_rng(1)
  img = rng.uniform(10, 100, (8, 8, 8)).astype(np.float32)
  brain = np.zeros_like(img, bool)
  brain[2:6, 2:6, 2:6] = True
  n17 = preprocess.normalize(img, brain, 'brats2017')
  assert n17[brain].min() == 0.0 and np.isclose(n17[brain].max(), 1.0)
  assert (n17[~brain] == 0).all()
  n15 = preprocess.normalize(img, brain, 'brats2015')
  np.testing.assert_allclose(n15[brain].mean(), 1.0, rtol=1e-5)
  nz = preprocess.normalize(img, brain, 'zscore')
  np.testing.assert_allclose([nz[brain].mean(), nz[brain].std()], [0.0, 1.0], atol=1e-5)
  assert (nz[~brain] == 0).all()
  # zscore is brats2017 before its rescaling by the brain's extreme voxels.
  np.testing.assert_allclose((nz[brain] - nz[brain].min()) / np.ptp(nz[brain]), n17[brain],
                             atol=1e-6)
  with pytest.raises(ValueError, match='zscore'):
    preprocess.normalize(img, brain, 'z')


def test_load_case_shapes_and_channels(tiny_dataset):
  config = tiny_config()
  task = pipeline.Task.from_config(config)
  assert task.inputs == ('t1', 't1ce', 't2') and task.complementary == 't2'
  case = layouts.discover(tiny_dataset)[0]
  ex, meta = pipeline.load_case(case, task)
  assert ex['inputs'].shape == (16, 16, 16, 3) and ex['complementary'].shape == (16, 16, 16, 1)
  np.testing.assert_array_equal(ex['complementary'][..., 0], ex['inputs'][..., 2])
  assert ex['target'].shape == (16, 16, 16, 1) and ex['labels'].dtype == np.int32
  assert set(np.unique(ex['labels'])) <= {0, 1, 2, 3} and meta.shape == (16, 16, 16)


def test_grain_order_is_deterministic_and_reshuffled_per_epoch(tiny_dataset):
  cases = layouts.discover(tiny_dataset)
  task = pipeline.Task.from_config(tiny_config())

  def order(seed, start=0):
    ds = pipeline.train_dataset(cases, task, 1, 3, seed)[start:]
    return [float(b['inputs'].sum()) for b in pipeline.to_iterator(ds, 0)]

  first, again, other = order(0), order(0), order(1)
  assert len(first) == 12 and first == again and first != other
  epochs = [first[i * 4:(i + 1) * 4] for i in range(3)]
  assert all(sorted(e) == sorted(epochs[0]) for e in epochs)  # each epoch sees every case once
  assert epochs[0] != epochs[1] or epochs[1] != epochs[2]  # and in a new order
  assert order(0, start=5) == first[5:]  # resuming at step 5 continues the same stream


def test_split_is_deterministic_and_disjoint(tiny_dataset):
  cases = layouts.discover(tiny_dataset)
  a = pipeline.split(cases, 0.25, 0.25, 0)
  assert a == pipeline.split(cases, 0.25, 0.25, 0)
  ids = [c.case_id for part in a.values() for c in part]
  assert sorted(ids) == sorted(c.case_id for c in cases)
  assert [len(a[k]) for k in ('train', 'val', 'test')] == [2, 1, 1]


def test_worker_processes_give_the_same_batches(tiny_dataset):
  from absl import flags  # pylint: disable=g-import-not-at-top
  flags.FLAGS.mark_as_parsed()  # Grain's worker processes read absl flags
  cases = layouts.discover(tiny_dataset)
  task = pipeline.Task.from_config(tiny_config())
  ds = pipeline.train_dataset(cases, task, 2, 2, seed=3)
  threads = [b['inputs'] for b in pipeline.to_iterator(ds, 0)]
  workers = [b['inputs'] for b in pipeline.to_iterator(ds, 2)]
  assert len(threads) == len(workers) == 4
  for a, b in zip(threads, workers):
    np.testing.assert_array_equal(a, b)


def test_bad_task_config_is_a_user_error():
  from rsnet_jax.errors import UserError  # pylint: disable=g-import-not-at-top
  with pytest.raises(UserError, match="data.target must be one of"):
    pipeline.Task.from_config(tiny_config(**{'data.target': 'pd'}))
  with pytest.raises(UserError, match="data.complementary 'flair' must be one of the inputs"):
    pipeline.Task.from_config(tiny_config(**{'data.complementary': 'flair'}))
