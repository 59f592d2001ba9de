"""The MC-dropout study end to end on a tiny RS-Net: files, valid numbers, and stronger dropout
giving larger uncertainty on the same weights."""

import json
import os

import jax

from rsnet_jax import study
from rsnet_jax import train
from rsnet_jax.data import layouts
from rsnet_jax.data import pipeline
from tests.conftest import tiny_config


def _study(tiny_dataset, out_dir, dropout_rate):
  config = tiny_config(**{'model.dropout_rate': dropout_rate, 'uncertainty.num_mc_samples': 4,
                          'uncertainty.num_bins': 5})
  task = pipeline.Task.from_config(config)
  cases = layouts.discover(tiny_dataset)[:2]
  state = train.create_train_state(config, task, jax.random.key(0))
  return study.study_cases(config, state.params, state.apply_fn, task, cases, str(out_dir), 'test',
                           jax.random.key(1))


def test_study_writes_tables_figures_and_valid_numbers(tiny_dataset, tmp_path):
  result = _study(tiny_dataset, tmp_path, 0.3)
  names = set(os.listdir(tmp_path))
  assert {'test.md', 'test.json', 'test_overall.json', 'sparsification.png',
          'reliability.png'} <= names
  assert sum(n.startswith('fig3_') for n in names) == 2
  per_case = json.loads((tmp_path / 'test.json').read_text())['per_case']
  for row in per_case.values():
    assert -1 <= row['spearman_var_sqerr'] <= 1
    assert row['ause'] >= -1e-9 and 0 <= row['ece_brain'] <= 1
    assert row['variance_brain'] > 0 and row['mutual_information_brain'] >= 0
  overall = result['overall']
  assert sum(overall['reliability_bins']['count']) > 0
  assert overall['sparsification_mean']['curve'][0] == 1.0


def test_more_dropout_means_more_uncertainty(tiny_dataset, tmp_path):
  low = _study(tiny_dataset, tmp_path / 'low', 0.02)['summary']
  high = _study(tiny_dataset, tmp_path / 'high', 0.5)['summary']
  for name in ('variance_brain', 'mutual_information_brain'):
    assert high[name]['mean'] > 2 * low[name]['mean'], name
