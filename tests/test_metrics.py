"""PSNR (eq. 6), global SSIM (eq. 5) and BraTS Dice, checked against values worked out by hand."""

import numpy as np
import pytest
from scipy import ndimage

from rsnet_jax.evaluation import metrics


def test_psnr_by_hand():
  truth = np.array([0.0, 2.0, 4.0, 0.0]).reshape(1, 2, 2)
  pred = np.array([0.0, 1.0, 4.0, 9.0]).reshape(1, 2, 2)
  mask = np.array([True, True, True, False]).reshape(1, 2, 2)
  # MAX = 4, MSE over mask = 1/3
  np.testing.assert_allclose(metrics.psnr(truth, pred, mask), 10 * np.log10(16 * 3))
  assert metrics.psnr(truth, truth, mask) == float('inf')


def test_ssim_global_identity_and_by_hand():
  rng = np.random.default_rng(0)
  x = rng.uniform(size=(4, 4, 4))
  mask = np.ones_like(x, bool)
  np.testing.assert_allclose(metrics.ssim_global(x, x, mask), 1.0)
  truth = np.array([0.0, 1.0]).reshape(1, 1, 2)
  pred = np.array([1.0, 0.0]).reshape(1, 1, 2)
  c1, c2 = 0.01**2, 0.03**2  # L = 1
  expected = (2 * 0.25 + c1) * (2 * -0.25 + c2) / ((0.25 + 0.25 + c1) * (0.25 + 0.25 + c2))
  np.testing.assert_allclose(metrics.ssim_global(truth, pred, np.ones((1, 1, 2), bool)), expected)


def test_ssim_of_signed_intensities_is_measured_from_the_truths_minimum():
  # zscore's volumes (mean 0) are scored as the same volumes shifted to start at 0, so that a
  # prediction's SSIM does not depend on where the normalisation put 0; non-negative ones as they
  # are.
  rng = np.random.default_rng(2)
  truth = rng.uniform(size=(12, 12, 12))
  truth[0, 0, 0] = 0.0
  pred = truth + rng.normal(0, 0.2, truth.shape)
  mask = np.ones(truth.shape, bool)
  mask[:2] = False
  mask[0, 0, 0] = True
  for ssim in (metrics.ssim_global, metrics.ssim_windowed):
    at_zero = ssim(truth, pred, mask)
    np.testing.assert_allclose(ssim(truth - 0.5, pred - 0.5, mask), at_zero, rtol=1e-9)
    assert ssim(truth + 0.5, pred + 0.5, mask) != pytest.approx(at_zero, rel=1e-6)  # not shifted


def test_dice_brats_regions_and_empty_rule():
  truth = np.array([0, 1, 2, 3, 3, 0])
  pred = np.array([0, 1, 2, 2, 3, 3])
  d = metrics.brats_dice(truth, pred)
  np.testing.assert_allclose(d['WT'], 2 * 4 / (4 + 5))
  np.testing.assert_allclose(d['TC'], 2 * 2 / (3 + 3))
  np.testing.assert_allclose(d['ET'], 2 * 1 / (2 + 2))
  assert metrics.dice(np.zeros(3), np.zeros(3)) == 1.0
  assert metrics.dice(np.zeros(3), np.ones(3)) == 0.0


def test_windowed_ssim_agrees_with_scikit_image():
  from skimage import metrics as skimage_metrics  # pylint: disable=g-import-not-at-top  (a test dependency)
  rng = np.random.default_rng(1)
  for shape in ((24, 20, 16), (13, 30, 12)):
    truth = rng.uniform(0, 3, size=shape)
    pred = truth + rng.normal(0, 0.4, size=shape)
    reference, full = skimage_metrics.structural_similarity(
        truth, pred, data_range=3.0, gaussian_weights=True, sigma=1.5,
        use_sample_covariance=False, full=True)
    np.testing.assert_allclose(metrics.ssim_map(truth, pred, 3.0), full, atol=1e-6)
    np.testing.assert_allclose(metrics.ssim_windowed(truth, pred, data_range=3.0), reference,
                               atol=1e-6)
  # Over a mask: the mean of the same map inside it; identical volumes give 1.
  mask = np.zeros(shape, bool)
  mask[3:9, 5:20, 2:10] = True
  np.testing.assert_allclose(metrics.ssim_windowed(truth, pred, mask, data_range=3.0),
                             full[mask].mean(), atol=1e-6)
  np.testing.assert_allclose(metrics.ssim_windowed(truth, truth, mask), 1.0)


def test_dice_both_label_conventions():
  truth21 = np.array([0, 1, 2, 4, 4, 0])
  pred21 = np.array([0, 1, 2, 2, 4, 4])
  d21 = metrics.brats_dice_labels(truth21, pred21, 'brats2021')
  to23 = np.array([0, 1, 2, 0, 3])
  d23 = metrics.brats_dice_labels(to23[truth21], to23[pred21], 'brats2023')
  assert d21 == d23
  np.testing.assert_allclose([d21['WT'], d21['TC'], d21['ET']],
                             [2 * 4 / (4 + 5), 2 * 2 / (3 + 3), 2 * 1 / (2 + 2)])
  # No enhancing tumour in truth or prediction: ET Dice 1 (the BraTS rule); in one only: 0.
  assert metrics.brats_dice_labels(np.array([0, 1]), np.array([0, 2]))['ET'] == 1.0
  assert metrics.brats_dice_labels(np.array([0, 4]), np.array([0, 2]))['ET'] == 0.0


