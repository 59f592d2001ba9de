"""Long runs: start-up checks, stop signals, config guard on resume, divergence guard, and
bit-identical resume after SIGKILL and SIGTERM (subprocesses)."""

import os
import shutil
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import pytest

from rsnet_jax.data import pipeline
from rsnet_jax.errors import UserError
from rsnet_jax.runtime import resilience
from rsnet_jax.training import checkpoints
from rsnet_jax.training import train
from tests.conftest import TINY_PIN_FLAGS
from tests.conftest import run_config
from tests.conftest import tiny_config

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_unwritable_workdir_is_refused(tmp_path):
  (tmp_path / 'file').write_text('')
  with pytest.raises(UserError, match=r'file/run: workdir not writable'):
    resilience.check_workdir(str(tmp_path / 'file' / 'run'))


def test_too_little_disk_is_refused(tmp_path, monkeypatch):
  usage = shutil.disk_usage(tmp_path)
  monkeypatch.setattr(shutil, 'disk_usage', lambda _: usage._replace(free=5 * 2**20))
  resilience.check_free_disk(str(tmp_path), 1 * 2**20, 3.0)
  with pytest.raises(UserError, match=r'5.0 MiB free, a checkpoint needs about 2.0 MiB'):
    resilience.check_free_disk(str(tmp_path), 2 * 2**20, 3.0)


def test_checkpoint_bytes_counts_parameters_and_adam_moments():
  config = tiny_config()
  state = train.create_train_state(config, pipeline.Task.from_config(config), jax.random.key(0))
  n = sum(p.size for p in jax.tree.leaves(state.params))
  assert 3 * 4 * n <= train.checkpoint_bytes(config, pipeline.Task.from_config(config)) < 3 * 4 * n + 64


def test_stop_requests_records_signals_and_restores_handlers():
  before = signal.getsignal(signal.SIGTERM)
  with resilience.stop_requests() as stop:
    os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(0.01)
    assert stop == ['SIGTERM']
  assert signal.getsignal(signal.SIGTERM) is before


def test_config_differences_lists_what_matters_only():
  saved = resilience.config_record(tiny_config())
  harmless = tiny_config(**{'train.num_epochs': 9, 'train.log_every_steps': 7,
                            'predict.num_mc_samples': 5, 'data.worker_count': 2})
  assert resilience.config_differences(saved, harmless) == []
  changed = tiny_config(**{'model.base_filters': 3, 'data.target': 't2'})
  assert resilience.config_differences(saved, changed) == [
      'data.target: was "flair", now "t2"', 'model.base_filters: was 2, now 3']
  saved['model'].pop('dropout_rate')  # an option the resumed run did not have yet
  assert resilience.config_differences(saved, tiny_config()) == []


@pytest.mark.slow  # training runs: left out of the quick tier
def test_divergence_stops_with_step_and_case_or_skips(tiny_dataset, tmp_path):
  overrides = {'optim.learning_rate': 1e30, 'data.data_dir': tiny_dataset,
               'train.checkpoint_every_steps': 1}
  config = tiny_config(**overrides)
  with pytest.raises(resilience.Diverged,
                     match=r'non-finite loss or gradient at step 2 \(case BraTS2021_\d+\); '
                           r'stopped without saving it, the last good checkpoint is step 1'):
    train.train_and_evaluate(config, str(tmp_path / 'stop'))
  assert checkpoints.checkpoint_manager(str(tmp_path / 'stop'), config).latest_step() == 1
  config = tiny_config(**overrides, **{'train.nonfinite': 'skip'})
  state = train.train_and_evaluate(config, str(tmp_path / 'skip'))
  assert int(state.step) == 4
  assert all(np.isfinite(p).all() for p in jax.tree.leaves(state.params))


# Subprocess runs of `run_config`: 2 training cases x 4 epochs = 8 steps, a checkpoint every 2 steps.
RUN = [*TINY_PIN_FLAGS, '--config.model.base_filters=2',
       '--config.model.num_levels=2', '--config.data.synthetic_cases=4',
       '--config.data.synthetic_shape=(16,16,16)', '--config.data.val_fraction=0.25',
       '--config.data.test_fraction=0.25', '--config.train.num_epochs=4',
       '--config.train.log_every_steps=1', '--config.train.eval_every_epochs=4',
       '--config.train.checkpoint_every_steps=2', '--config.train.predict_test_cases=False']


def _start(workdir, data_dir, *extra, sbatch=False):
  """``python -m rsnet_jax.main ...``, or the SLURM script run by bash (no SLURM needed)."""
  if sbatch:
    cmd = ['bash', 'launch/slurm_train.sbatch', 'configs/demo.py', str(workdir), data_dir]
  else:
    cmd = [sys.executable, '-m', 'rsnet_jax.main', '--config', 'configs/demo.py',
           '--workdir', str(workdir), f'--config.data.data_dir={data_dir}']
  cmd += [*RUN, *extra]
  env = dict(os.environ, JAX_PLATFORMS='cpu', TF_CPP_MIN_LOG_LEVEL='3',
             PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ['PATH'])
  return subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True)


def _finish(proc):
  out, err = proc.communicate(timeout=900)
  return proc.returncode, out, err


