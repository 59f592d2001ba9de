"""Shared fixtures: tiny configs and tiny synthetic datasets (CPU, seconds)."""

import os
import shutil
import tempfile

os.environ.setdefault('JAX_PLATFORMS', 'cpu')
os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '3')
# The tests' tiny volumes spend most of their time compiling: XLA's backend at optimisation level 0
# compiles a train step ~3x faster (its code runs ~2x slower, which tiny volumes do not feel), and
# XLA:CPU's loop emitters instead of its MLIR fusion emitters take another ~1.8x off (at level 0 the
# demo's train step compiles in 6.7 s instead of 12.1 s: `python bench/compile_level.py --levels 0
# --emitters on off`). Subprocesses the tests start inherit both.
FAST_COMPILE = '--xla_backend_optimization_level=0 --xla_cpu_use_fusion_emitters=false'
os.environ['XLA_FLAGS'] = f'{os.environ.get("XLA_FLAGS", "")} {FAST_COMPILE}'.strip()
# One JAX persistent compilation cache for the whole test run, its subprocesses and (under
# pytest-xdist) all its workers: the end-to-end tests compile the same tiny programs in process after
# process (train, resume, evaluate, predict). Same programs, same compiled code: only the time goes.
# The first process to load this file (pytest-xdist's controller, or pytest itself) makes the folder;
# workers and subprocesses inherit it through the environment; the maker removes it at the end.
_CACHE_MADE_HERE = None
if 'JAX_COMPILATION_CACHE_DIR' not in os.environ:
  _CACHE_MADE_HERE = tempfile.mkdtemp(prefix='rsnet_jax_tests_jit_cache_')
  os.environ['JAX_COMPILATION_CACHE_DIR'] = _CACHE_MADE_HERE
  os.environ['JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS'] = '0.1'

import pytest  # pylint: disable=g-import-not-at-top

from configs import demo  # pylint: disable=g-import-not-at-top
from rsnet_jax.data import synthetic  # pylint: disable=g-import-not-at-top
from rsnet_jax.training import train  # pylint: disable=g-import-not-at-top

TINY_SHAPE = (16, 16, 16)


# The demo's settings that tiny runs undo: its 32^3 crop (tiny volumes run whole), and its loss region,
# class-weight decay and learning-rate schedule (the tests' expectations were set with these).
TINY_PINS = {'data.crop_shape': (), 'loss.region': 'volume', 'loss.decay_rate': 0.8,
             'optim.warmup_steps': 0, 'optim.schedule': 'constant'}
# The same for the command line of subprocess runs of configs/demo.py.
TINY_PIN_FLAGS = [f'--config.{k}={v}' for k, v in TINY_PINS.items()]


def tiny_config(**overrides):
  """The demo config shrunk to 16^3 volumes, k=2, 2 levels, with `TINY_PINS`."""
  config = demo.get_config()
  config.model.base_filters = 2
  config.model.num_levels = 2
  config.data.synthetic_cases = 4
  config.data.synthetic_shape = TINY_SHAPE
  overrides = {**TINY_PINS, **overrides}
  config.data.val_fraction = 0.25
  config.data.test_fraction = 0.25
  config.train.num_epochs = 2
  config.train.log_every_steps = 1
  config.train.eval_every_epochs = 1
  config.predict.num_mc_samples = 2
  for key, value in overrides.items():
    node = config
    *path, leaf = key.split('.')
    for p in path:
      node = node[p]
    node[leaf] = value
  return config


@pytest.fixture(scope='session')
def tiny_dataset(tmp_path_factory):
  """Four 16^3 synthetic cases in the BraTS 2021 layout."""
  out = tmp_path_factory.mktemp('data')
  synthetic.generate_dataset(str(out), 4, seed=7, layout='brats2021', shape=TINY_SHAPE)
  return str(out)


def run_config(data_dir, **overrides):
  """`tiny_config` of the resume and fault tests: 2 training cases x 4 epochs = 8 steps, a checkpoint
  every 2 steps, one evaluation (at the end), no predictions."""
  return tiny_config(**{'data.data_dir': data_dir, 'train.num_epochs': 4,
                        'train.eval_every_epochs': 4, 'train.checkpoint_every_steps': 2,
                        'train.predict_test_cases': False, **overrides})


@pytest.fixture(scope='session')
def straight_run(tiny_dataset, tmp_path_factory):
  """The workdir of `run_config` trained in one go, in-process: what the interrupted runs must end
  equal to. Shared by the tests (trained once per worker): copy it before changing it."""
  workdir = tmp_path_factory.mktemp('straight')
  train.train_and_evaluate(run_config(tiny_dataset), str(workdir))
  return workdir


def pytest_unconfigure(config):  # pylint: disable=unused-argument
  if _CACHE_MADE_HERE:
    shutil.rmtree(_CACHE_MADE_HERE, ignore_errors=True)


def pytest_configure(config):
  # pytest-xdist's default hands each worker a block of consecutive tests at the start; with the
  # slow tests first (below) one worker would get all of them. Two at a time, the workers share
  # them out as they finish.
  if config.pluginmanager.hasplugin('xdist') and config.getoption('maxschedchunk') is None:
    config.option.maxschedchunk = 2


def pytest_collection_modifyitems(items):
  """The slow end-to-end tests first (in file order), then the rest: under pytest-xdist the short
  tests then fill the gaps between the long ones instead of a long one running alone at the end."""
  items.sort(key=lambda item: item.get_closest_marker('slow') is None)