def test_hd95_in_mm_by_hand():
  truth = np.zeros((10, 10, 10), bool)
  pred = np.zeros_like(truth)
  truth[2, 2, 2] = True
  pred[2, 2, 6] = True  # 4 voxels apart along z
  assert metrics.hd95(truth, pred, (1.0, 1.0, 2.5)) == pytest.approx(10.0)
  # A 3x3x3 cube and the same cube shifted 2 voxels along x (spacing 1.5 mm): surface voxels of each
  # are 0 mm (shared faces inside the overlap) or up to 2 voxels = 3 mm from the other's surface.
  truth[:] = False
  pred[:] = False
  truth[2:5, 2:5, 2:5] = True
  pred[4:7, 2:5, 2:5] = True
  d = metrics.hd95(truth, pred, (1.5, 1.0, 1.0))
  assert d == pytest.approx(3.0)
  assert metrics.hd95(truth, truth, (1, 1, 1)) == 0.0
  assert metrics.hd95(np.zeros_like(truth), np.zeros_like(truth), (1, 1, 1)) == 0.0
  assert metrics.hd95(truth, np.zeros_like(truth), (1, 1, 1)) == metrics.HD95_EMPTY_MM


def test_hd95_matches_a_brute_force_computation():
  rng = np.random.default_rng(4)
  truth = ndimage.binary_opening(rng.uniform(size=(14, 12, 10)) > 0.45)
  pred = ndimage.binary_opening(rng.uniform(size=(14, 12, 10)) > 0.5)
  spacing = np.array([1.0, 1.2, 3.0])

  def surface_points(m):
    return np.argwhere(m & ~ndimage.binary_erosion(m)) * spacing

  st, sp = surface_points(truth), surface_points(pred)
  dist = np.linalg.norm(st[:, None] - sp[None], axis=-1)
  expected = np.percentile(np.concatenate([dist.min(1), dist.min(0)]), 95)
  assert metrics.hd95(truth, pred, tuple(spacing)) == pytest.approx(expected)


def _lesions():
  """Truth: a 2-voxel speck (not counted), small (4 voxels), medium (27) and large (64) lesions.
  Prediction: touches the small one diagonally (18-neighbour), covers 2 of the medium's voxels,
  covers half the large one, plus a 3-voxel and a 2-voxel false candidate."""
  truth = np.zeros((30, 30, 30), bool)
  pred = np.zeros_like(truth)
  truth[1, 1, 1:3] = True  # 2 voxels: ignored
  truth[5, 5:7, 5:7] = True  # small, 4 voxels
  pred[6, 7, 5] = True  # diagonal in the (y, x) plane (18-connected): grown, covers (5, 6, 5) ...
  pred[6, 7, 6] = True  # ... and (5, 6, 6): 2 of 4 voxels, not > 50 %, < 3: missed
  truth[10:13, 10:13, 10:13] = True  # medium, 27 voxels
  pred[10, 10, 10:12] = True  # grown covers more than 3 voxels of it: detected
  truth[18:22, 18:22, 18:22] = True  # large, 64 voxels
  pred[18:20, 18:22, 18:22] = True  # detected
  pred[25, 25, 25:28] = True  # false candidate, 3 voxels
  pred[1, 25, 25:27] = True  # 2 voxels: too small to count
  return truth, pred


def test_lesion_detection_by_hand():
  truth, pred = _lesions()
  counts = metrics.lesion_detection(truth, pred)
  assert counts['small'] == {'tp': 0, 'fn': 1, 'fp': 1}
  assert counts['medium'] == {'tp': 1, 'fn': 0, 'fp': 0}
  assert counts['large'] == {'tp': 1, 'fn': 0, 'fp': 0}
  assert counts['all'] == {'tp': 2, 'fn': 1, 'fp': 1}
  assert metrics.rates(counts['all']) == (2 / 3, 1 / 3)
  # A voxel face-adjacent to the small lesion: its neighbourhood covers 3 more -> detected; a voxel
  # touching it only at a corner (26- but not 18-connected) would not count.
  corner_only = pred.copy()
  corner_only[4, 4, 4] = True
  assert metrics.lesion_detection(truth, corner_only)['small']['tp'] == 0
  pred[4, 5, 5] = True
  assert metrics.lesion_detection(truth, pred)['small']['tp'] == 1
  # Connectivity is 18, not 26: two voxels touching only at a corner are two lesions.
  corner = np.zeros((5, 5, 5), bool)
  corner[1, 1, 1] = corner[2, 2, 2] = True
  assert ndimage.label(corner, metrics.CONNECTIVITY_18)[1] == 2


def test_lesion_roc_and_tpr_at_fdr():
  truth, pred = _lesions()
  prob = np.where(pred, 0.9, 0.0)
  prob[25, 25, 25:28] = 0.5  # the false candidate is less certain
  curves = metrics.lesion_roc([truth], [prob], np.array([0.3, 0.7]))
  np.testing.assert_allclose(curves['all'], [[2 / 3, 1 / 3], [2 / 3, 0.0]])
  assert metrics.tpr_at_fdr(np.array([[0.9, 0.4], [0.6, 0.1], [0.3, 0.0]]), 0.2) == (
      pytest.approx(0.6 + (0.9 - 0.6) * (0.2 - 0.1) / (0.4 - 0.1)))
