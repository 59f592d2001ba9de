"""One run per folder: a lock file naming its holder (host, PID, start time, command).

`hold(directory)` creates ``directory/.rsnet_jax.lock`` atomically (``O_CREAT | O_EXCL``) and removes
it when the run ends. A second run on the same folder is refused with one line naming the holder. A
lock left behind is taken over with a warning when its holder is gone: a dead PID on this host, or
the same SLURM job (a requeued job restarts under its own job ID). A lock from another host is
honoured unless ``force`` (the PID cannot be checked from here).
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import sys
import time
from typing import Iterator

from absl import logging

from rsnet_jax.errors import UserError

LOCK_NAME = '.rsnet_jax.lock'


def _holder() -> dict:
  return {'host': socket.gethostname(), 'pid': os.getpid(),
          'started': time.strftime('%Y-%m-%d %H:%M:%S %Z'), 'command': ' '.join(sys.argv),
          'slurm_job_id': os.environ.get('SLURM_JOB_ID', '')}


def _read(path: str, attempts: int = 20) -> dict | None:
  """The holder recorded in ``path``; None if the file is gone. A file that stays unreadable for
  ``attempts`` tenths of a second (a holder killed while writing it) reads as a dead process."""
  for _ in range(attempts):
    try:
      with open(path) as f:
        return json.load(f)
    except FileNotFoundError:
      return None
    except (OSError, ValueError):
      time.sleep(0.1)
  return {'host': socket.gethostname(), 'pid': -1, 'command': '(unreadable lock file)'}


def _alive(pid: int) -> bool:
  if pid <= 0:
    return False
  try:
    os.kill(pid, 0)
  except ProcessLookupError:
    return False
  except PermissionError:  # someone else's process
    return True
  return True


def _stale_reason(holder: dict, force: bool) -> str | None:
  """Why the lock of ``holder`` may be taken over, or None if it must be honoured."""
  me = _holder()
  if holder.get('slurm_job_id') and holder['slurm_job_id'] == me['slurm_job_id']:
    return f'the same SLURM job {me["slurm_job_id"]} (requeued)'
  if holder.get('host') == me['host'] and not _alive(int(holder.get('pid', -1))):
    return f'its process {holder.get("pid")} is gone'
  if holder.get('host') != me['host'] and force:
    return 'forced with --force_unlock'
  return None


def _describe(holder: dict) -> str:
  return (f'PID {holder.get("pid")} on {holder.get("host")}, since {holder.get("started")}: '
          f'{holder.get("command")}')


@contextlib.contextmanager
def hold(directory: str, force: bool = False) -> Iterator[str]:
  """Holds ``directory``'s lock for the ``with`` block; yields the lock file's path.

  Raises:
    UserError: another live run holds it (or one on another host, without ``force``).
  """
  path = os.path.join(directory, LOCK_NAME)
  record = json.dumps(_holder(), indent=2)
  while True:
    try:
      os.makedirs(directory, exist_ok=True)
      fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
      break
    except FileExistsError:
      holder = _read(path)
    except OSError as e:
      raise UserError(f'{path}: cannot create the lock file: {e.strerror}') from e
    if holder is None:  # removed meanwhile: try again
      continue
    reason = _stale_reason(holder, force)
    if reason is None:
      hint = ('; if that run is gone, pass --force_unlock'
              if holder.get('host') != socket.gethostname() else '')
      raise UserError(f'{directory}: in use by another run ({_describe(holder)}); wait for it to '
                      f'end or use another folder{hint}')
    logging.warning('%s: taking over the lock of %s: %s', directory, _describe(holder), reason)
    with contextlib.suppress(FileNotFoundError):
      os.remove(path)
  with os.fdopen(fd, 'w') as f:
    f.write(record)
  try:
    yield path
  finally:
    with contextlib.suppress(FileNotFoundError):
      with open(path) as f:
        mine = f.read() == record
      if mine:
        os.remove(path)
