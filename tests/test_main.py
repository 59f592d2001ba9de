"""End to end through the command line: train, evaluate, predict, and the user-error exit code."""

import json
import os
import shutil
import subprocess
import sys

import nibabel as nib
import numpy as np
import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = ['--config.model.base_filters=2', '--config.model.num_levels=2',
        '--config.data.synthetic_cases=4', '--config.data.synthetic_shape=(18,16,13)',
        '--config.data.val_fraction=0.25', '--config.data.test_fraction=0.25',
        '--config.train.num_epochs=2', '--config.train.log_every_steps=1',
        '--config.train.eval_every_epochs=1', '--config.predict.num_mc_samples=2']


def _main(workdir, *args):
  cmd = [sys.executable, '-m', 'rsnet_jax.main', '--config', 'configs/demo.py',
         '--workdir', str(workdir), *TINY, *args]
  env = dict(os.environ, JAX_PLATFORMS='cpu', TF_CPP_MIN_LOG_LEVEL='3')
  return subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, env=env, timeout=900)


@pytest.mark.slow
def test_train_evaluate_predict_end_to_end(tmp_path):
  workdir = tmp_path / 'run'
  result = _main(workdir)
  assert result.returncode == 0, result.stderr[-3000:]
  # Checkpoints, TensorBoard logs, summary, montages, evaluation tables and predictions (the
  # 18x16x13 volumes run padded to 20x16x16 and come back on their own grid).
  assert os.listdir(workdir / 'checkpoints')
  assert any(n.startswith('events.out.tfevents') for n in os.listdir(workdir))
  assert 'total' in (workdir / 'model_summary.txt').read_text()
  assert os.listdir(workdir / 'montages')
  table = json.loads((workdir / 'evaluation' / 'test.json').read_text())
  row = next(iter(table['per_case'].values()))
  assert {'psnr_brain', 'ssim_brain', 'dice_WT', 'dice_TC', 'dice_ET'} <= set(row)
  assert 'mean +- std' in (workdir / 'evaluation' / 'test.md').read_text()
  assert 'manifest.json' in os.listdir(workdir / 'predictions')
  (case_id,) = [d for d in os.listdir(workdir / 'predictions') if d != 'manifest.json']
  out = workdir / 'predictions' / case_id
  source = nib.load(workdir / 'data' / case_id / f'{case_id}_t1.nii.gz')
  for name in (f'{case_id}_flair.nii.gz', f'{case_id}_seg.nii.gz',
               f'{case_id}_flair_variance.nii.gz', f'{case_id}_flair_std.nii.gz',
               f'{case_id}_seg_probabilities.nii.gz', f'{case_id}_seg_entropy.nii.gz',
               f'{case_id}_seg_mutual_information.nii.gz'):
    img = nib.load(out / name)
    assert img.shape[:3] == source.shape == (18, 16, 13)
    np.testing.assert_allclose(img.affine, source.affine)
  probabilities = nib.load(out / f'{case_id}_seg_probabilities.nii.gz').get_fdata()
  assert probabilities.shape == (18, 16, 13, 4)
  np.testing.assert_allclose(probabilities.sum(-1), 1.0, atol=1e-5)
  seg = np.asarray(nib.load(out / f'{case_id}_seg.nii.gz').dataobj)
  assert set(np.unique(seg)) <= {0, 1, 2, 4}
  variance = nib.load(out / f'{case_id}_flair_variance.nii.gz').get_fdata()
  assert (variance >= 0).all() and variance.max() > 0

  # Training again with more epochs resumes from the latest checkpoint (2 train cases x 2 epochs).
  result = _main(workdir, '--config.train.num_epochs=3')
  assert result.returncode == 0, result.stderr[-3000:]
  assert 'resumed from step 4' in result.stderr
  assert '6' in os.listdir(workdir / 'checkpoints')

  # Evaluate mode restores the best checkpoint and rewrites the tables.
  result = _main(workdir, '--mode=evaluate')
  assert result.returncode == 0, result.stderr[-3000:]
  assert 'evaluation on the test split' in result.stdout

  # The MC-dropout study on the test split: tables and figures.
  result = _main(workdir, '--mode=uncertainty', '--config.uncertainty.num_mc_samples=3')
  assert result.returncode == 0, result.stderr[-3000:]
  assert 'uncertainty study on the test split (1 cases, 3 MC samples)' in result.stdout
  assert {'test.md', 'test_overall.json', 'sparsification.png', 'reliability.png',
          f'fig3_{case_id}.png'} <= set(os.listdir(workdir / 'uncertainty'))

  # Predict mode on a folder with one good case (target missing) and one broken case.
  inputs = tmp_path / 'inputs'
  shutil.copytree(workdir / 'data' / case_id, inputs / case_id)
  os.remove(inputs / case_id / f'{case_id}_flair.nii.gz')  # the missing sequence
  os.remove(inputs / case_id / f'{case_id}_seg.nii.gz')
  broken = inputs / 'BraTS2021_99999'
  shutil.copytree(inputs / case_id, broken)
  for f in os.listdir(broken):
    os.rename(broken / f, broken / f.replace(case_id, 'BraTS2021_99999'))
  os.remove(broken / 'BraTS2021_99999_t2.nii.gz')
  result = _main(workdir, '--mode=predict', f'--input={inputs}', f'--output={tmp_path / "out"}')
  assert result.returncode == 2
  assert 'BraTS2021_99999_t2.nii.gz: missing t2 file' in result.stderr
  assert 'Traceback' not in result.stderr
  synth = nib.load(tmp_path / 'out' / case_id / f'{case_id}_flair.nii.gz')
  assert synth.shape == source.shape
  np.testing.assert_allclose(synth.affine, source.affine)


def test_user_error_is_one_line_and_exit_code_2(tmp_path):
  result = _main(tmp_path / 'w', '--mode=evaluate', f'--config.data.data_dir={tmp_path}/none')
  assert result.returncode == 2
  assert result.stderr.strip().splitlines()[-1] == f'rsnet_jax: error: {tmp_path}/none: data folder not found'
  assert 'Traceback' not in result.stderr


def test_verbose_shows_the_traceback_of_a_user_error(tmp_path):
  result = _main(tmp_path / 'w', '--mode=evaluate', f'--config.data.data_dir={tmp_path}/none',
                 '--verbose')
  assert result.returncode != 0
  assert 'Traceback' in result.stderr and 'data folder not found' in result.stderr
