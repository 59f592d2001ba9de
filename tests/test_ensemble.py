"""Deep ensembles (issue 31): K members stacked on a leading axis, trained by one vmapped step."""

import functools
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rsnet_jax.data import layouts
from rsnet_jax.data import pipeline
from rsnet_jax.errors import UserError
from rsnet_jax.inference import forward_pass
from rsnet_jax.model import losses
from rsnet_jax.training import checkpoints
from rsnet_jax.training import train
from tests.conftest import tiny_config

K = 3


def _setup(tiny_dataset, members):
  config = tiny_config(**{'model.ensemble_size': members})
  task = pipeline.Task.from_config(config)
  cases = layouts.discover(tiny_dataset)[:2]
  ratios = losses.class_frequency_ratios(pipeline.label_voxel_counts(cases, 4))
  batches = [jax.tree.map(lambda a: jnp.asarray(a)[None], pipeline.load_case(c, task)[0])
             for c in cases]
  step = jax.jit(functools.partial(train.train_step, config=config, class_ratios=ratios,
                                   steps_per_epoch=2))
  return config, task, batches, step


def _train(tiny_dataset, members, init_key, train_key, steps=3):
  config, task, batches, step = _setup(tiny_dataset, members)
  state = train.create_train_state(config, task, init_key, num_steps=steps)
  for i in range(steps):
    state, parts = step(state, batches[i % 2], train_key)
  return state, parts


