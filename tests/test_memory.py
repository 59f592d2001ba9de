"""Memory that fits: MC chunk sizes chosen against a budget, steps that cannot fit refused."""

import jax
import numpy as np
import pytest

from rsnet_jax.data import layouts
from rsnet_jax.data import pipeline
from rsnet_jax.errors import UserError
from rsnet_jax.inference import forward_pass
from rsnet_jax.runtime import memory
from rsnet_jax.training import train
from tests.conftest import tiny_config


def test_chunk_candidates_halve_down_to_one():
  assert memory.chunk_candidates(20) == [20, 10, 5, 3, 2, 1]
  assert memory.chunk_candidates(4) == [4, 2, 1]
  assert memory.chunk_candidates(1) == [1]


def test_budget_is_the_configured_one_or_a_share_of_the_machine():
  assert memory.budget(tiny_config(memory_budget_gib=1.5)) == (int(1.5 * 2**30),
                                                                'memory_budget_gib = 1.5')
  size, source = memory.budget(tiny_config())
  assert size > 0 and source.startswith(('50 % of the', '90 % of the'))


@pytest.mark.slow  # compiles the MC forward 4 times: left out of the quick tier
def test_auto_chunk_fits_the_budget_and_gives_the_same_samples(tiny_dataset):
  config = tiny_config(**{'predict.num_mc_samples': 4})
  task = pipeline.Task.from_config(config)
  state = train.create_train_state(config, task, jax.random.key(0))
  example, _ = pipeline.load_case(layouts.discover(tiny_dataset)[0], task)
  batch = pipeline.network_inputs(example)
  keys = jax.random.key(3)[None]
  plans, samples = {}, {}
  for chunk in (4, 2, 1):
    fn = forward_pass.MCForward(tiny_config(**{'predict.num_mc_samples': 4,
                                               'predict.mc_chunk_size': chunk}), state.apply_fn, 4)
    samples[chunk] = fn(state.params, batch, keys)
    plans[chunk] = memory.plan(next(iter(fn._compiled.values())))  # pylint: disable=protected-access
  assert plans[4] > plans[2] > plans[1]

  # A budget between the plans of chunks 2 and 4: 'auto' takes 2, and its samples are chunk 2's.
  gib = (plans[2] + plans[4]) / 2 / 2**30
  auto = forward_pass.MCForward(
      tiny_config(**{'predict.num_mc_samples': 4, 'memory_budget_gib': gib}), state.apply_fn, 4)
  out = auto(state.params, batch, keys)
  assert list(auto.chunk_sizes.values()) == [2]
  assert samples[2].keys() == out.keys()
  for name, value in samples[2].items():
    np.testing.assert_array_equal(out[name], value)

  # Below even one sample at a time: refused, naming the levers.
  small = forward_pass.MCForward(tiny_config(**{'predict.num_mc_samples': 4,
                                                'memory_budget_gib': plans[1] / 2 / 2**30}),
                                 state.apply_fn, 4)
  with pytest.raises(UserError, match=r'even one sample at a time.*predict.window_shape'):
    small(state.params, batch, keys)
  with pytest.raises(UserError, match="mc_chunk_size must be 'auto' or a number"):
    forward_pass.MCForward(
        tiny_config(**{'predict.num_mc_samples': 4, 'predict.mc_chunk_size': 'x'}),
        state.apply_fn, 4)(state.params, batch, keys)


@pytest.mark.slow  # a checkpoint or training run: left out of the quick tier
def test_a_training_step_that_does_not_fit_is_refused_before_it_runs(tiny_dataset, tmp_path):
  config = tiny_config(**{'data.data_dir': tiny_dataset, 'memory_budget_gib': 1e-6})
  with pytest.raises(UserError, match=r"a training step plans .* GiB budget \(memory_budget_gib "
                                      r"= 1e-06\); lower it with model.remat='levels'"):
    train.train_and_evaluate(config, str(tmp_path))
  assert not (tmp_path / 'checkpoints').exists() or not list((tmp_path / 'checkpoints').iterdir())
