"""Table I's baselines (REPLICA, LSDN, the 2D CNN): their features by hand, each fitted on tiny
cases well above the target's brain mean, saved and restored to the same outputs, and a baseline
through the command line (train, evaluate, predict)."""

import os
import subprocess
import sys

import jax
import numpy as np
import pytest

from configs import demo
from rsnet_jax.baselines import cnn2d
from rsnet_jax.baselines import features
from rsnet_jax.baselines import fitted
from rsnet_jax.data import layouts
from rsnet_jax.data import pipeline
from rsnet_jax.data import synthetic
from rsnet_jax.errors import UserError
from rsnet_jax.evaluation import metrics
from rsnet_jax.inference import predict

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _config(variant: str):
  """T1 -> T2 as Table I, tiny fits (seconds)."""
  c = demo.get_config()
  c.model.variant, c.model.num_levels = variant, 2
  c.data.target, c.data.inputs, c.data.normalization = 't2', ('t1',), 'brats2015'
  c.data.crop_shape = ()
  c.predict.num_mc_samples = 0
  c.baseline.replica.update(trees=5, samples_per_case=2000)
  c.baseline.lsdn.update(steps=1000, samples_per_case=2000)
  c.baseline.cnn2d.update(steps=400, features=8, latent=8)
  return c


@pytest.fixture(scope='module')
def cases(tmp_path_factory):
  out = tmp_path_factory.mktemp('baseline_data')
  synthetic.generate_dataset(str(out), 3, seed=7, layout='brats2021', shape=(24, 24, 20))
  return layouts.discover(str(out), layouts.from_config(_config('replica').data))


def _example(shape=(5, 6, 7), inputs=1):
  volume = np.arange(np.prod(shape) * inputs, dtype=np.float32).reshape(shape + (inputs,))
  brain = np.zeros(shape, np.float32)
  brain[1:4, 2:5, 1:6] = 1
  return {'inputs': volume, 'brain': brain, 'target': volume[..., :1] * 2}


def test_patches_read_each_inputs_cube_around_the_voxel_edge_clamped():
  example = _example(inputs=2)
  voxels = np.array([[2, 3, 3], [0, 0, 0]])
  p = features.patches(example, voxels, 3)
  assert p.shape == (2, 2 * 27)
  cube = example['inputs'][1:4, 2:5, 2:5, 1].reshape(-1)  # input 1, voxel (2, 3, 3)
  np.testing.assert_array_equal(p[0, 27:], cube)
  # the corner voxel: offsets below 0 read index 0
  np.testing.assert_array_equal(p[1, :27].reshape(3, 3, 3)[0, 0, 0], example['inputs'][0, 0, 0, 0])
  with pytest.raises(ValueError):
    features.patch_offsets(2)


def test_positions_span_the_brains_bounding_box_and_scatter_inverts_gather():
  example = _example()
  voxels = features.brain_voxels(example)
  pos = features.positions(example, voxels)
  np.testing.assert_array_equal(pos.min(0), [-1, -1, -1])
  np.testing.assert_array_equal(pos.max(0), [1, 1, 1])
  np.testing.assert_array_equal(pos[0], [-1, -1, -1])  # voxel (1, 2, 1), the box's first corner
  out = features.scatter(example, voxels, features.targets(example, voxels))
  np.testing.assert_array_equal(out, example['target'] * example['brain'][..., None])


def test_context_of_a_constant_brain_is_that_constant_inside_the_brain():
  example = _example()
  example['inputs'] = np.full_like(example['inputs'], 3.0)  # the background is 0 in real cases:
  example['inputs'][example['brain'] == 0] = 0.0  # normalised convolution ignores it
  ctx = features.context(example, features.brain_voxels(example))
  assert ctx.shape[1] == len(features.CONTEXT_SIGMAS) * 7
  np.testing.assert_allclose(ctx[:, 0], 3.0, rtol=1e-5)  # sigma 1, at the voxel


def test_slices_keep_the_axial_slices_with_brain():
  example = _example()
  s = cnn2d.slices(example)
  assert s['inputs'].shape == (5, 5, 6, 1)  # brain in z = 1..5 of 7; [S, D, H, M]
  np.testing.assert_array_equal(s['inputs'][0, ..., 0], example['inputs'][:, :, 1, 0])


@pytest.mark.parametrize('variant', ['replica', 'lsdn', 'cnn2d'])
def test_each_baseline_fits_well_above_the_brain_mean_and_restores_exactly(variant, cases,
                                                                           tmp_path):
  config = _config(variant)
  task = pipeline.Task.from_config(config)
  assert not task.segments
  model = fitted.train(config, str(tmp_path), {'train': cases})
  examples = fitted.load_examples(cases, task)
  gains = []
  for example in examples:
    brain = example['brain'] > 0
    real = example['target'][..., 0]
    synthesis = model(example)['synthesis']
    assert synthesis.shape == real.shape + (1,) and not synthesis[~brain].any()
    mean = np.where(brain, real[brain].mean(), 0.0)
    gains.append(metrics.psnr(real, synthesis[..., 0], brain) - metrics.psnr(real, mean, brain))
  # measured above the brain mean, per case: REPLICA 10.0-14.0 dB, LSDN 3.2-7.7, 2D CNN 7.1-12.4
  assert min(gains) > 2.0, gains
  restored = fitted.restore(config, str(tmp_path), task)
  np.testing.assert_array_equal(restored(examples[0])['synthesis'],
                                model(examples[0])['synthesis'])
  again = fitted.train(config, str(tmp_path), {'train': cases})  # a rerun reuses the fit
  np.testing.assert_array_equal(again(examples[0])['synthesis'], model(examples[0])['synthesis'])


