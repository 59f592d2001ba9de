"""Data augmentation: images and labels move together, probability 0 is the identity, the same seed
gives the same examples, and a resumed or sharded stream sees exactly the same augmented batches."""

import numpy as np
import pytest

from rsnet_jax.data import augment
from rsnet_jax.data import layouts
from rsnet_jax.data import pipeline
from rsnet_jax.errors import UserError
from tests.conftest import tiny_config

SPATIAL_ON = {f'augment.{n}_probability': 1.0 for n in augment.SPATIAL}
INTENSITY_ON = {f'augment.{n}_probability': 1.0 for n in augment.INTENSITY}


def _cube_example(shape=(24, 20, 16)):
  """A brain (a box, 0.2 in every input) holding a labelled cube (class 1, 1.0 in every input) off
  the centre, so that a mirror or rotation moves it."""
  brain = np.zeros(shape, np.float32)
  brain[3:-3, 3:-3, 2:-2] = 1
  labels = np.zeros(shape, np.int32)
  labels[5:11, 5:10, 4:9] = 1
  image = np.where(labels > 0, 1.0, 0.2 * brain).astype(np.float32)
  inputs = np.stack([image, 2 * image, 3 * image], -1)
  return {'inputs': inputs, 'complementary': inputs[..., [2]], 'target': image[..., None].copy(),
          'labels': labels, 'brain': brain, 'valid': np.ones(shape, np.float32)}


def _dice(a, b):
  return 2 * np.logical_and(a, b).sum() / (a.sum() + b.sum())


def test_probability_zero_is_the_identity():
  example = _cube_example()
  out = augment.augment(example, tiny_config(), np.random.default_rng(0), 2)
  assert out.keys() == example.keys()
  for key in example:
    np.testing.assert_array_equal(out[key], example[key])
  assert not augment.enabled(tiny_config())


@pytest.mark.parametrize('seed', range(4))
def test_spatial_moves_labels_with_the_images(seed):
  example = _cube_example()
  config = tiny_config(**SPATIAL_ON, **{'augment.rotate_degrees': 15.0})
  out = augment.augment(example, config, np.random.default_rng(seed), 2)
  cube = out['labels'] == 1
  assert cube.sum() > 0.5 * (example['labels'] == 1).sum()
  assert not np.array_equal(cube, example['labels'] == 1)  # it moved
  for c in range(3):  # the bright voxels are the labelled ones, in every channel
    assert _dice(cube, out['inputs'][..., c] > (c + 1) * 0.6) > 0.85
  assert _dice(cube, out['target'][..., 0] > 0.6) > 0.85
  np.testing.assert_array_equal(out['complementary'][..., 0], out['inputs'][..., 2])
  outside = out['brain'] == 0
  assert (out['inputs'][outside] == 0).all() and (out['labels'][outside] == 0).all()


def test_mirror_flips_every_array_exactly():
  example = _cube_example()
  config = tiny_config(**{'augment.mirror_probability': 1.0})
  out = augment.augment(example, config, np.random.default_rng(0), 2)
  for key in ('labels', 'brain', 'target', 'inputs'):
    np.testing.assert_array_equal(out[key], np.flip(example[key], (0, 1, 2)), err_msg=key)


def test_intensity_changes_inputs_inside_the_brain_only():
  example = _cube_example()
  out = augment.augment(example, tiny_config(**INTENSITY_ON), np.random.default_rng(1), 2)
  brain = example['brain'] > 0
  assert not np.allclose(out['inputs'][brain], example['inputs'][brain])
  assert (out['inputs'][~brain] == 0).all()
  for key in ('labels', 'target', 'brain', 'valid'):  # the references are left as they are
    np.testing.assert_array_equal(out[key], example[key])
  np.testing.assert_array_equal(out['complementary'][..., 0], out['inputs'][..., 2])


def test_bias_field_is_a_gain_above_zero_or_above_the_darkest_voxel():
  config = tiny_config(**{'augment.bias_field_probability': 1.0})
  example = _cube_example()
  brain = example['brain'] > 0
  out = augment.augment(example, config, np.random.default_rng(3), 2)
  gain = out['inputs'][brain] / example['inputs'][brain]  # non-negative inputs: a plain gain
  assert gain.min() < 0.97 and gain.max() > 1.03
  # zscore's signed inputs: the same gain on the signal above the brain's darkest voxel.
  signed = dict(example, inputs=np.where(brain[..., None], example['inputs'] - 1.0, 0.0))
  out_signed = augment.augment(signed, config, np.random.default_rng(3), 2)
  darkest = signed['inputs'][brain].min(0)
  np.testing.assert_allclose(out_signed['inputs'][brain] - darkest,
                             (signed['inputs'][brain] - darkest) * gain, rtol=1e-5, atol=1e-6)


def test_same_seed_same_example_other_index_other_example():
  example = _cube_example()
  config = tiny_config(**SPATIAL_ON, **INTENSITY_ON)
  a = augment.augment(example, config, augment.example_rng(3, 10), 2)
  b = augment.augment(example, config, augment.example_rng(3, 10), 2)
  c = augment.augment(example, config, augment.example_rng(3, 11), 2)
  for key in example:
    np.testing.assert_array_equal(a[key], b[key])
  assert not np.array_equal(a['inputs'], c['inputs'])


