"""The paper's evaluation protocols, one command per table (``config.experiment.name``), one
module each: `swap` (Tables II-IV), `lesions` (Table V, Figs. 4-5), `crossval` (Table I),
`convergence`, `anyseq` and `generalization` (ours). `common` holds what they share.

Models already trained in ``WORKDIR`` are resumed, not retrained, so a rerun only evaluates.
"""

from __future__ import annotations

import os

import ml_collections

from rsnet_jax.errors import UserError
from rsnet_jax.experiments import anyseq
from rsnet_jax.experiments import convergence
from rsnet_jax.experiments import crossval
from rsnet_jax.experiments import generalization
from rsnet_jax.experiments import lesions
from rsnet_jax.experiments import swap
from rsnet_jax.experiments import uncertainty_methods

RUNNERS = {'swap': swap.run, 'crossval': crossval.run, 'lesions': lesions.run,
           'convergence': convergence.run, 'anyseq': anyseq.run,
           'generalization': generalization.run, 'uncertainty_methods': uncertainty_methods.run}


def run(config: ml_collections.ConfigDict, workdir: str) -> None:
  name = config.experiment.name
  if name not in RUNNERS:
    raise UserError(f'experiment.name must be one of {sorted(RUNNERS)}, got {name!r}')
  RUNNERS[name](config, workdir)
  written = sorted(f for f in os.listdir(workdir) if f.endswith(('.md', '.json', '.png'))
                   and f != 'config.json')
  print(f'experiment {name}: ' + ', '.join(os.path.join(workdir, f) for f in written))
