"""Uncertainty-study measures on hand-worked and constructed cases."""

import numpy as np
import pytest

from rsnet_jax.evaluation import calibration


def test_sparsification_by_hand():
  error = np.array([4.0, 0.0, 0.0, 0.0])  # mean 1
  fractions = np.array([0.0, 0.25, 0.5, 0.75])
  perfect = calibration.sparsification(error, error, fractions)
  np.testing.assert_allclose(perfect['oracle'], [1, 0, 0, 0])
  np.testing.assert_allclose(perfect['curve'], perfect['oracle'])
  assert perfect['ause'] == 0.0
  # The large error has the lowest uncertainty: the zeros go first, the mean left grows.
  worst = calibration.sparsification(np.array([0.0, 1.0, 2.0, 3.0]), error, fractions)
  np.testing.assert_allclose(worst['curve'], [1, 4 / 3, 2, 4])
  np.testing.assert_allclose(worst['ause'], np.trapezoid([0, 4 / 3, 2, 4], fractions))


def test_sparsification_breaks_ties_in_expectation():
  # A constant uncertainty ranks nothing: the curve stays at 1 whatever the voxel order.
  error = np.array([0.0, 0.0, 8.0, 0.0, 0.0, 0.0, 0.0, 0.0])
  flat = calibration.sparsification(np.zeros(8), error, np.arange(8) / 8)
  np.testing.assert_allclose(flat['curve'], np.ones(8))
  assert flat['ause'] > 0


def test_informative_uncertainty_beats_random_uncertainty():
  rng = np.random.default_rng(0)
  squared_error = rng.gamma(0.5, size=20000)
  informative = squared_error * rng.lognormal(0, 0.3, size=squared_error.size)
  random = rng.uniform(size=squared_error.size)
  good = calibration.sparsification(informative, squared_error)
  bad = calibration.sparsification(random, squared_error)
  assert calibration.spearman(informative, squared_error) > 0.9
  assert abs(calibration.spearman(random, squared_error)) < 0.05
  assert good['ause'] < 0.3 * bad['ause']
  assert np.isnan(calibration.spearman(np.ones(5), np.arange(5.0)))


def test_reliability_bins_and_ece_by_hand():
  probabilities = np.array([[0.9, 0.1], [0.9, 0.1], [0.3, 0.7], [0.45, 0.55]])
  labels = np.array([0, 1, 1, 1])
  bins = calibration.reliability_bins(probabilities, labels, num_bins=2)
  # Bin [0, .5) is empty (top-class confidence >= .5); bin [.5, 1] holds all four.
  np.testing.assert_allclose(bins['count'], [0, 4])
  np.testing.assert_allclose(bins['confidence_sum'], [0, 0.9 + 0.9 + 0.7 + 0.55])
  np.testing.assert_allclose(bins['correct_sum'], [0, 3])
  ece = calibration.expected_calibration_error(bins)
  np.testing.assert_allclose(ece, abs(3 - 3.05) / 4)
  fine = calibration.reliability_bins(probabilities, labels, num_bins=10)
  # Bins 5 (.55), 7 (.7), 9 (.9, .9): |1 - .55| + |1 - .7| + |1 - 1.8| = .45 + .3 + .8
  np.testing.assert_allclose(calibration.expected_calibration_error(fine), 1.55 / 4)


@pytest.mark.parametrize('temperature,calibrated', [(1.0, True), (0.3, False)])
def test_ece_small_for_calibrated_large_for_overconfident(temperature, calibrated):
  rng = np.random.default_rng(1)
  logits = rng.normal(size=(50000, 4)) * 2
  p = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
  labels = (rng.uniform(size=(len(p), 1)) > p.cumsum(-1)).sum(-1)  # drawn from p
  sharp = np.exp(logits / temperature)
  sharp /= sharp.sum(-1, keepdims=True)
  ece = calibration.expected_calibration_error(calibration.reliability_bins(sharp, labels))
  assert (ece < 0.02) if calibrated else (ece > 0.1)


def test_region_means():
  values = np.arange(8.0).reshape(2, 2, 2)
  masks = {'all': np.ones_like(values, bool), 'none': np.zeros_like(values, bool)}
  out = calibration.region_means(values, masks)
  assert out['all'] == 3.5 and np.isnan(out['none'])
