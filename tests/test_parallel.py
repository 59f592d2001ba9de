"""Data parallelism: sharding helpers, per-process data shards, a sharded step equal to the
single-device step, and two jax.distributed processes on loopback equal to one process."""

import os
import socket
import subprocess
import sys

import numpy as np
import pytest

from rsnet_jax.data import layouts
from rsnet_jax.data import pipeline
from rsnet_jax.errors import UserError
from rsnet_jax.runtime import parallel
from tests.conftest import FAST_COMPILE, tiny_config

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_distributed_is_detected_from_the_environment():
  assert not parallel.wants_distributed('auto', None, {})
  assert not parallel.wants_distributed('auto', None, {'SLURM_NTASKS': '1'})
  assert parallel.wants_distributed('auto', None, {'SLURM_NTASKS': '4'})
  assert parallel.wants_distributed('auto', None, {'OMPI_COMM_WORLD_SIZE': '2'})
  assert parallel.wants_distributed('auto', '10.0.0.1:1234', {})
  assert parallel.wants_distributed('on', None, {})
  assert not parallel.wants_distributed('off', None, {'SLURM_NTASKS': '4'})
  with pytest.raises(UserError, match='auto, on or off'):
    parallel.wants_distributed('yes')


def test_learning_rate_scaling_rules():
  assert parallel.scaled_learning_rate(1e-3, 'none', 8, 1) == 1e-3
  assert parallel.scaled_learning_rate(1e-3, 'linear', 8, 2) == pytest.approx(4e-3)
  assert parallel.scaled_learning_rate(1e-3, 'sqrt', 8, 2) == pytest.approx(2e-3)
  with pytest.raises(UserError, match='optim.lr_scaling'):
    parallel.scaled_learning_rate(1e-3, 'cubic', 8, 1)


def test_process_shards_make_up_the_global_batch(tiny_dataset):
  task = pipeline.Task.from_config(tiny_config())
  cases = layouts.discover(tiny_dataset)
  whole = pipeline.train_dataset(cases, task, 2, 2, seed=3)
  parts = [pipeline.train_dataset(cases, task, 2, 2, seed=3, shard=(i, 2)) for i in range(2)]
  assert len(whole) == len(parts[0]) == len(parts[1]) == 4
  for step in (0, 3):  # also what a resumed run (dataset[step:]) reads first
    for name, value in whole[step].items():
      np.testing.assert_array_equal(
          value, np.concatenate([parts[0][step:][0][name], parts[1][step:][0][name]]))
  with pytest.raises(UserError, match='does not split over 3 processes'):
    pipeline.train_dataset(cases, task, 2, 1, seed=0, shard=(0, 3))


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(('127.0.0.1', 0))
    return s.getsockname()[1]


def _worker(out, data_dir, workdir, per_device, *distributed, devices=1):
  env = dict(os.environ, JAX_PLATFORMS='cpu', TF_CPP_MIN_LOG_LEVEL='3',
             XLA_FLAGS=f'--xla_force_host_platform_device_count={devices} {FAST_COMPILE}')
  args = [sys.executable, '-m', 'tests.parallel_worker', str(out), data_dir, str(workdir),
          str(per_device), *map(str, distributed)]
  return subprocess.Popen(args, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True)


def _flat(path):
  with np.load(path) as f:
    return {k: f[k] for k in f.files}


@pytest.mark.slow
def test_sharded_step_and_two_processes_equal_one_process(tiny_dataset, tmp_path):
  # One process with 2 CPU devices: a sharded step vs the single-device step, then 2 epochs with
  # the global batch 2 split over the devices. Beside it, 2 processes of 1 device each joined by
  # jax.distributed on loopback, global batch 2, sharing one workdir (collective Orbax checkpoints).
  one, two = tmp_path / 'one', tmp_path / 'two'
  one.mkdir(), two.mkdir()
  address = f'127.0.0.1:{_free_port()}'
  procs = [_worker(one, tiny_dataset, tmp_path / 'w_one', 1, devices=2)]
  procs += [_worker(two, tiny_dataset, tmp_path / 'w_two', 1, address, 2, i) for i in range(2)]
  for p in procs:
    output, _ = p.communicate(timeout=600)
    assert p.returncode == 0, output[-3000:]

  step = _flat(one / 'step.npz')
  names = [k[len('single'):] for k in step if k.startswith('single')]
  for name in names:
    np.testing.assert_allclose(step['sharded' + name], step['single' + name], rtol=1e-4, atol=1e-5)

  single, p0, p1 = (_flat(one / 'params_0.npz'), _flat(two / 'params_0.npz'),
                    _flat(two / 'params_1.npz'))
  assert single.keys() == p0.keys() == p1.keys() and len(p0) > 10
  for name in p0:
    np.testing.assert_array_equal(p0[name], p1[name])  # the processes agree bit for bit
    np.testing.assert_allclose(p0[name], single[name], rtol=1e-4, atol=5e-5)
  assert sorted(os.listdir(tmp_path / 'w_two' / 'checkpoints')) == ['2']  # one evaluation, at the end
  assert os.path.exists(tmp_path / 'w_two' / 'model_summary.txt')  # written by process 0 only