def test_the_same_seed_fits_the_same_lsdn_and_another_seed_does_not(cases):
  config = _config('lsdn')
  config.baseline.lsdn.steps = 50
  task = pipeline.Task.from_config(config)

  def leaves(seed):
    config.seed = seed
    return jax.tree.leaves(fitted.fit(config, task, cases).state)

  a, b, c = leaves(0), leaves(0), leaves(1)
  assert all(np.array_equal(x, y) for x, y in zip(a, b))
  assert not all(np.array_equal(x, y) for x, y in zip(a, c))


def test_restore_without_a_fit_and_a_baseline_with_samples_are_refused(tmp_path):
  config = _config('lsdn')
  with pytest.raises(UserError, match='no fitted lsdn'):
    fitted.restore(config, str(tmp_path), pipeline.Task.from_config(config))
  config.predict.num_mc_samples = 4
  with pytest.raises(UserError, match='deterministic'):
    fitted.check(config)


@pytest.mark.slow
def test_a_baseline_trains_evaluates_and_predicts_through_the_command_line(cases, tmp_path):
  data_dir = os.path.dirname(cases[0].path('t1').rstrip(os.sep).rsplit(os.sep, 1)[0])
  flags = ['--config', 'configs/demo.py', '--config.model.variant=lsdn',
           '--config.data.target=t2', "--config.data.inputs=('t1',)",
           '--config.data.complementary=t1', '--config.data.crop_shape=()',
           '--config.model.num_levels=2', '--config.predict.num_mc_samples=0',
           '--config.baseline.lsdn.steps=20', f'--config.data.data_dir={data_dir}',
           '--config.data.val_fraction=0.34', '--config.data.test_fraction=0.0']
  workdir, out = tmp_path / 'w', tmp_path / 'out'
  env = dict(os.environ, JAX_PLATFORMS='cpu')
  run = lambda *args: subprocess.run([sys.executable, '-m', 'rsnet_jax.main', *flags,
                                      '--workdir', str(workdir), *args], cwd=REPO, env=env,
                                     capture_output=True, text=True, timeout=600)
  trained = run()
  assert trained.returncode == 0, trained.stderr[-3000:]
  assert 'evaluation on the val split (1 cases)' in trained.stdout
  assert (workdir / 'baseline' / 'lsdn.msgpack').exists()
  evaluated = run('--mode', 'evaluate')
  assert evaluated.returncode == 0, evaluated.stderr[-3000:]
  assert 'psnr_brain' in evaluated.stdout and (workdir / 'evaluation' / 'val.md').exists()
  predicted = run('--mode', 'predict', '--input', cases[0].path('t1').rsplit(os.sep, 1)[0],
                  '--output', str(out))
  assert predicted.returncode == 0, predicted.stderr[-3000:]
  case = cases[0].case_id
  assert sorted(os.listdir(out / case)) == [f'{case}_t2.nii.gz']  # the synthesis only
  refused = run('--mode', 'uncertainty')
  assert refused.returncode == 2 and 'deterministic' in refused.stderr


@pytest.mark.parametrize('variant', ['replica', 'lsdn', 'cnn2d'])
def test_each_baseline_takes_any_inputs_and_target(variant, cases, tmp_path):
  config = _config(variant)
  config.data.target, config.data.inputs = 'flair', ('t1', 't1ce', 't2')
  config.baseline.replica.trees = 2
  config.baseline.lsdn.steps = config.baseline.cnn2d.steps = 5
  task = pipeline.Task.from_config(config)
  model = fitted.train(config, str(tmp_path), {'train': cases[:1]})
  example = fitted.load_examples(cases[1:2], task)[0]
  assert example['inputs'].shape[-1] == 3
  synthesis = model(example)['synthesis']
  assert synthesis.shape == example['target'].shape and np.isfinite(synthesis).all()
  if variant == 'cnn2d':  # an encoder per input
    assert {f'encoder{m}' for m in range(3)} <= set(model.state['params'])


def test_a_baselines_outputs_say_what_made_them_without_a_network_width():
  config = _config('replica')
  text = predict.description(config, pipeline.Task.from_config(config), {'rsnet_jax': '0.1.0'})
  assert text == 'rsnet_jax 0.1.0 replica t2<-t1'
  config.model.variant = 'rnet'
  assert 'rnet k=4 t2<-t1' in predict.description(config, pipeline.Task.from_config(config),
                                                   {'rsnet_jax': '0.1.0'})
