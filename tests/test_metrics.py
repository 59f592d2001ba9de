"""PSNR (eq. 6), global SSIM (eq. 5) and BraTS Dice, checked against values worked out by hand."""

import numpy as np

from rsnet_jax import metrics


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


def test_dice_brats_regions_and_empty_rule():
  truth = np.array([0, 1, 2, 3, 3, 0])
  pred = np.array([0, 1, 2, 2, 3, 3])
  d = metrics.brats_dice(truth, pred)
  np.testing.assert_allclose(d['WT'], 2 * 4 / (4 + 5))
  np.testing.assert_allclose(d['TC'], 2 * 2 / (3 + 3))
  np.testing.assert_allclose(d['ET'], 2 * 1 / (2 + 2))
  assert metrics.dice(np.zeros(3), np.zeros(3)) == 1.0
  assert metrics.dice(np.zeros(3), np.ones(3)) == 0.0
