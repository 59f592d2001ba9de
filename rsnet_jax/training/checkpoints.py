"""Orbax checkpoints of a training workdir (``WORKDIR/checkpoints``): the manager, and restoring
with a fallback to the next checkpoint when one does not restore (torn or unreadable files are moved
aside, never deleted)."""

from __future__ import annotations

import os

from absl import logging
from flax.training import train_state
import jax
from jax.experimental import multihost_utils
import ml_collections
import orbax.checkpoint as ocp

from rsnet_jax.errors import UserError
from rsnet_jax.runtime import parallel

TrainState = train_state.TrainState


def checkpoint_manager(workdir: str, config: ml_collections.ConfigDict) -> ocp.CheckpointManager:
  """Orbax manager in ``WORKDIR/checkpoints``: keeps the latest N and the best by val loss."""
  policy = ocp.checkpoint_managers.preservation_policy
  options = ocp.CheckpointManagerOptions(
      preservation_policy=policy.AnyPreservationPolicy([
          policy.LatestN(n=config.train.max_checkpoints),
          policy.BestN(get_metric_fn=lambda m: m['val_loss'], reverse=True, n=1,
                       keep_checkpoints_without_metrics=False),
      ]),
      best_fn=lambda m: m['val_loss'],  # also makes orbax store the metrics with each step
      best_mode='min',
      enable_async_checkpointing=False,
  )
  return ocp.CheckpointManager(os.path.join(os.path.abspath(workdir), 'checkpoints'),
                               options=options)


def _candidates(manager: ocp.CheckpointManager, which: str) -> list[int]:
  """Steps to try, in order: ``'latest'``: newest first; ``'best'``: by validation loss, then the
  steps without metrics, newest first."""
  steps = sorted(manager.all_steps(), reverse=True)
  if which != 'best':
    return steps
  scored, unscored = [], []
  for step in steps:
    try:
      metrics = manager.metrics(step)
    except Exception:  # pylint: disable=broad-except
      metrics = None  # unreadable metrics: tried after the scored ones
    (scored if metrics and 'val_loss' in metrics else unscored).append((metrics, step))
  return [s for _, s in sorted(scored, key=lambda ms: ms[0]['val_loss'])] + [s for _, s in unscored]


def restore_checkpoint(manager: ocp.CheckpointManager, target: TrainState,
                       which: str = 'latest') -> tuple[TrainState | None, int | None]:
  """Restores the ``which`` checkpoint (`_candidates`) into ``target``'s structure and sharding.

  A checkpoint that does not restore (a missing or truncated file, bad metadata) is skipped for
  the next candidate; once one restores, each skipped one is logged and moved aside to
  ``checkpoints/unreadable_<step>/`` (never deleted). If none restores, nothing is moved (the
  cause is then the config, not the files) and a `UserError` names the first failure. Returns
  ``(None, None)`` when there is no checkpoint.
  """
  failed = []
  for step in _candidates(manager, which):
    try:
      state = manager.restore(step, args=ocp.args.Composite(
          state=ocp.args.StandardRestore(target)))['state']
    except Exception as e:  # pylint: disable=broad-except
      reason = (str(e).strip().splitlines() or [''])[0][:200]
      failed.append((step, f'{type(e).__name__}: {reason}'))
      continue
    for bad, reason in failed:
      aside = os.path.join(manager.directory, f'unreadable_{bad}')
      logging.warning('checkpoint %d does not restore (%s); moved to %s, using step %d', bad,
                      reason, aside, step)
      if parallel.is_primary():
        os.rename(os.path.join(manager.directory, str(bad)), aside)
    if failed:
      if jax.process_count() > 1:
        multihost_utils.sync_global_devices('unreadable checkpoints moved aside')
      manager.reload()
    return state, step
  if failed:
    raise UserError(f'{manager.directory}: no checkpoint restores (step {failed[0][0]}: '
                    f'{failed[0][1]}); was it written with another config?')
  return None, None


def restore_params(workdir: str, config: ml_collections.ConfigDict, state: TrainState,
                   which: str = 'best') -> tuple[TrainState, int]:
  """Restores the ``'best'`` (by validation loss) or ``'latest'`` checkpoint of ``workdir`` into
  host arrays shaped like ``state`` (a state, or `abstract_train_state`'s shapes), falling back to
  the next one where a checkpoint does not restore (`restore_checkpoint`). Every process of a
  multi-process run must call it (Orbax restores collectively onto the data mesh)."""
  target = parallel.replicated_like(state, parallel.data_mesh())
  with checkpoint_manager(workdir, config) as manager:
    state, step = restore_checkpoint(manager, target, which)
  if step is None:
    raise UserError(f'{os.path.join(workdir, "checkpoints")}: no checkpoint to restore; '
                    'train first')
  return jax.device_get(state), step
