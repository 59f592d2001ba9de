"""``OUT/manifest.json``: what each prediction run read and wrote, so a result can be traced.

One entry per run, appended (earlier runs' entries are kept): time, code version (package, git
commit when run from a checkout, jax/flax), seed, the full config, per case the input files with
their SHA-256, and the outputs written (with SHA-256) or the cases skipped as already done.
"""

from __future__ import annotations

import datetime
import hashlib
import importlib.metadata
import json
import os
import subprocess

import flax
import jax
import ml_collections

from rsnet_jax.runtime import files


def sha256(path: str) -> str:
  digest = hashlib.sha256()
  with open(path, 'rb') as f:
    for block in iter(lambda: f.read(1 << 20), b''):
      digest.update(block)
  return digest.hexdigest()


def code_version() -> dict[str, str]:
  """Versions of rsnet_jax (and its git commit, ``+dirty`` with local changes), jax and flax."""
  try:
    version = {'rsnet_jax': importlib.metadata.version('rsnet_jax')}
  except importlib.metadata.PackageNotFoundError:
    version = {'rsnet_jax': 'not installed'}
  package_dir = os.path.dirname(os.path.abspath(__file__))
  try:
    git = lambda *a: subprocess.run(['git', '-C', package_dir, *a], capture_output=True,
                                    text=True, timeout=10, check=True).stdout.strip()
    commit = git('rev-parse', 'HEAD')
    version['git'] = commit + ('+dirty' if git('status', '--porcelain', '--untracked-files=no')
                               else '')
  except (OSError, subprocess.SubprocessError):
    pass
  version.update(jax=jax.__version__, flax=flax.__version__)
  return version


def record_run(out_dir: str, config: ml_collections.ConfigDict, inputs: dict[str, list[str]],
               outputs: dict[str, list[str]], skipped: list[str],
               extra: dict | None = None) -> str:
  """Appends this run to ``out_dir/manifest.json`` (written atomically); returns its path.

  Args:
    inputs: case ID -> the input files read for it.
    outputs: case ID -> the files written for it.
    skipped: case IDs whose outputs existed already.
    extra: more of the run's settings to record (e.g. the MC chunk sizes chosen).
  """
  path = os.path.join(out_dir, 'manifest.json')
  runs = []
  if os.path.exists(path):
    with open(path) as f:
      runs = json.load(f).get('runs', [])
  runs.append({
      'time': datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds'),
      'code': code_version(),
      'seed': config.seed,
      'config': json.loads(config.to_json_best_effort()),
      'cases': {case_id: {'inputs': {p: sha256(p) for p in files},
                          'outputs': {p: sha256(p) for p in outputs.get(case_id, [])}}
                for case_id, files in inputs.items()},
      'skipped': skipped,
      **(extra or {}),
  })
  files.write_json(path, {'runs': runs})
  return path