def test_an_ensemble_equals_its_members_trained_apart(tiny_dataset):
  key, train_key = jax.random.key(0), jax.random.key(1)
  ensemble, parts = _train(tiny_dataset, K, key, train_key, steps=2)
  assert all(leaf.shape[0] == K for leaf in jax.tree.leaves(ensemble.params))
  assert np.isfinite(float(parts['loss']))
  init_keys = jax.random.split(key, K)
  flat = lambda tree: np.concatenate([np.ravel(x) for x in jax.tree.leaves(tree)])
  for k in range(K):
    alone, _ = _train(tiny_dataset, 1, init_keys[k], jax.random.fold_in(train_key, k), steps=2)
    member = flat(jax.tree.map(lambda a: a[k], ensemble.params))  # pylint: disable=cell-var-from-loop
    # The same to float32 round-off, which Adam (lr 2e-3) magnifies where a gradient is near its
    # eps: measured (2 steps) a mean difference of 1e-8 to 1e-6; with another member's dropout keys
    # it is ~1e-3 (checked below), as each parameter moves by about a step either way.
    assert np.abs(member - flat(alone.params)).mean() < 1e-5, k
  wrong, _ = _train(tiny_dataset, 1, init_keys[0], jax.random.fold_in(train_key, 1), steps=2)
  assert np.abs(flat(jax.tree.map(lambda a: a[0], ensemble.params)) - flat(wrong.params)).mean() > 5e-4
  # Members differ (their own initialisation), and the same seed gives the same bits.
  first = jax.tree.leaves(ensemble.params)[0]
  assert not np.allclose(first[0], first[1])
  again, _ = _train(tiny_dataset, K, key, train_key, steps=2)
  for a, b in zip(jax.tree.leaves(ensemble.params), jax.tree.leaves(again.params)):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_the_ensemble_prediction_pools_its_members(tiny_dataset):
  config, task, batches, _ = _setup(tiny_dataset, K)
  state = train.create_train_state(config, task, jax.random.key(0))
  batch = {k: v for k, v in batches[0].items() if k in ('inputs', 'complementary')}
  pooled = forward_pass.forward(state.params, batch, None, apply_fn=state.apply_fn,
                                num_mc_samples=0, members=K)
  singles = [forward_pass.forward(jax.tree.map(lambda a: a[k], state.params), batch, None,  # pylint: disable=cell-var-from-loop
                                  apply_fn=state.apply_fn, num_mc_samples=0) for k in range(K)]
  synthesis = np.stack([np.asarray(s['synthesis']) for s in singles])
  probabilities = np.stack([np.asarray(s['probabilities']) for s in singles])
  np.testing.assert_allclose(pooled['synthesis'], synthesis.mean(0), rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(pooled['synthesis_variance'], synthesis.var(0), rtol=1e-3, atol=1e-7)
  np.testing.assert_allclose(pooled['probabilities'], probabilities.mean(0), rtol=1e-5, atol=1e-6)
  p = probabilities.mean(0)
  entropy = -(p * np.log(p)).sum(-1)
  np.testing.assert_allclose(pooled['entropy'], entropy, rtol=1e-4, atol=1e-6)
  expected = np.mean([-(q * np.log(q)).sum(-1) for q in probabilities], 0)
  np.testing.assert_allclose(pooled['mutual_information'], np.maximum(entropy - expected, 0),
                             rtol=1e-3, atol=1e-6)
  # With MC dropout: member k's samples from fold_in(key, k), reproducible to the bit.
  keys = jax.random.key(5)[None]
  mc = [forward_pass.forward(state.params, batch, keys, apply_fn=state.apply_fn,
                             num_mc_samples=2, members=K) for _ in range(2)]
  for name in mc[0]:
    np.testing.assert_array_equal(np.asarray(mc[0][name]), np.asarray(mc[1][name]))
  assert float(jnp.mean(mc[0]['synthesis_variance'])) > float(jnp.mean(pooled['synthesis_variance']))


@pytest.mark.slow  # a training run
def test_one_checkpoint_holds_every_member_and_predict_pools_them(tiny_dataset, tmp_path):
  from rsnet_jax.inference import predict  # pylint: disable=g-import-not-at-top
  config = tiny_config(**{'model.ensemble_size': 2, 'data.data_dir': tiny_dataset})
  workdir = str(tmp_path / 'run')
  trained = train.train_and_evaluate(config, workdir)
  task = pipeline.Task.from_config(config)
  restored, _ = checkpoints.restore_params(workdir, config, train.abstract_train_state(config, task),
                                           'latest')
  for a, b in zip(jax.tree.leaves(restored.params), jax.tree.leaves(trained.params)):
    assert a.shape[0] == 2
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
  case = layouts.discover(tiny_dataset)[0]
  written = predict.predict_cases(config, restored.params, restored.apply_fn, task, [case],
                                  str(tmp_path / 'out'), jax.random.key(0))
  assert len(written) == 10  # variance, entropy, MI and QU-BraTS maps from the members alone
  with pytest.raises(UserError, match='ensemble_size'):
    forward_pass.ensemble_size(tiny_config(**{'model.ensemble_size': 0}))


@pytest.mark.slow  # two training runs in subprocesses
def test_ensemble_with_tta_on_two_devices_resumes_to_the_same_bits(tmp_path):
  """An ensemble of 2 with TTA and MC dropout, data-parallel over 2 CPU devices, trained straight
  and resumed from its first checkpoint: the same evaluation and the same predicted files."""
  import shutil  # pylint: disable=g-import-not-at-top
  import subprocess  # pylint: disable=g-import-not-at-top
  import sys  # pylint: disable=g-import-not-at-top
  from tests import test_main  # pylint: disable=g-import-not-at-top

  def run(workdir):
    cmd = [sys.executable, '-m', 'rsnet_jax.main', '--config', 'configs/demo.py', '--workdir',
           str(workdir), *test_main.TINY, *flags]
    env = dict(os.environ, JAX_PLATFORMS='cpu', TF_CPP_MIN_LOG_LEVEL='3',
               XLA_FLAGS='--xla_force_host_platform_device_count=2')
    return subprocess.run(cmd, cwd=test_main.REPO, capture_output=True, text=True, env=env,
                          timeout=900)

  flags = ['--config.model.ensemble_size=2', '--config.predict.tta=lr',
           '--config.train.checkpoint_every_steps=1', '--config.train.predict_test_cases=True']
  straight, resumed = tmp_path / 'straight', tmp_path / 'resumed'
  result = run(straight)
  assert result.returncode == 0, result.stderr[-3000:]
  assert 'devices: [CpuDevice(id=0), CpuDevice(id=1)]' in result.stderr
  shutil.copytree(straight, resumed)
  steps = sorted(int(s) for s in os.listdir(resumed / 'checkpoints') if s.isdigit())
  for step in steps[1:]:  # back to the first checkpoint, as a run killed after it would be
    shutil.rmtree(resumed / 'checkpoints' / str(step))
  shutil.rmtree(resumed / 'evaluation')
  shutil.rmtree(resumed / 'predictions')
  result = run(resumed)
  assert result.returncode == 0, result.stderr[-3000:]
  assert f'resumed from step {steps[0]}' in result.stderr
  assert (straight / 'evaluation' / 'test.json').read_text() == (
      resumed / 'evaluation' / 'test.json').read_text()
  written = sorted(p.relative_to(straight / 'predictions')
                   for p in (straight / 'predictions').rglob('*.nii.gz'))
  assert len(written) == 10
  for path in written:
    assert (straight / 'predictions' / path).read_bytes() == (
        resumed / 'predictions' / path).read_bytes(), path
