"""What lets a long run survive: start-up checks, stop signals, and the resume-config guard.

- `check_workdir` / `check_free_disk`: refuse to start (before compiling anything) when the workdir
  cannot be written or lacks room for a checkpoint.
- `stop_requests`: SIGTERM / SIGINT (what SLURM and TPU preemption send) are recorded instead of
  killing the process, so the training loop can finish its step, save and exit with `EXIT_PREEMPTED`.
  Repeated SIGTERMs (SLURM may signal both the batch script and the job) are recorded too; a second
  SIGINT acts as usual (a second Ctrl-C interrupts at once).
- `config_differences`: the config keys that differ from the run being resumed, except the
  harmless ones (`RESUMABLE_CHANGES`).
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import signal
import tempfile
import threading
from typing import Any, Iterator

import ml_collections

from rsnet_jax.errors import UserError

EXIT_PREEMPTED = 75  # EX_TEMPFAIL: stopped on a signal after saving; rerun to resume
EXIT_DIVERGED = 3  # a non-finite loss or gradient stopped training

# Keys (or key prefixes ending in '.') that may change between a run and its resumption: they
# change neither the parameters' shapes nor the computation of the steps already taken.
RESUMABLE_CHANGES = (
    'train.num_epochs', 'train.log_every_steps', 'train.eval_every_epochs',
    'train.max_checkpoints', 'train.checkpoint_every_steps', 'train.predict_test_cases',
    'train.nonfinite', 'train.min_free_disk_factor', 'train.profile_steps', 'data.worker_count',
    'data.data_dir',
    'data.layout', 'data.custom_files.',  # where the data are, not what they are
    'predict.', 'uncertainty.', 'model.remat', 'model.conv_impl', 'train.donate_state',
    'compilation_cache_dir', 'memory_budget_gib',
)


class Preempted(Exception):
  """Training stopped on a signal after saving a checkpoint."""

  def __init__(self, signal_name: str, step: int, checkpoint_dir: str):
    super().__init__(f'stopped by {signal_name} at step {step}; checkpoint saved in '
                     f'{checkpoint_dir}; rerun the same command to resume')
    self.step = step


class Diverged(UserError):
  """A non-finite loss or gradient; the message names the step and the cases."""


def check_workdir(workdir: str) -> None:
  """Creates ``workdir`` if needed and proves it writable; `UserError` naming it otherwise."""
  try:
    os.makedirs(workdir, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=workdir, prefix='.write-test-'):
      pass
  except OSError as e:
    raise UserError(f'{workdir}: workdir not writable ({e.strerror or type(e).__name__})') from None


def disk_full(error: BaseException) -> OSError | None:
  """The "no space left" (ENOSPC, or EDQUOT: over quota) error in ``error``'s chain of causes, if
  any: libraries (Orbax, TensorStore) re-raise write errors wrapped in their own."""
  seen = set()
  while error is not None and id(error) not in seen:
    seen.add(id(error))
    if isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT):
      return error
    if 'No space left on device' in str(error) and not isinstance(error, OSError):
      return OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(error).splitlines()[0][:200])
    error = error.__cause__ or error.__context__
  return None


def check_free_disk(workdir: str, checkpoint_bytes: int, factor: float) -> None:
  """Refuses to start unless ``workdir``'s file system has ``factor`` x ``checkpoint_bytes`` free
  (a new checkpoint is written before an old one is removed)."""
  free = shutil.disk_usage(workdir).free
  needed = int(factor * checkpoint_bytes)
  if free < needed:
    raise UserError(f'{workdir}: {free / 2**20:.1f} MiB free, a checkpoint needs about '
                    f'{checkpoint_bytes / 2**20:.1f} MiB and train.min_free_disk_factor={factor} '
                    f'asks for {needed / 2**20:.1f} MiB')


@contextlib.contextmanager
def stop_requests(signals: tuple[int, ...] = (signal.SIGTERM, signal.SIGINT)
                  ) -> Iterator[list[str]]:
  """Yields a list that receives the name of each stop signal caught while the block runs.

  Only the main thread can install handlers; elsewhere the list stays empty and signals act as usual.
  """
  received: list[str] = []
  if threading.current_thread() is not threading.main_thread():
    yield received
    return
  previous = {s: signal.getsignal(s) for s in signals}

  def handler(signum, frame):
    del frame
    received.append(signal.Signals(signum).name)
    if signum == signal.SIGINT:
      signal.signal(signum, previous[signum])  # a second Ctrl-C interrupts at once

  for s in signals:
    signal.signal(s, handler)
  try:
    yield received
  finally:
    for s, h in previous.items():
      signal.signal(s, h)


def flatten(tree: dict, prefix: str = '') -> dict[str, Any]:
  """``{'a': {'b': 1}}`` -> ``{'a.b': 1}``."""
  out = {}
  for k, v in tree.items():
    if isinstance(v, dict):
      out.update(flatten(v, f'{prefix}{k}.'))
    else:
      out[f'{prefix}{k}'] = v
  return out


def config_record(config: ml_collections.ConfigDict) -> dict[str, Any]:
  """The config as the JSON-compatible nested dict written to ``WORKDIR/config.json``."""
  return json.loads(config.to_json_best_effort())


def config_differences(saved: dict[str, Any], config: ml_collections.ConfigDict) -> list[str]:
  """``'key: was A, now B'`` for each key of ``saved`` (a `config_record`) that ``config`` changes,
  harmless keys (`RESUMABLE_CHANGES`) left out. Keys the saved record lacks (options added since)
  are not differences."""
  old, new = flatten(saved), flatten(config_record(config))
  harmless = lambda k: any(k == p or (p.endswith('.') and k.startswith(p))
                           for p in RESUMABLE_CHANGES)
  return [f'{k}: was {json.dumps(old[k])}, now {json.dumps(new.get(k))}'
          for k in sorted(old) if not harmless(k) and old[k] != new.get(k)]
