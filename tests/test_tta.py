"""Test-time augmentation: views, pooling (law of total variance, entropy and MI), and predict."""

import jax
import nibabel as nib
import numpy as np
import pytest

from rsnet_jax.data import layouts
from rsnet_jax.data import pipeline
from rsnet_jax.errors import UserError
from rsnet_jax.inference import predict
from rsnet_jax.inference import tta
from rsnet_jax.training import train
from tests.conftest import tiny_config


def test_views():
  assert tta.views('none') == [()]
  assert tta.views('lr') == [(), (0,)]
  flips = tta.views('flips')
  assert len(flips) == 8 and flips[0] == () and len(set(flips)) == 8
  with pytest.raises(ValueError, match='predict.tta'):
    tta.views('rotations')


def test_an_equivariant_model_gets_its_own_prediction_and_no_spread():
  rng = np.random.default_rng(0)
  example = {'inputs': rng.random((4, 6, 8, 2)).astype(np.float32)}

  def pointwise(view, v):  # commutes with every mirror
    del v
    x = view['inputs']
    logits = np.stack([x[..., 0], x[..., 1]], -1)
    p = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    return {'synthesis': x[..., :1] * 2, 'probabilities': p.astype(np.float32)}

  single = pointwise(example, 0)
  pooled = tta.pooled(pointwise, example, 'flips')
  np.testing.assert_allclose(pooled['synthesis'], single['synthesis'], rtol=1e-6)
  np.testing.assert_allclose(pooled['probabilities'], single['probabilities'], rtol=1e-6)
  assert np.abs(pooled['synthesis_variance']).max() < 1e-10
  assert np.abs(pooled['mutual_information']).max() < 1e-6
  assert tta.pooled(pointwise, example, 'none') is not None


def test_pooling_is_the_law_of_total_variance_and_bald():
  example = {'inputs': np.zeros((2, 2, 2, 1), np.float32)}
  means, variances = [1.0, 3.0], [0.5, 1.5]
  probs = [np.array([0.9, 0.1]), np.array([0.5, 0.5])]
  mis = [0.01, 0.02]

  def view(_, v):  # constant volumes: mirroring back changes nothing
    entropy = -(probs[v] * np.log(probs[v])).sum()
    return {'synthesis': np.full((2, 2, 2, 1), means[v], np.float32),
            'synthesis_variance': np.full((2, 2, 2, 1), variances[v], np.float32),
            'probabilities': np.broadcast_to(probs[v], (2, 2, 2, 2)).astype(np.float32),
            'entropy': np.full((2, 2, 2), entropy, np.float32),
            'mutual_information': np.full((2, 2, 2), mis[v], np.float32)}

  out = tta.pooled(view, example, 'lr')
  assert out['synthesis'][0, 0, 0, 0] == pytest.approx(2.0)
  assert out['synthesis_variance'][0, 0, 0, 0] == pytest.approx(1.0 + 1.0)  # E var + var E
  p = np.array([0.7, 0.3])
  h = -(p * np.log(p)).sum()
  expected_sample_entropy = np.mean([-(q * np.log(q)).sum() - m for q, m in zip(probs, mis)])
  assert out['entropy'][0, 0, 0] == pytest.approx(h, rel=1e-5)
  assert out['mutual_information'][0, 0, 0] == pytest.approx(h - expected_sample_entropy, rel=1e-4)


def test_predict_with_tta_writes_the_uncertainty_files_reproducibly(tiny_dataset, tmp_path):
  case = layouts.discover(tiny_dataset)[0]
  outputs = {}
  for run, overrides in (('a', {'predict.num_mc_samples': 0, 'predict.tta': 'flips'}),
                         ('b', {'predict.num_mc_samples': 0, 'predict.tta': 'flips'}),
                         ('c', {'predict.num_mc_samples': 2, 'predict.tta': 'lr'}),
                         ('d', {'predict.num_mc_samples': 0, 'predict.tta': 'none'})):
    config = tiny_config(**overrides)
    task = pipeline.Task.from_config(config)
    state = train.create_train_state(config, task, jax.random.key(0))
    written = predict.predict_cases(config, state.params, state.apply_fn, task, [case],
                                    str(tmp_path / run), jax.random.key(1))
    outputs[run] = {p.split('/')[-1]: open(p, 'rb').read() for p in written}
  assert outputs['a'] == outputs['b']  # the same bits
  assert len(outputs['a']) == len(outputs['c']) == 10 and len(outputs['d']) == 2
  header = nib.load(str(tmp_path / 'a' / case.case_id / f'{case.case_id}_flair.nii.gz')).header
  assert b'TTA8' in header['descrip'].tobytes()
  variance = nib.load(str(tmp_path / 'a' / case.case_id /
                          f'{case.case_id}_flair_variance.nii.gz')).get_fdata()
  assert variance.max() > 0  # a random network is not mirror-equivariant
  with pytest.raises(UserError, match='predict.tta'):
    predict.tta_mode(tiny_config(**{'predict.tta': 'all'}))


def test_tta_of_a_mirror_symmetric_input_is_mirror_symmetric(tiny_dataset):
  config = tiny_config()
  task = pipeline.Task.from_config(config)
  example, _ = pipeline.load_case(layouts.discover(tiny_dataset)[0], task)
  symmetric = {k: (v + np.flip(v, 0)) / 2 if v.dtype.kind == 'f' else v for k, v in example.items()}
  symmetric['brain'] = np.maximum(example['brain'], np.flip(example['brain'], 0))
  state = train.create_train_state(config, task, jax.random.key(0))
  fn = jax.jit(lambda p, x, k: predict.forward_pass.forward(p, x, k, apply_fn=state.apply_fn,
                                                            num_mc_samples=0))
  plain = predict.predict_example(fn, state.params, symmetric)
  pooled = predict.predict_example(fn, state.params, symmetric, tta_mode='lr')
  for name in ('synthesis', 'probabilities'):
    np.testing.assert_allclose(pooled[name], np.flip(pooled[name], 0), rtol=1e-5, atol=1e-6)
  # Without TTA a random network is not symmetric: the test can tell.
  assert np.abs(plain['synthesis'] - np.flip(plain['synthesis'], 0)).max() > 1e-4
