"""Orientation round trips: every flip and axis permutation goes to LPS and back voxel-exactly."""

import itertools
import os

import nibabel as nib
import numpy as np
import pytest

from rsnet_jax.data import orientation

SPACING = np.array([1.0, 1.2, 1.5])


def _affines():
  """A diagonal LPS affine under all 48 axis permutations and flips."""
  for perm in itertools.permutations(range(3)):
    for signs in itertools.product((1, -1), repeat=3):
      affine = np.eye(4)
      affine[:3, :3] = 0
      for voxel_axis, world_axis in enumerate(perm):
        affine[world_axis, voxel_axis] = signs[voxel_axis] * SPACING[world_axis]
      affine[:3, 3] = [10.0, -20.0, 5.0]
      yield affine


@pytest.mark.parametrize('affine', list(_affines()))
def test_to_canonical_and_back_is_exact_and_keeps_world_positions(affine):
  rng = np.random.default_rng(0)
  volume = rng.normal(size=(4, 5, 6, 2)).astype(np.float32)  # with a trailing channel axis
  canonical = orientation.apply(volume, orientation.to_canonical(affine))
  new_affine = orientation.canonical_affine(affine, volume.shape)
  assert nib.aff2axcodes(new_affine) == orientation.CANONICAL
  np.testing.assert_array_equal(
      orientation.apply(canonical, orientation.from_canonical(affine)), volume)
  # The same voxel value sits at the same world point in both.
  index = np.array([1, 2, 3])
  world = affine @ np.append(index, 1)
  canonical_index = np.round(np.linalg.solve(new_affine, world)[:3]).astype(int)
  np.testing.assert_array_equal(canonical[tuple(canonical_index)], volume[tuple(index)])


def test_brats_orientation_is_left_untouched():
  affine = np.diag([-1.0, -1.0, 1.0, 1.0])
  volume = np.arange(24.0).reshape(2, 3, 4)
  np.testing.assert_array_equal(orientation.apply(volume, orientation.to_canonical(affine)), volume)


def test_predict_on_a_reoriented_case_gives_the_same_voxels_on_its_own_grid(tiny_dataset,
                                                                           tmp_path):
  import jax  # pylint: disable=g-import-not-at-top
  from rsnet_jax.inference import predict
  from rsnet_jax.training import train  # pylint: disable=g-import-not-at-top
  from rsnet_jax.data import layouts, pipeline  # pylint: disable=g-import-not-at-top
  from tests.conftest import tiny_config  # pylint: disable=g-import-not-at-top

  (case,) = layouts.discover(tiny_dataset)[:1]
  # The same case stored the way another pipeline might: axes permuted and flipped (A, R, I), as .nii.
  to_ari = nib.orientations.ornt_transform(nib.orientations.axcodes2ornt(orientation.CANONICAL),
                                           nib.orientations.axcodes2ornt(('A', 'R', 'I')))
  folder = tmp_path / 'ari' / case.case_id
  folder.mkdir(parents=True)
  for key, path in case.files.items():
    img = nib.load(path)
    data = np.asarray(img.dataobj)
    moved = nib.orientations.apply_orientation(data, to_ari)
    affine = img.affine @ nib.orientations.inv_ornt_aff(to_ari, data.shape)
    nib.save(nib.Nifti1Image(moved, affine), folder / os.path.basename(path).replace('.gz', ''))
  (ari_case,) = layouts.discover(str(folder))

  config = tiny_config()
  task = pipeline.Task.from_config(config)
  state = train.create_train_state(config, task, jax.random.key(0))
  outputs = {}
  for name, c in (('lps', case), ('ari', ari_case)):
    predict.predict_cases(config, state.params, state.apply_fn, task, [c], str(tmp_path / name),
                          jax.random.key(1))
    outputs[name] = nib.load(tmp_path / name / case.case_id / f'{case.case_id}_flair.nii.gz')
  source = nib.load(folder / f'{case.case_id}_t1.nii')
  assert outputs['ari'].shape == source.shape and nib.aff2axcodes(source.affine) == ('A', 'R', 'I')
  np.testing.assert_array_equal(outputs['ari'].affine, source.affine)
  back = nib.orientations.apply_orientation(np.asarray(outputs['ari'].dataobj),
                                            nib.orientations.ornt_transform(
                                                nib.orientations.axcodes2ornt(('A', 'R', 'I')),
                                                nib.orientations.axcodes2ornt(orientation.CANONICAL)))
  np.testing.assert_array_equal(back, np.asarray(outputs['lps'].dataobj))


def test_spacing_follows_the_axes_to_the_canonical_order():
  affine = np.array([[0, 0, -3.0, 0], [1.5, 0, 0, 0], [0, 2.0, 0, 0], [0, 0, 0, 1]])
  # File axis 0 runs along y (A/P), 1 along z (S), 2 along -x (L): canonical (L, P, S) = 3, 1.5, 2.
  assert orientation.spacing(affine) == (3.0, 1.5, 2.0)
  assert orientation.spacing(np.diag([-1.0, -1.0, 2.5, 1])) == (1.0, 1.0, 2.5)
