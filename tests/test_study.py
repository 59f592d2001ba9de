"""The MC-dropout study end to end on a tiny RS-Net: files, valid numbers, and stronger dropout
giving larger uncertainty on the same weights."""

import hashlib
import json
import os

import jax
import nibabel as nib
import numpy as np
import orbax.checkpoint as ocp

from rsnet_jax.data import layouts
from rsnet_jax.data import pipeline
from rsnet_jax.evaluation import report
from rsnet_jax.experiments import uncertainty_study
from rsnet_jax.inference import predict
from rsnet_jax.runtime import resilience
from rsnet_jax.training import checkpoints
from rsnet_jax.training import train
from tests.conftest import tiny_config


def _study(tiny_dataset, out_dir, dropout_rate):
  config = tiny_config(**{'model.dropout_rate': dropout_rate, 'uncertainty.num_mc_samples': 4,
                          'uncertainty.num_bins': 5})
  task = pipeline.Task.from_config(config)
  cases = layouts.discover(tiny_dataset)[:2]
  state = train.create_train_state(config, task, jax.random.key(0))
  return uncertainty_study.study_cases(config, state.params, state.apply_fn, task, cases,
                                       str(out_dir), 'test', jax.random.key(1))


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


def test_predicted_files_are_byte_identical_across_runs_and_agree_across_chunk_sizes(tiny_dataset, tmp_path):
  cases = layouts.discover(tiny_dataset)[:1]
  outputs = {}
  for run, chunk in (('a', 2), ('b', 2), ('c', 4)):
    config = tiny_config(**{'predict.num_mc_samples': 4, 'predict.mc_chunk_size': chunk})
    task = pipeline.Task.from_config(config)
    state = train.create_train_state(config, task, jax.random.key(0))
    written = predict.predict_cases(config, state.params, state.apply_fn, task, cases,
                                    str(tmp_path / run), jax.random.key(3))
    outputs[run] = {os.path.relpath(p, tmp_path / run): open(p, 'rb').read() for p in written}
  # synthesis, variance, std, labels, probabilities, entropy, MI and QU-BraTS's three maps
  assert len(outputs['a']) == 10
  assert outputs['a'] == outputs['b']
  assert outputs['a'].keys() == outputs['c'].keys()
  for name in outputs['a']:  # chunks of 4: the same samples to float32 round-off
    if name.endswith('.nii.gz') and not name.endswith('_seg.nii.gz'):
      a, c = (np.asarray(nib.load(str(tmp_path / r / name)).dataobj) for r in 'ac')
      if '_unc_' in name:  # 0-100 in uint8: round-off may flip a rounding
        np.testing.assert_allclose(c.astype(int), a.astype(int), atol=1, err_msg=name)
      else:
        np.testing.assert_allclose(c, a, rtol=1e-4, atol=1e-6, err_msg=name)

  # A rerun skips the done case; manifest.json keeps both runs, with inputs' and outputs' SHA-256.
  assert predict.predict_cases(config, state.params, state.apply_fn, task, cases,
                               str(tmp_path / 'c'), jax.random.key(3)) == []
  runs = json.loads((tmp_path / 'c' / 'manifest.json').read_text())['runs']
  assert [r['skipped'] for r in runs] == [[], [cases[0].case_id]]
  first = runs[0]['cases'][cases[0].case_id]
  # The files read: the three inputs (the target and segmentation present in the folder are not).
  assert set(first['inputs']) == {cases[0].files[k] for k in task.inputs}
  for path, digest in first['inputs'].items():
    assert digest == hashlib.sha256(open(path, 'rb').read()).hexdigest()
  assert {os.path.relpath(p, tmp_path / 'c') for p in first['outputs']} == set(outputs['c'])
  assert runs[0]['seed'] == config.seed and runs[0]['config']['predict']['mc_chunk_size'] == 4


def test_fig3_gets_a_column_per_model(tiny_dataset, tmp_path):
  # A T2 model's workdir as training leaves it: config.json and a checkpoint.
  t2_config = tiny_config(**{'data.target': 't2'})
  t2_task = pipeline.Task.from_config(t2_config)
  state = train.create_train_state(t2_config, t2_task, jax.random.key(5))
  workdir = tmp_path / 't2_model'
  workdir.mkdir()
  (workdir / 'config.json').write_text(json.dumps(resilience.config_record(t2_config)))
  checkpoints.checkpoint_manager(str(workdir), t2_config).save(
      1, args=ocp.args.Composite(state=ocp.args.StandardSave(state)))

  config = tiny_config(**{'uncertainty.num_mc_samples': 2,
                          'uncertainty.other_models': (str(workdir),)})
  task = pipeline.Task.from_config(config)
  flair = train.create_train_state(config, task, jax.random.key(0))
  cases = layouts.discover(tiny_dataset)[:1]
  uncertainty_study.study_cases(config, flair.params, flair.apply_fn, task, cases, str(tmp_path),
                                'test', jax.random.key(1))
  figure = report.read_png(str(tmp_path / f'fig3_{cases[0].case_id}.png'))
  assert figure.shape[:2] == (800, 2 * 280)  # 3 rows; T2 and FLAIR columns of 2.8 in at 100 dpi
