"""Atomic file writes: a temporary file beside the target, renamed onto it only when complete.

A write interrupted by an error (a full disk), a signal or a kill never leaves a partial file under
the final name: the previous version, if any, stays whole, and the temporary file (``.tmp-*``) is
removed on errors (a SIGKILL can leave one behind, never under a final name; `remove_temporaries`
clears those, for a run that holds the folder's lock).
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from typing import Any, Iterator

TEMPORARY_PREFIX = '.tmp-'


@contextlib.contextmanager
def atomic_path(path: str) -> Iterator[str]:
  """Yields a temporary path in ``path``'s folder (created if needed) with ``path``'s extension
  (``.nii.gz`` counts as one); renames it onto ``path`` when the block ends, removes it if the block
  raises."""
  folder = os.path.dirname(os.path.abspath(path))
  os.makedirs(folder, exist_ok=True)
  name = os.path.basename(path)
  suffix = '.nii.gz' if name.endswith('.nii.gz') else os.path.splitext(name)[1]
  fd, tmp = tempfile.mkstemp(prefix=TEMPORARY_PREFIX, suffix=suffix, dir=folder)
  os.close(fd)
  try:
    yield tmp
    os.replace(tmp, path)
  except BaseException:
    if os.path.exists(tmp):
      os.remove(tmp)
    raise


@contextlib.contextmanager
def atomic_write(path: str, mode: str = 'w') -> Iterator[Any]:
  """``open(path, mode)`` whose content appears under ``path`` only once fully written."""
  with atomic_path(path) as tmp, open(tmp, mode) as f:
    yield f
    f.flush()
    os.fsync(f.fileno())


def write_text(path: str, text: str) -> None:
  with atomic_write(path) as f:
    f.write(text)


def write_json(path: str, value: Any) -> None:
  with atomic_write(path) as f:
    json.dump(value, f, indent=2)


def remove_temporaries(folder: str) -> list[str]:
  """Removes the temporary files (``.tmp-*``) that killed writers left under ``folder``; returns
  their paths. Only for a run that holds ``folder``'s lock: another writer's file would go too."""
  removed = []
  for directory, _, names in os.walk(folder):
    for name in names:
      if name.startswith(TEMPORARY_PREFIX):
        removed.append(os.path.join(directory, name))
        os.remove(removed[-1])
  return removed