def _wait_for_checkpoint(proc, workdir, step):
  path = workdir / 'checkpoints' / str(step)
  deadline = time.time() + 600
  while not path.exists():  # orbax renames a finished checkpoint's temporary folder onto this
    assert proc.poll() is None and time.time() < deadline, 'run ended before the checkpoint'
    time.sleep(0.05)


def _final_params(workdir):
  config = tiny_config()
  state = train.create_train_state(config, pipeline.Task.from_config(config), jax.random.key(0))
  state, step = checkpoints.restore_params(str(workdir), config, state, 'latest')
  assert step == 8
  return state.params


def _max_abs_difference(a, b):
  return max(float(np.max(np.abs(np.asarray(x) - np.asarray(y))))
             for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))


@pytest.mark.slow
def test_sigkill_and_sigterm_resume_bit_identically(tiny_dataset, straight_run, tmp_path):
  reference = _final_params(straight_run)

  # SIGKILL after the step-2 checkpoint: no chance to save; a leftover temporary checkpoint folder
  # (what a kill during a save leaves) must not be picked up.
  killed = tmp_path / 'killed'
  proc = _start(killed, tiny_dataset)
  _wait_for_checkpoint(proc, killed, 2)
  proc.send_signal(signal.SIGKILL)
  _finish(proc)
  (killed / 'checkpoints' / '6.orbax-checkpoint-tmp-1234567').mkdir(exist_ok=True)
  code, _, err = _finish(_start(killed, tiny_dataset))
  assert code == 0, err[-3000:]
  assert 'resumed from step' in err
  assert _max_abs_difference(_final_params(killed), reference) == 0.0

  # SIGTERM to the SLURM script (as --signal=B:TERM sends it): passed on to the training, whose
  # step finishes, a checkpoint is saved, exit status 75 with a one-line message.
  termed = tmp_path / 'termed'
  proc = _start(termed, tiny_dataset, sbatch=True)
  _wait_for_checkpoint(proc, termed, 2)
  proc.send_signal(signal.SIGTERM)
  code, _, err = _finish(proc)
  if code == 0:  # the signal came after the last step: nothing left to resume
    pytest.skip('SIGTERM arrived after training finished')
  assert code == resilience.EXIT_PREEMPTED, err[-3000:]
  assert 'rsnet_jax: stopped by SIGTERM at step' in err and 'Traceback' not in err
  code, _, err = _finish(_start(termed, tiny_dataset))
  assert code == 0, err[-3000:]
  assert _max_abs_difference(_final_params(termed), reference) == 0.0

  # Resuming with another network is refused, naming the key; the checkpoints stay as they were.
  changed = run_config(tiny_dataset, **{'model.base_filters': 3, 'train.num_epochs': 5})
  with pytest.raises(UserError) as refused:
    train.train_and_evaluate(changed, str(termed))
  assert refused.value.problems[1:] == ['  model.base_filters: was 2, now 3']
  assert _max_abs_difference(_final_params(termed), reference) == 0.0


def _tear(workdir, step):
  """Cuts the largest data file of checkpoint ``step`` to 100 bytes, as a node crash or a partial
  copy leaves it."""
  files = [p for p in (workdir / 'checkpoints' / str(step)).rglob('*')
           if p.is_file() and p.parent.name == 'd']
  with open(max(files, key=lambda p: p.stat().st_size), 'r+b') as f:
    f.truncate(100)


@pytest.mark.slow  # training runs: left out of the quick tier
def test_torn_checkpoint_is_moved_aside_and_the_one_before_is_used(tiny_dataset, straight_run,
                                                                   tmp_path):
  straight = tmp_path / 'straight'
  shutil.copytree(straight_run, straight)
  reference = _final_params(straight)

  # Resume: the latest checkpoint (6) is torn; training resumes from 4 and ends bit-identical.
  torn = tmp_path / 'torn'
  train.train_and_evaluate(run_config(tiny_dataset, **{'train.num_epochs': 3}), str(torn))
  _tear(torn, 6)
  train.train_and_evaluate(run_config(tiny_dataset), str(torn))
  assert (torn / 'checkpoints' / 'unreadable_6').is_dir()
  assert _max_abs_difference(_final_params(torn), reference) == 0.0

  # Evaluate / predict: the best checkpoint (8, the only one with a validation loss) is torn; the
  # newest of the others is used.
  config = tiny_config()
  state = train.create_train_state(config, pipeline.Task.from_config(config), jax.random.key(0))
  _tear(straight, 8)
  _, step = checkpoints.restore_params(str(straight), config, state, 'best')
  assert step == 6 and (straight / 'checkpoints' / 'unreadable_8').is_dir()

  # A config whose network differs restores nothing: refused, nothing moved aside.
  other = tiny_config(**{'model.base_filters': 3})
  state = train.create_train_state(other, pipeline.Task.from_config(other), jax.random.key(0))
  with pytest.raises(UserError, match=r'no checkpoint restores \(step 6: .*another config'):
    checkpoints.restore_params(str(straight), other, state, 'best')
  assert sorted(p.name for p in (straight / 'checkpoints').iterdir()) == ['4', '6', 'unreadable_8']
