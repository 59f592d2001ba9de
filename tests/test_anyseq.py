"""The any-missing-sequence model: masking, the per-step draw, resuming, predicting a mixed folder."""

import os
import shutil
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rsnet_jax.data import anyseq
from rsnet_jax.data import layouts
from rsnet_jax.data import pipeline
from rsnet_jax.data import synthetic
from rsnet_jax.errors import UserError
from rsnet_jax.training import checkpoints
from rsnet_jax.training import train
from tests.conftest import TINY_PIN_FLAGS
from tests.conftest import TINY_SHAPE
from tests.conftest import tiny_config
from tests.test_resilience import REPO
from tests.test_resilience import _max_abs_difference

MODALITIES = ('t1', 't1ce', 't2', 'flair')


def test_complementary_inputs_are_the_papers():
  assert [MODALITIES[i] for i in anyseq.complementary_indices(MODALITIES)] == [
      't1ce', 't1', 'flair', 't2']


def test_mask_zeroes_the_missing_sequence_and_says_which_is_missing():
  x = jax.random.uniform(jax.random.key(0), (3, 4, 4, 4, 4)) + 1.0
  missing = jnp.array([0, 3, 2])
  out = anyseq.mask({'inputs': x, 'labels': 7}, missing, anyseq.complementary_indices(MODALITIES))
  assert out['inputs'].shape == (3, 4, 4, 4, 8) and out['labels'] == 7
  for b, m in enumerate(missing.tolist()):
    available = np.ones(4)
    available[m] = 0
    np.testing.assert_array_equal(out['inputs'][b, ..., :4], x[b] * available)
    np.testing.assert_array_equal(out['inputs'][b, ..., 4:], np.broadcast_to(available, x[b].shape))
    np.testing.assert_array_equal(out['target'][b, ..., 0], x[b, ..., m])
    comp = MODALITIES.index({'t1': 't1ce', 't1ce': 't1', 't2': 'flair', 'flair': 't2'}[
        MODALITIES[m]])
    np.testing.assert_array_equal(out['complementary'][b, ..., 0], x[b, ..., comp])


def test_draw_depends_on_the_step_key_alone_and_follows_the_probabilities():
  key = jax.random.key(3)
  uniform = anyseq.missing_probabilities(tiny_config(), 4)
  draws = [anyseq.draw_missing(jax.random.fold_in(key, s), 64, uniform) for s in range(3)]
  np.testing.assert_array_equal(draws[1], anyseq.draw_missing(jax.random.fold_in(key, 1), 64,
                                                              uniform))
  assert not np.array_equal(draws[0], draws[1])
  assert set(np.concatenate(draws).tolist()) == {0, 1, 2, 3}
  only_t2 = anyseq.missing_probabilities(
      tiny_config(**{'data.missing_probabilities': (0, 0, 1, 0)}), 4)
  assert set(anyseq.draw_missing(key, 64, only_t2).tolist()) == {2}
  with pytest.raises(UserError, match=r'data.missing_probabilities \(0.5, 0.2\): give 4'):
    anyseq.missing_probabilities(tiny_config(**{'data.missing_probabilities': (0.5, 0.2)}), 4)


def test_missing_sequence_of_a_case_and_refusal_of_two(tmp_path):
  synthetic.generate_dataset(str(tmp_path), 6, seed=3, layout='brats2023', shape=(12, 12, 12),
                             drop_one_sequence=True)
  cases = layouts.discover(str(tmp_path))
  missing = [anyseq.missing_in(c, MODALITIES) for c in cases]
  assert all(m is not None for m in missing) and len(set(missing)) > 1
  assert all(len(c.files) == 4 and 'seg' in c.files for c in cases)  # 3 sequences and seg
  os.remove(cases[0].path(next(m for m in MODALITIES if m != missing[0])))
  valid, problems = anyseq.validate_cases(layouts.discover(str(tmp_path)), MODALITIES)
  assert [c.case_id for c in valid] == [c.case_id for c in cases[1:]]
  assert len(problems) == 1 and f'case {cases[0].case_id} lacks 2 sequences' in problems[0]


def test_a_case_without_a_sequence_is_the_full_case_with_it_masked(tiny_dataset):
  config = tiny_config(**{'model.variant': 'anyseq'})
  task = pipeline.Task.from_config(config)
  assert task.inputs == MODALITIES and task.in_channels == 8 and task.has_complementary
  case = layouts.discover(tiny_dataset)[0]
  full, _ = pipeline.load_case(case, task)
  example, _ = anyseq.load_case(case, task, 'flair')
  masked = anyseq.mask({'inputs': full['inputs'][None]}, jnp.array([3]),
                       anyseq.complementary_indices(MODALITIES))
  # the brain mask (and so the normalisation) comes from the present sequences; on synthetic
  # cases every sequence is non-zero on the same brain
  np.testing.assert_array_equal(example['brain'], full['brain'])
  np.testing.assert_allclose(example['inputs'], masked['inputs'][0], atol=1e-6)
  np.testing.assert_allclose(example['target'], masked['target'][0], atol=1e-6)
  np.testing.assert_allclose(example['complementary'], masked['complementary'][0], atol=1e-6)


