"""Memory that fits: the budget a program may plan for, XLA's plan of a compiled program, and a
jitted MC-dropout forward whose chunk size is chosen to fit (``predict.mc_chunk_size = 'auto'``).

The budget is ``memory_budget_gib`` when set; otherwise 90 % of the device's memory on a GPU/TPU
(the allocator's limit) and 50 % of the machine's RAM on the CPU (the rest for the inputs, the
outputs and everything else). It depends on the machine, not on its momentary load, so the same
machine always picks the same chunk size: MC samples computed in other chunk sizes agree only to
float32 round-off (README, "MC-dropout uncertainty").
"""

from __future__ import annotations

import functools
import os
from typing import Any, Callable

from absl import logging
import jax
import ml_collections

from rsnet_jax import compile_options
from rsnet_jax.errors import UserError

GIB = 2**30


def budget(config: ml_collections.ConfigDict) -> tuple[int, str]:
  """``(bytes, description)`` a compiled program may plan for on this process's first device."""
  gib = float(config.get('memory_budget_gib', 0) or 0)
  if gib > 0:
    return int(gib * GIB), f'memory_budget_gib = {gib:g}'
  device = jax.local_devices()[0]
  stats = device.memory_stats() or {}
  if stats.get('bytes_limit'):
    return int(0.9 * stats['bytes_limit']), (
        f'90 % of the {stats["bytes_limit"] / GIB:.1f} GiB of the {device.device_kind}')
  total = os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES')
  return int(0.5 * total), f'50 % of the {total / GIB:.1f} GiB of RAM'


def plan(compiled) -> int:
  """Bytes XLA plans for a compiled program: scratch, arguments and outputs (less aliased)."""
  stats = compiled.memory_analysis()
  if stats is None:
    return 0
  return (stats.temp_size_in_bytes + stats.argument_size_in_bytes + stats.output_size_in_bytes -
          stats.alias_size_in_bytes)


def check_fits(compiled, config: ml_collections.ConfigDict, what: str, levers: str) -> None:
  """`UserError` naming the plan, the budget and ``levers`` when ``compiled`` does not fit."""
  need, (have, source) = plan(compiled), budget(config)
  if need > have:
    raise UserError(f'{what} plans {need / GIB:.1f} GiB, more than the {have / GIB:.1f} GiB '
                    f'budget ({source}); lower it with {levers}, or set memory_budget_gib')


def chunk_candidates(num_samples: int) -> list[int]:
  """N, then halved (rounded up) down to 1: the MC chunk sizes 'auto' tries, largest first."""
  sizes, c = [], num_samples
  while True:
    sizes.append(c)
    if c == 1:
      return sizes
    c = -(-c // 2)


class MCForward:
  """`predict.forward` jitted for ``num_mc_samples`` samples, compiled once per input shape with
  ``mc_chunk_size`` (an int, 0 = all at once) or, for ``'auto'``, the largest of
  `chunk_candidates` whose plan fits `budget`. Call as the jitted ``forward``:
  ``fn(params, batch, keys)``; ``chunk_sizes`` maps input shapes to the chunk used."""

  def __init__(self, config: ml_collections.ConfigDict, apply_fn: Callable,
               num_mc_samples: int):
    from rsnet_jax import predict  # pylint: disable=g-import-not-at-top (predict uses this module)
    self._config, self._n = config, num_mc_samples
    self._forward = functools.partial(predict.forward, apply_fn=apply_fn,
                                      num_mc_samples=num_mc_samples)
    self._compiled: dict[Any, Any] = {}
    self.chunk_sizes: dict[Any, int] = {}

  def _compile(self, chunk: int | None, *args):
    return jax.jit(functools.partial(self._forward, mc_chunk_size=chunk),
                   compiler_options=compile_options.for_backend()).lower(*args).compile()

  def __call__(self, params, batch, keys):
    shapes = jax.tree.map(lambda a: a.shape, batch)
    key = str(shapes)
    if key not in self._compiled:
      setting = self._config.predict.get('mc_chunk_size', 0)
      if self._n == 0:  # deterministic: no samples to chunk
        chunk = 0
        self._compiled[key] = self._compile(None, params, batch, keys)
      elif setting != 'auto':
        try:
          chunk = min(int(setting or 0) or self._n, self._n)
        except ValueError:
          raise UserError("predict.mc_chunk_size must be 'auto' or a number of samples (0 = all),"
                          f' got {setting!r}') from None
        self._compiled[key] = self._compile(chunk, params, batch, keys)
      else:
        have, source = budget(self._config)
        for chunk in chunk_candidates(self._n):
          compiled = self._compile(chunk, params, batch, keys)
          if plan(compiled) <= have:
            break
        else:
          raise UserError(
              f'MC-dropout prediction of a {shapes["inputs"][1:4]} volume plans '
              f'{plan(compiled) / GIB:.1f} GiB even one sample at a time, more than the '
              f'{have / GIB:.1f} GiB budget ({source}); lower it with predict.window_shape '
              "(sliding windows), model.dtype='bfloat16' or model.remat, or set memory_budget_gib")
        logging.info('MC chunk size %d of %d samples for %s volumes: plans %.2f GiB of %.1f GiB '
                     '(%s)', chunk, self._n, shapes['inputs'][1:4], plan(compiled) / GIB,
                     have / GIB, source)
        self._compiled[key] = compiled
      if self._n:
        self.chunk_sizes[key] = chunk
    return self._compiled[key](params, batch, keys)
