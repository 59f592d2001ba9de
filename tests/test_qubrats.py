"""The QU-BraTS uncertainty score against hand-worked cases (thresholds 100, 97.5, ..., 0)."""

import numpy as np
import pytest

from rsnet_jax.evaluation import metrics
from rsnet_jax.inference import uncertainty

# 100 brain voxels; the region is 0..9 in truth, 2..11 predicted: TP 8, FP 2, FN 2, TN 88, Dice 0.8.
TRUTH = np.arange(100) < 10
PREDICTION = (np.arange(100) >= 2) & (np.arange(100) < 12)
BRAIN = np.ones(100, bool)
ERRORS = TRUTH != PREDICTION


def test_thresholds_are_the_challenges():
  t = metrics.qu_brats_thresholds()
  assert len(t) == 41 and t[0] == 100 and t[-1] == 0 and np.allclose(np.diff(t), -2.5)


def test_no_uncertainty_scores_the_dice_and_filters_nothing():
  r = metrics.qu_brats_region(TRUTH, PREDICTION, np.zeros(100), BRAIN)
  assert r['auc_dice'] == pytest.approx(0.8)
  assert r['auc_ftp'] == 0 and r['auc_ftn'] == 0
  assert r['score'] == pytest.approx((0.8 + 1 + 1) / 3)


def test_everything_uncertain_filters_everything_below_100():
  # Dice 0.8 at 100, then 1 (both masks empty); each ratio 0 at 100, then 1.
  r = metrics.qu_brats_region(TRUTH, PREDICTION, np.full(100, 100.0), BRAIN)
  assert r['auc_dice'] == pytest.approx((2.5 * 0.9 + 97.5) / 100)
  assert r['auc_ftp'] == pytest.approx((2.5 * 0.5 + 97.5) / 100)
  assert r['auc_ftn'] == pytest.approx(0.9875)
  assert r['score'] == pytest.approx((0.9975 + 0.0125 + 0.0125) / 3)


def test_uncertain_errors_only_is_rewarded():
  # 60 on the 4 wrong voxels: Dice 0.8 for thresholds 100..60, 1 from 57.5 down; nothing correct
  # is filtered.
  uncertainty = np.where(ERRORS, 60.0, 0.0)
  r = metrics.qu_brats_region(TRUTH, PREDICTION, uncertainty, BRAIN)
  assert r['auc_dice'] == pytest.approx((40 * 0.8 + 2.5 * 0.9 + 57.5) / 100)
  assert r['auc_ftp'] == 0 and r['auc_ftn'] == 0
  assert r['score'] == pytest.approx((0.9175 + 2) / 3)
  # The same uncertainty on correct voxels instead is penalised through the ratios.
  wrong = metrics.qu_brats_region(TRUTH, PREDICTION, np.where(ERRORS, 0.0, 60.0), BRAIN)
  assert wrong['score'] < r['score'] and wrong['auc_ftp'] > 0.5 and wrong['auc_ftn'] > 0.5


def test_empty_region_conventions():
  empty = np.zeros(100, bool)
  sure = metrics.qu_brats_region(empty, empty, np.zeros(100), BRAIN)
  assert sure == {'auc_dice': 1.0, 'auc_ftp': 0.0, 'auc_ftn': 0.0, 'score': 1.0}
  # Nothing to filter among true positives: the FTP ratio is 0; the true negatives are filtered.
  unsure = metrics.qu_brats_region(empty, empty, np.full(100, 100.0), BRAIN)
  assert unsure['auc_dice'] == 1.0 and unsure['auc_ftp'] == 0.0
  assert unsure['score'] == pytest.approx((1 + 1 + 0.0125) / 3)
  # Voxels outside the brain count for Dice, not for the TN ratio.
  outside = metrics.qu_brats_region(empty, empty, np.full(100, 100.0), np.zeros(100, bool))
  assert outside['auc_ftn'] == 0.0


def test_region_uncertainty_and_the_three_regions():
  probabilities = np.array([[1.0, 0, 0, 0], [0.5, 0.5, 0, 0], [0, 0.5, 0, 0.5], [0, 0, 1, 0]])
  assert uncertainty.region_uncertainty(probabilities, (1, 2, 3)) == pytest.approx([0, 100, 0, 0])
  assert uncertainty.region_uncertainty(probabilities, (1, 3)) == pytest.approx([0, 100, 0, 0])
  assert uncertainty.region_uncertainty(probabilities, (3,)) == pytest.approx([0, 0, 100, 0])
  truth = np.array([0, 1, 3, 2])
  maps = {name: uncertainty.region_uncertainty(probabilities, idx)
          for name, idx in metrics.REGIONS.items()}
  scores = metrics.qu_brats(truth, np.argmax(probabilities, -1), maps, np.ones(4, bool))
  assert set(scores) == {f'qu_{r}_{k}' for r in ('WT', 'TC', 'ET')
                         for k in ('auc_dice', 'auc_ftp', 'auc_ftn', 'score')}
  assert all(0 <= v <= 1 for v in scores.values())


def test_predict_writes_the_three_maps_under_the_challenges_names(tiny_dataset, tmp_path):
  import jax  # pylint: disable=g-import-not-at-top
  import nibabel as nib  # pylint: disable=g-import-not-at-top
  from rsnet_jax.data import layouts  # pylint: disable=g-import-not-at-top
  from rsnet_jax.data import pipeline  # pylint: disable=g-import-not-at-top
  from rsnet_jax.inference import predict  # pylint: disable=g-import-not-at-top
  from rsnet_jax.training import train  # pylint: disable=g-import-not-at-top
  from tests.conftest import tiny_config  # pylint: disable=g-import-not-at-top
  case = layouts.discover(tiny_dataset)[0]
  config = tiny_config(**{'predict.num_mc_samples': 2})
  task = pipeline.Task.from_config(config)
  state = train.create_train_state(config, task, jax.random.key(0))
  predict.predict_cases(config, state.params, state.apply_fn, task, [case], str(tmp_path),
                        jax.random.key(1))
  folder = tmp_path / case.case_id
  probabilities = nib.load(str(folder / f'{case.case_id}_seg_probabilities.nii.gz')).get_fdata()
  for region, word in uncertainty.QU_BRATS_FILES.items():
    img = nib.load(str(folder / f'{case.case_id}_unc_{word}.nii.gz'))
    assert img.get_data_dtype() == np.uint8
    expected = np.round(uncertainty.region_uncertainty(probabilities.astype(np.float32),
                                                       metrics.REGIONS[region]))
    np.testing.assert_array_equal(np.asarray(img.dataobj), expected.astype(np.uint8))
    assert 0 <= np.asarray(img.dataobj).max() <= 100