def test_crop_around_the_tumour_holds_it():
  example = _cube_example((40, 36, 32))
  for seed in range(5):
    out = augment.crop_around(example, (16, 16, 16), 1.0, np.random.default_rng(seed))
    assert out['inputs'].shape == (16, 16, 16, 3) and out['labels'].shape == (16, 16, 16)
    assert (out['labels'] == 1).any()
  small = augment.crop_around(example, (48, 16, 16), 0.0, np.random.default_rng(0))
  assert small['brain'].shape == (48, 16, 16) and small['brain'][:4].sum() == 0  # zero padding


def test_intensity_curve_keeps_order_and_range_but_not_contrast():
  x = np.linspace(-1.0, 3.0, 401)
  y = augment.intensity_curve(x, -1.0, 3.0, 4, 0.6, np.random.default_rng(3))
  assert y[0] == -1.0 and y[-1] == 3.0  # the range maps onto itself
  assert (np.diff(y) > 0).all()  # tissues keep their order
  slopes = np.diff(y) / np.diff(x)
  assert slopes.max() / slopes.min() > 1.2  # but not their contrast: not an affine map
  assert slopes.min() >= (1 - 0.6) / (1 + 0.6) - 1e-9 and slopes.max() <= (1 + 0.6) / (1 - 0.6)
  np.testing.assert_allclose(
      augment.intensity_curve(x, -1.0, 3.0, 4, 0.0, np.random.default_rng(3)), x, atol=1e-12)


def test_a_config_written_before_the_curve_augments_as_before():
  example = _cube_example()
  on = {f'augment.{n}_probability': 1.0 for n in augment.INTENSITY if n != 'curve'}
  config = tiny_config(**on)
  old = tiny_config(**on)
  del old.augment['curve_probability']
  a = augment.augment(example, config, np.random.default_rng(1), 2)
  b = augment.augment(example, old, np.random.default_rng(1), 2)
  np.testing.assert_array_equal(a['inputs'], b['inputs'])
  assert augment.probability(old.augment, 'curve') == 0.0


def test_bad_settings_are_refused():
  with pytest.raises(UserError, match='augment.curve_strength'):
    augment.validate(tiny_config(**{'augment.curve_probability': 0.5,
                                    'augment.curve_strength': 1.0}))
  with pytest.raises(UserError, match='augment.gamma_probability'):
    augment.validate(tiny_config(**{'augment.gamma_probability': 1.5}))
  with pytest.raises(UserError, match='data.crop_shape'):
    augment.validate(tiny_config(**{'augment.random_crop': True}))
  with pytest.raises(UserError, match='augment.blur_probability'):  # refused even when all is off
    pipeline.LoadTrainingExample(None, tiny_config(**{'augment.blur_probability': -0.5}), 0)


def _stream(cases, task, config, start=0, shard=(0, 1), batch=2):
  ds = pipeline.train_dataset(cases, task, batch, 2, seed=5, shard=shard, config=config)[start:]
  return [b for b in pipeline.to_iterator(ds, 0)]


def test_off_is_the_stream_as_read(tiny_dataset):
  cases = layouts.discover(tiny_dataset)
  config = tiny_config()
  task = pipeline.Task.from_config(config)
  for a, b in zip(_stream(cases, task, None), _stream(cases, task, config)):
    for key in a:
      np.testing.assert_array_equal(a[key], b[key])


def test_augmented_stream_resumes_and_shards_bit_identically(tiny_dataset):
  cases = layouts.discover(tiny_dataset)
  config = tiny_config(**SPATIAL_ON, **INTENSITY_ON, **{'augment.random_crop': True,
                                                        'data.crop_shape': (8, 8, 8)})
  task = pipeline.Task.from_config(config)
  whole = _stream(cases, task, config)
  assert whole[0]['inputs'].shape == (2, 8, 8, 8, 3)
  plain = _stream(cases, task, None)
  assert not np.array_equal(whole[0]['inputs'][..., :1], plain[0]['inputs'][:, :8, :8, :8, :1])
  resumed = _stream(cases, task, config, start=2)
  parts = [_stream(cases, task, config, shard=(i, 2)) for i in range(2)]
  for s, batch in enumerate(whole):
    for key in batch:
      if s >= 2:
        np.testing.assert_array_equal(resumed[s - 2][key], batch[key])
      joined = np.concatenate([parts[0][s][key], parts[1][s][key]])
      np.testing.assert_array_equal(joined, batch[key])


def test_preview_writes_a_row_per_example_as_read_and_augmented(tiny_dataset, tmp_path):
  from rsnet_jax import main  # pylint: disable=g-import-not-at-top
  from rsnet_jax.evaluation import report  # pylint: disable=g-import-not-at-top
  config = tiny_config(**SPATIAL_ON, **{'data.data_dir': tiny_dataset})
  task = pipeline.Task.from_config(config)
  splits = {'train': layouts.discover(tiny_dataset)[:2]}
  path = main.run_augment_preview(config, str(tmp_path), task, splits, num_examples=2)
  image = report.read_png(path)
  # 4 rows (2 examples as read and augmented) of 5 panels (3 inputs, target, labels), 100 dpi
  assert image.shape[:2] == (4 * 230, 5 * 220)
