"""Data parallelism over every device of every process, with JAX's own runtime and sharding.

One `jax.sharding.Mesh` with a ``data`` axis spans ``jax.devices()`` (all processes). Parameters
and optimizer state are replicated; the global batch ``[B, ...]`` (``B = train.batch_size x
jax.device_count()``) is split along ``data``, and each process loads and feeds only its own
``B / jax.process_count()`` rows (`global_batch`). The train step is jitted once with these
shardings; XLA inserts the gradient all-reduce. With one device all of this is the identity.
"""

from __future__ import annotations

import os
from typing import Any

from absl import logging
import jax
import jax.numpy as jnp
from jax.sharding import Mesh
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P
import numpy as np

from rsnet_jax.errors import UserError

DATA = 'data'

# Environment variables that say this process is one of several (SLURM srun, Open MPI, an explicit
# coordinator); on a TPU VM slice pass --distributed=on (JAX reads the slice from the TPU metadata).
_MULTI_PROCESS_ENV = ('SLURM_NTASKS', 'OMPI_COMM_WORLD_SIZE')


def wants_distributed(mode: str, coordinator_address: str | None = None,
                      environ: dict[str, str] | None = None) -> bool:
  """Whether to call `jax.distributed.initialize`: ``mode`` is ``'on'``, ``'off'`` or ``'auto'``
  (on when a coordinator address is given or the environment has more than one task)."""
  if mode not in ('auto', 'on', 'off'):
    raise UserError(f"--distributed must be auto, on or off, got {mode!r}")
  if mode != 'auto':
    return mode == 'on'
  environ = os.environ if environ is None else environ
  if coordinator_address or environ.get('JAX_COORDINATOR_ADDRESS'):
    return True
  return any(int(environ.get(name, '1') or '1') > 1 for name in _MULTI_PROCESS_ENV)


def initialize(mode: str = 'auto', coordinator_address: str | None = None,
               num_processes: int | None = None, process_id: int | None = None,
               shutdown_timeout_s: int = 300) -> None:
  """Joins the processes of a multi-host run (`jax.distributed.initialize`), if asked or detected.

  Arguments left ``None`` are detected by JAX (SLURM, Open MPI, TPU VM, Kubernetes). Call before
  any other JAX call. ``shutdown_timeout_s``: how long a finished process waits for the others.
  """
  if not wants_distributed(mode, coordinator_address):
    return
  jax.distributed.initialize(coordinator_address=coordinator_address or None,
                             num_processes=num_processes, process_id=process_id,
                             shutdown_timeout_seconds=shutdown_timeout_s)
  logging.info('jax.distributed: process %d of %d, %d local / %d global devices',
               jax.process_index(), jax.process_count(), jax.local_device_count(),
               jax.device_count())


def is_primary() -> bool:
  """Process 0: the one that writes logs, summaries, montages and NIfTI outputs."""
  return jax.process_index() == 0


def data_mesh() -> Mesh:
  """A 1D mesh over every device of every process, axis ``'data'``."""
  return Mesh(np.asarray(jax.devices()), (DATA,))


def replicated(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, P())


def batch_sharded(mesh: Mesh) -> NamedSharding:
  """Leading (batch) axis split over ``'data'``, the rest whole."""
  return NamedSharding(mesh, P(DATA))


def global_batch_size(per_device: int) -> int:
  return per_device * jax.device_count()


def replicate(tree: Any, mesh: Mesh) -> Any:
  """Host or single-device arrays (equal on every process) -> arrays replicated over ``mesh``."""
  sharding = replicated(mesh)

  def put(x):
    x = np.asarray(x)
    return jax.make_array_from_callback(x.shape, sharding, lambda index: x[index])

  return jax.tree.map(put, tree)


def replicated_like(tree: Any, mesh: Mesh) -> Any:
  """``jax.ShapeDtypeStruct`` leaves of ``tree``'s shapes and dtypes, replicated over ``mesh``: a
  target to restore a checkpoint into, with nothing computed or copied."""
  sharding = replicated(mesh)

  def like(x):
    x = x if hasattr(x, 'dtype') else jnp.asarray(x)  # a Python scalar, e.g. a new state's step 0
    return jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sharding)

  return jax.tree.map(like, tree)


def global_batch(local: Any, mesh: Mesh) -> Any:
  """This process's rows ``[b, ...]`` of every leaf -> global arrays ``[b * processes, ...]``
  sharded over ``'data'`` (process ``p`` holds rows ``p * b:(p + 1) * b``)."""
  sharding = batch_sharded(mesh)
  return jax.tree.map(lambda x: jax.make_array_from_process_local_data(sharding, np.asarray(x)),
                      local)


def scaled_learning_rate(learning_rate: float, rule: str, global_batch: int,
                         base_batch: int) -> float:
  """The learning rate for ``global_batch`` given one tuned at ``base_batch``: ``'none'`` keeps it,
  ``'linear'`` multiplies by the ratio of batch sizes, ``'sqrt'`` by its square root."""
  ratio = global_batch / base_batch
  rules = {'none': 1.0, 'linear': ratio, 'sqrt': ratio**0.5}
  if rule not in rules:
    raise UserError(f'optim.lr_scaling must be one of {sorted(rules)}, got {rule!r}')
  return learning_rate * rules[rule]
