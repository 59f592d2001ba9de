"""Runs in its own process for tests/test_parallel.py (device count and jax.distributed are per process).

  python -m tests.parallel_worker OUT DATA_DIR WORKDIR PER_DEVICE_BATCH [ADDRESS NUM ID]
      trains 2 epochs (jax.distributed when ADDRESS is given), writes OUT/params_<process>.npz;
      with XLA_FLAGS=--xla_force_host_platform_device_count=2 and no ADDRESS it first runs one train
      step sharded over the 2 devices and the same step unsharded on 1 device and writes the
      parameters of both to OUT/step.npz
"""

import os
import sys

os.environ.setdefault('JAX_PLATFORMS', 'cpu')

from absl import flags  # pylint: disable=g-import-not-at-top
import jax  # pylint: disable=g-import-not-at-top
import numpy as np  # pylint: disable=g-import-not-at-top

from rsnet_jax.data import layouts  # pylint: disable=g-import-not-at-top
from rsnet_jax.data import pipeline  # pylint: disable=g-import-not-at-top
from rsnet_jax.model import losses  # pylint: disable=g-import-not-at-top
from rsnet_jax.runtime import parallel  # pylint: disable=g-import-not-at-top
from rsnet_jax.training import train  # pylint: disable=g-import-not-at-top
from tests.conftest import tiny_config  # pylint: disable=g-import-not-at-top


def _flat(params) -> dict[str, np.ndarray]:
  leaves = jax.tree_util.tree_leaves_with_path(jax.device_get(params))
  return {jax.tree_util.keystr(path): np.asarray(leaf) for path, leaf in leaves}


def one_step(out: str, data_dir: str) -> None:
  assert jax.device_count() == 2, jax.devices()
  config = tiny_config()
  task = pipeline.Task.from_config(config)
  cases = layouts.discover(data_dir)
  ratios = losses.class_frequency_ratios(pipeline.label_voxel_counts(cases, 4))
  batch = next(pipeline.to_iterator(pipeline.train_dataset(cases, task, 2, 1, 0), 0))
  state = train.create_train_state(config, task, jax.random.key(0))
  key = jax.random.key(5)
  single, single_parts = jax.jit(lambda s, b, k: train.train_step(
      s, b, k, config=config, class_ratios=ratios, steps_per_epoch=2))(state, batch, key)
  mesh = parallel.data_mesh()
  step = train.sharded_train_step(config, ratios, 2, mesh)
  sharded_batch = parallel.global_batch(batch, mesh)
  assert sharded_batch['inputs'].sharding.shard_shape(sharded_batch['inputs'].shape)[0] == 1
  sharded, sharded_parts = step(parallel.replicate(state, mesh), sharded_batch,
                                parallel.replicate(jax.random.key_data(key), mesh))
  assert len(sharded.params['unet']['start_conv0']['kernel'].sharding.device_set) == 2
  arrays = {f'single{k}': v for k, v in _flat(single.params).items()}
  arrays.update({f'sharded{k}': v for k, v in _flat(sharded.params).items()})
  arrays['single_loss'] = np.asarray(single_parts['loss'])
  arrays['sharded_loss'] = np.asarray(sharded_parts['loss'])
  np.savez(os.path.join(out, 'step.npz'), **arrays)


def train_run(out: str, data_dir: str, workdir: str, per_device: int, address: str | None = None,
              num: int | None = None, index: int | None = None) -> None:
  flags.FLAGS.mark_as_parsed()
  if address:
    parallel.initialize('on', address, num, index, shutdown_timeout_s=120)
  config = tiny_config(**{'data.data_dir': data_dir, 'train.batch_size': per_device,
                          'train.num_epochs': 2, 'train.eval_every_epochs': 2, 'optim.learning_rate': 3e-3})
  state = train.train_and_evaluate(config, workdir)
  np.savez(os.path.join(out, f'params_{jax.process_index()}.npz'), **_flat(state.params))


if __name__ == '__main__':
  args = sys.argv[1:]
  extra = (args[4], int(args[5]), int(args[6])) if len(args) > 4 else ()
  if not extra and jax.device_count() == 2:
    one_step(args[0], args[1])
  train_run(args[0], args[1], args[2], int(args[3]), *extra)
