"""One run per folder: a second run is refused, a lock whose holder is gone is taken over."""

import json
import os
import socket
import subprocess
import sys

import pytest

from rsnet_jax.errors import UserError
from rsnet_jax.runtime import workdir_lock

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _plant(directory, **holder):
  """A lock file as another run would have left it."""
  record = {'host': socket.gethostname(), 'pid': os.getpid(), 'started': 'then',
            'command': 'python -m rsnet_jax.main (the other run)', 'slurm_job_id': ''}
  record.update(holder)
  with open(directory / workdir_lock.LOCK_NAME, 'w') as f:
    json.dump(record, f)


def _dead_pid() -> int:
  process = subprocess.Popen([sys.executable, '-c', 'pass'])
  process.wait()
  return process.pid


def test_a_second_run_is_refused_and_the_lock_goes_with_the_first(tmp_path):
  with workdir_lock.hold(str(tmp_path)) as path:
    assert json.load(open(path))['pid'] == os.getpid()
    with pytest.raises(UserError, match=f'in use by another run \\(PID {os.getpid()} on '):
      with workdir_lock.hold(str(tmp_path)):
        pass
  assert not os.path.exists(path)
  with workdir_lock.hold(str(tmp_path)):  # free again
    pass


def test_a_dead_holder_on_this_host_is_taken_over(tmp_path, caplog):
  _plant(tmp_path, pid=_dead_pid())
  with workdir_lock.hold(str(tmp_path)) as path:
    assert json.load(open(path))['pid'] == os.getpid()
  assert 'is gone' in caplog.text


def test_another_host_is_honoured_unless_forced(tmp_path):
  _plant(tmp_path, host='node-17', pid=12345)
  with pytest.raises(UserError, match='node-17.*--force_unlock'):
    with workdir_lock.hold(str(tmp_path)):
      pass
  with workdir_lock.hold(str(tmp_path), force=True) as path:
    assert json.load(open(path))['host'] == socket.gethostname()


def test_a_requeued_slurm_job_takes_over_its_own_lock(tmp_path, monkeypatch):
  monkeypatch.setenv('SLURM_JOB_ID', '4242')
  _plant(tmp_path, host='node-3', pid=1, slurm_job_id='4242')
  with workdir_lock.hold(str(tmp_path)) as path:
    assert json.load(open(path))['slurm_job_id'] == '4242'
  _plant(tmp_path, host='node-3', pid=1, slurm_job_id='999')  # another job: honoured
  with pytest.raises(UserError, match='node-3'):
    with workdir_lock.hold(str(tmp_path)):
      pass


def test_an_unreadable_lock_counts_as_a_dead_holder(tmp_path):
  (tmp_path / workdir_lock.LOCK_NAME).write_text('{"host": "')  # torn while being written
  with workdir_lock.hold(str(tmp_path)) as path:
    assert json.load(open(path))['pid'] == os.getpid()


def test_the_command_line_refuses_a_busy_workdir_before_any_work(tmp_path):
  workdir = tmp_path / 'run'
  workdir.mkdir()
  _plant(workdir)  # held by this (live) test process
  result = subprocess.run(
      [sys.executable, '-m', 'rsnet_jax.main', '--config', 'configs/demo.py', '--workdir',
       str(workdir), '--mode', 'evaluate'], cwd=REPO, capture_output=True, text=True,
      env=dict(os.environ, JAX_PLATFORMS='cpu'), timeout=300)
  assert result.returncode == 2, result.stderr[-2000:]
  assert f'in use by another run (PID {os.getpid()} on {socket.gethostname()}' in result.stderr
  assert 'Traceback' not in result.stderr
  assert sorted(os.listdir(workdir)) == [workdir_lock.LOCK_NAME]  # nothing else written
