"""Faults beyond a clean kill: a full disk while checkpointing or writing predictions, predict
killed midway. Each must lose nothing beyond the work since the last complete file."""

import errno
import os
import signal
import subprocess
import sys
import time

import pytest

from rsnet_jax.runtime import files
from rsnet_jax.runtime import resilience
from tests.test_resilience import REPO
from tests.test_resilience import RUN
from tests.test_resilience import _final_params
from tests.test_resilience import _max_abs_difference

# Runs the command line with the N-th call of a writer failing as a full disk does: Orbax's
# checkpoint save, or nibabel's file write (which first leaves a partial file).
FULL_DISK_AT = '''
import errno, runpy, sys
import nibabel as nib
import orbax.checkpoint as ocp
what, n = sys.argv.pop(1), int(sys.argv.pop(1))
calls = [0]
def failing(write):
  def call(*args, **kwargs):
    calls[0] += 1
    if calls[0] == n:
      if what == 'nifti':
        open(args[1], 'wb').write(b'partial')
      raise OSError(errno.ENOSPC, 'No space left on device', str(args[1]))
    return write(*args, **kwargs)
  return call
if what == 'checkpoint':
  ocp.CheckpointManager.save = failing(ocp.CheckpointManager.save)
else:
  nib.save = failing(nib.save)
sys.argv[0] = 'rsnet_jax.main'
runpy.run_module('rsnet_jax.main', run_name='__main__')
'''


def _command(workdir, data_dir, *args, full_disk=None):
  cmd = [sys.executable, '-m', 'rsnet_jax.main']
  if full_disk:
    cmd = [sys.executable, '-c', FULL_DISK_AT, *full_disk]
  cmd += ['--config', 'configs/demo.py', '--workdir', str(workdir),
          f'--config.data.data_dir={data_dir}', *RUN, *args]
  env = dict(os.environ, JAX_PLATFORMS='cpu', TF_CPP_MIN_LOG_LEVEL='3')
  return cmd, env


def _run(*args, **kwargs):
  cmd, env = _command(*args, **kwargs)
  return subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, env=env, timeout=900)


def _volumes(folder):
  """``{relative path: bytes}`` of the NIfTI files under a final name under ``folder``."""
  return {os.path.relpath(os.path.join(d, f), folder): open(os.path.join(d, f), 'rb').read()
          for d, _, names in os.walk(folder) for f in names
          if f.endswith('.nii.gz') and not f.startswith(files.TEMPORARY_PREFIX)}


def _temporaries(folder):
  return [f for _, _, names in os.walk(folder) for f in names
          if f.startswith(files.TEMPORARY_PREFIX)]


def test_disk_full_is_found_through_wrapping_errors():
  try:
    try:
      raise OSError(errno.ENOSPC, 'No space left on device', '/ckpt/4/d/abc')
    except OSError as e:
      raise RuntimeError('checkpoint save failed') from e
  except RuntimeError as wrapped:
    assert resilience.disk_full(wrapped).filename == '/ckpt/4/d/abc'
  assert resilience.disk_full(ValueError('OUT_OF_RANGE: No space left on device')).errno == (
      errno.ENOSPC)
  assert resilience.disk_full(OSError(errno.EACCES, 'Permission denied')) is None


def test_atomic_write_leaves_the_old_file_whole_on_an_error(tmp_path):
  path = tmp_path / 'table.md'
  files.write_text(str(path), 'old\n')
  with pytest.raises(OSError):
    with files.atomic_write(str(path)) as f:
      f.write('new, half')
      raise OSError(errno.ENOSPC, 'No space left on device')
  assert path.read_text() == 'old\n' and os.listdir(tmp_path) == ['table.md']


@pytest.mark.slow
def test_full_disk_and_killed_predict_lose_nothing_complete(tiny_dataset, straight_run, tmp_path):
  # A full disk at the second checkpoint (step 4): one line, status 2, checkpoint 2 intact; the
  # same command, rerun with room, ends where a straight run ends.
  workdir = tmp_path / 'full'
  result = _run(workdir, tiny_dataset, full_disk=('checkpoint', '2'))
  assert result.returncode == 2, result.stderr[-3000:]
  assert 'rsnet_jax: error: disk full writing' in result.stderr
  assert 'Traceback' not in result.stderr
  assert sorted(os.listdir(workdir / 'checkpoints')) == ['2']
  result = _run(workdir, tiny_dataset)
  assert result.returncode == 0, result.stderr[-3000:]
  assert _max_abs_difference(_final_params(workdir), _final_params(straight_run)) == 0

  # Predictions of all four cases (10 files each), uninterrupted, as the reference.
  predict = ('--mode=predict', f'--input={tiny_dataset}')
  result = _run(workdir, tiny_dataset, *predict, f'--output={tmp_path / "reference"}')
  assert result.returncode == 0, result.stderr[-3000:]
  reference = _volumes(tmp_path / 'reference')
  assert len(reference) == 40

  # A full disk at the 10th file: one line, status 2, no partial or temporary file left; the
  # rerun completes the folder, byte for byte the reference.
  out = tmp_path / 'full_out'
  result = _run(workdir, tiny_dataset, *predict, f'--output={out}', full_disk=('nifti', '10'))
  assert result.returncode == 2, result.stderr[-3000:]
  assert 'rsnet_jax: error: disk full writing' in result.stderr
  written = _volumes(out)
  assert len(written) == 9 and all(reference[k] == v for k, v in written.items())
  assert not _temporaries(out)
  stale = out / sorted(written)[0].split(os.sep)[0] / f'{files.TEMPORARY_PREFIX}killed.nii.gz'
  stale.write_bytes(b'partial')  # as a writer killed mid-file leaves it
  result = _run(workdir, tiny_dataset, *predict, f'--output={out}')
  assert result.returncode == 0, result.stderr[-3000:]
  assert _volumes(out) == reference
  assert not _temporaries(out) and 'removed 1 partial file' in result.stderr

  # SIGKILL once the first files are written: every file under a final name is complete, and the
  # rerun completes the folder, byte for byte the reference.
  out = tmp_path / 'killed_out'
  cmd, env = _command(workdir, tiny_dataset, *predict, f'--output={out}')
  proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL)
  deadline = time.time() + 600
  while len(_volumes(out)) < 3 if out.exists() else True:
    assert proc.poll() is None and time.time() < deadline, 'predict ended before it was killed'
    time.sleep(0.02)
  proc.send_signal(signal.SIGKILL)
  proc.wait()
  written = _volumes(out)
  assert 3 <= len(written) < 40 and all(reference[k] == v for k, v in written.items())
  result = _run(workdir, tiny_dataset, *predict, f'--output={out}')
  assert result.returncode == 0, result.stderr[-3000:]
  assert _volumes(out) == reference
  assert not _temporaries(out)  # a partial file the kill left is cleared by the rerun



def test_remove_temporaries_takes_only_partial_files(tmp_path):
  (tmp_path / 'case').mkdir()
  files.write_text(str(tmp_path / 'case' / 'done.txt'), 'whole')
  partial = tmp_path / 'case' / f'{files.TEMPORARY_PREFIX}abc.nii.gz'
  partial.write_bytes(b'partial')
  assert files.remove_temporaries(str(tmp_path)) == [str(partial)]
  assert sorted(os.listdir(tmp_path / 'case')) == ['done.txt']
