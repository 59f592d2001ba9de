"""End to end through the command line: train, evaluate, predict, and the user-error exit code."""

import json
import os
import shutil
import subprocess
import sys

import nibabel as nib
import numpy as np
import pytest
from tensorboard.backend.event_processing import event_accumulator

from tests.conftest import TINY_PIN_FLAGS

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = [*TINY_PIN_FLAGS, '--config.model.base_filters=2', '--config.model.num_levels=2',
        '--config.data.synthetic_cases=4', '--config.data.synthetic_shape=(18,16,13)',
        '--config.data.val_fraction=0.25', '--config.data.test_fraction=0.25',
        '--config.train.num_epochs=2', '--config.train.log_every_steps=1',
        '--config.train.eval_every_epochs=1', '--config.predict.num_mc_samples=2']


def _main(workdir, *args):
  """Runs the command line with TensorFlow unimportable (whether or not it is installed)."""
  cmd = [sys.executable, '-m', 'rsnet_jax.main', '--config', 'configs/demo.py',
         '--workdir', str(workdir), *TINY, *args]
  no_tf = os.path.join(os.path.dirname(str(workdir)), 'no_tensorflow')
  os.makedirs(no_tf, exist_ok=True)
  with open(os.path.join(no_tf, 'tensorflow.py'), 'w') as f:
    f.write('raise ImportError("tensorflow is blocked by the test")\n')
  path = os.pathsep.join([no_tf, REPO] + [p for p in [os.environ.get('PYTHONPATH')] if p])
  env = dict(os.environ, JAX_PLATFORMS='cpu', TF_CPP_MIN_LOG_LEVEL='3', PYTHONPATH=path)
  return subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, env=env, timeout=900)


def _events(workdir) -> event_accumulator.EventAccumulator:
  events = event_accumulator.EventAccumulator(str(workdir), size_guidance={'images': 0,
                                                                           'tensors': 0})
  events.Reload()
  return events


@pytest.mark.slow
def test_train_evaluate_predict_end_to_end(tmp_path):
  workdir = tmp_path / 'run'
  result = _main(workdir)
  assert result.returncode == 0, result.stderr[-3000:]
  # Checkpoints, TensorBoard logs, summary, montages, evaluation tables and predictions (the
  # 18x16x13 volumes run padded to 20x16x16 and come back on their own grid).
  assert os.listdir(workdir / 'checkpoints')
  # TensorBoard's own reader finds the scalars (2 train cases x 2 epochs: steps 1..4), the montages
  # of the 2 evaluations, the config text and the hyper-parameters.
  events = _events(workdir)
  assert [e.step for e in events.Scalars('train_loss')] == [1, 2, 3, 4]
  assert [e.step for e in events.Scalars('val_loss')] == [2, 4]
  assert all(np.isfinite(e.value) for e in events.Scalars('train_wcce'))
  assert 'steps_per_sec' in events.Tags()['scalars']
  assert 'train_dice' not in events.Tags()['scalars']  # loss.lambda_dice = 0: no Dice term
  montages = events.Images('val_montage')
  assert [m.step for m in montages] == [2, 4] and montages[0].width > montages[0].height > 100
  assert 'target: flair' in events.Tensors('config')[0].tensor_proto.string_val[0].decode()
  assert events.PluginTagToContent('hparams')
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
               f'{case_id}_seg_mutual_information.nii.gz', f'{case_id}_unc_whole.nii.gz',
               f'{case_id}_unc_core.nii.gz', f'{case_id}_unc_enhance.nii.gz'):
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
  # It also traces its second step for the profiler.
  result = _main(workdir, '--config.train.num_epochs=3', '--config.train.profile_steps=1')
  assert result.returncode == 0, result.stderr[-3000:]
  assert 'resumed from step 4' in result.stderr
  assert '6' in os.listdir(workdir / 'checkpoints')
  traces = [n for _, _, names in os.walk(workdir / 'profile') for n in names]
  assert any(n.endswith('.xplane.pb') for n in traces), traces

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