def _anyseq_config(data_dir, **overrides):
  return tiny_config(**{'model.variant': 'anyseq', 'data.data_dir': data_dir,
                        'train.checkpoint_every_steps': 1, **overrides})


def _latest_params(workdir, config):
  state = train.create_train_state(config, pipeline.Task.from_config(config), jax.random.key(0))
  return checkpoints.restore_params(str(workdir), config, state, 'latest')[0].params


@pytest.mark.slow  # training runs and a subprocess
def test_anyseq_trains_resumes_bit_identically_and_predicts_a_mixed_folder(tiny_dataset, tmp_path):
  straight = tmp_path / 'straight'
  train.train_and_evaluate(_anyseq_config(tiny_dataset), str(straight))
  resumed = tmp_path / 'resumed'  # one epoch, then the same run continued to two
  train.train_and_evaluate(_anyseq_config(tiny_dataset, **{'train.num_epochs': 1}), str(resumed))
  state = train.train_and_evaluate(_anyseq_config(tiny_dataset), str(resumed))
  assert int(state.step) == 4
  config = _anyseq_config(tiny_dataset)
  assert _max_abs_difference(_latest_params(resumed, config), _latest_params(straight, config)) == 0
  assert os.listdir(straight / 'montages')

  # A BraSyn-like folder: each case lacks one sequence; add a case lacking two and a complete one.
  data = tmp_path / 'brasyn'
  synthetic.generate_dataset(str(data), 4, seed=11, layout='brats2023', shape=TINY_SHAPE,
                             drop_one_sequence=True)
  cases = layouts.discover(str(data))
  missing = {c.case_id: anyseq.missing_in(c, MODALITIES) for c in cases}
  two_missing = cases[0]
  os.remove(two_missing.path(next(m for m in MODALITIES if m != missing[two_missing.case_id])))
  complete = data / 'BraTS-GLI-00099-000'
  synthetic.write_case(synthetic.generate_case(99, TINY_SHAPE), str(complete), complete.name,
                       'brats2023')
  out = tmp_path / 'out'
  cmd = [sys.executable, '-m', 'rsnet_jax.main', '--config', 'configs/demo.py', '--workdir',
         str(straight), f'--config.data.data_dir={tiny_dataset}', *TINY_PIN_FLAGS,
         '--config.model.base_filters=2', '--config.model.num_levels=2',
         '--config.model.variant=anyseq', '--config.predict.num_mc_samples=2',
         '--config.predict.checkpoint=latest', '--mode=predict', f'--input={data}',
         f'--output={out}']
  result = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=900,
                          env=dict(os.environ, JAX_PLATFORMS='cpu'))
  assert result.returncode == 2, result.stderr[-3000:]
  assert f'case {two_missing.case_id} lacks 2 sequences' in result.stderr
  assert '1 of 5 cases not predicted' in result.stderr
  assert not (out / two_missing.case_id).exists()
  names = {'t1': 't1n', 't1ce': 't1c', 't2': 't2w', 'flair': 't2f'}
  for case in cases[1:]:
    m = names[missing[case.case_id]]
    qu_brats = [f'{case.case_id}_unc_{r}.nii.gz' for r in ('whole', 'core', 'enhance')]
    assert sorted(os.listdir(out / case.case_id)) == sorted(
        [f'{case.case_id}-{s}' for s in (f'{m}.nii.gz', f'{m}_variance.nii.gz', f'{m}_std.nii.gz',
                                         'seg.nii.gz', 'seg_probabilities.nii.gz',
                                         'seg_entropy.nii.gz', 'seg_mutual_information.nii.gz')]
        + qu_brats)
  assert sorted(os.listdir(out / complete.name)) == sorted(
      [f'{complete.name}-seg{s}.nii.gz'
       for s in ('', '_probabilities', '_entropy', '_mutual_information')]
      + [f'{complete.name}_unc_{r}.nii.gz' for r in ('whole', 'core', 'enhance')])
  # the output folder completes each case: with its inputs, every sequence is there
  for case in cases[1:]:
    shutil.copytree(case.folder, out / case.case_id, dirs_exist_ok=True)
  filled = layouts.discover(str(out))
  assert all(anyseq.missing_in(c, MODALITIES) is None for c in filled if c.case_id != complete.name)
